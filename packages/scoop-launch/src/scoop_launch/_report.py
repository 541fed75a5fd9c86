"""``--report FILE.html``: one self-contained page about a run, from the same records as the trace.

Everything is inline (SVG drawn here, CSS, no script, no font or file from the network), so the
page opens offline and stays the same size whatever the run: the timeline is drawn per pixel
column (the busy share of each column and the function that took most of it), not per task.

Sections: a summary (wall time, workers, tasks, parallel efficiency, failures), a timeline per
worker with the broker's queue below, utilisation per worker over time, tasks by function
(count, total, mean and longest duration, failures), the task tree's shape (depth, tasks per
depth, fan-out), load balancing and bytes per worker, and what failed.
"""

from __future__ import annotations

import hashlib
import html
from collections import defaultdict
from typing import Any

from scoop_launch._stats import _label, worker_stats
from scoop_launch._trace import align, collect_tasks, tree_shape

BALANCE_HEADER = [
    "worker",
    "tasks run",
    "busy",
    "handed to broker",
    "received",
    "bytes in",
    "bytes out",
]
#: Width of the drawing area of the timelines, in pixels (and time columns).
COLUMNS = 960
ROW = 22

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; }
td.n { text-align: right; font-variant: tabular-nums; }
.summary span { display: inline-block; margin-right: 22px; } .summary b { font-size: 18px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
           vertical-align: -1px; }
.failed { color: #b00; }
"""


#: Colours of the functions that took most time (Tableau 10); others get one from their name.
PALETTE = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]  # fmt: skip
_colors: dict[str, str] = {}


def _color(name: str) -> str:
    if name in _colors:
        return _colors[name]
    digest = hashlib.blake2b(name.encode(), digest_size=2).digest()
    return f"hsl({int.from_bytes(digest, 'big') % 360},55%,55%)"


def _seconds(ns: float) -> str:
    seconds = ns / 1e9
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _columns(
    slices: list[tuple[int, int, int]], start: int, span: int, names: Any
) -> list[tuple[float, str]]:
    """For each pixel column: the busy share, and the function that took most of it."""
    width = span / COLUMNS
    busy = [0.0] * COLUMNS
    by_name: list[dict[str, float]] = [defaultdict(float) for _ in range(COLUMNS)]
    for task_id, a, b in slices:
        first, last = int((a - start) / width), int((b - start) / width)
        for column in range(max(first, 0), min(last, COLUMNS - 1) + 1):
            left = start + column * width
            share = max(0.0, min(b, left + width) - max(a, left)) / width
            busy[column] += share
            by_name[column][names(task_id)] += share
    return [
        (min(busy[c], 1.0), max(by_name[c], key=by_name[c].__getitem__) if by_name[c] else "")
        for c in range(COLUMNS)
    ]


def _timeline(
    records: list[dict[str, Any]], start: int, span: int, tasks: Any
) -> tuple[str, set[str]]:
    workers = [r for r in records if r["role"] != "broker"]
    broker = next((r for r in records if r["role"] == "broker"), None)
    label_width = 230
    height = ROW * len(workers) + 80
    parts = [f'<svg width="{label_width + COLUMNS + 10}" height="{height}" role="img">']
    used: set[str] = set()
    for row, record in enumerate(workers):
        y = row * ROW
        parts.append(f'<text x="0" y="{y + 15}">{html.escape(_label(record))}</text>')
        parts.append(
            f'<rect x="{label_width}" y="{y + 2}" width="{COLUMNS}" height="{ROW - 4}" '
            'fill="#f3f3f3"/>'
        )
        for column, (share, name) in enumerate(_columns(record["slices"], start, span, tasks.name)):
            if share <= 0:
                continue
            used.add(name)
            parts.append(
                f'<rect x="{label_width + column}" y="{y + 2}" width="1" height="{ROW - 4}" '
                f'fill="{_color(name)}" fill-opacity="{0.25 + 0.75 * share:.2f}">'
                f"<title>{html.escape(name)}: {100 * share:.0f}% busy</title></rect>"
            )
    y = ROW * len(workers) + 8
    parts.append(f'<text x="0" y="{y + 30}">broker queue (tasks)</text>')
    counters = broker["counters"] if broker else []
    peak = max((queued for _, queued, _ in counters), default=0)
    if counters and peak:
        points = []
        for at, queued, _ in counters:
            x = label_width + max(0.0, min(COLUMNS, (at - start) / span * COLUMNS))
            points.append(f"{x:.1f},{y + 50 - 46 * queued / peak:.1f}")
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#555"/>')
        parts.append(f'<text x="{label_width + COLUMNS - 60}" y="{y + 10}">peak {peak}</text>')
    parts.append(
        f'<line x1="{label_width}" y1="{y + 50}" x2="{label_width + COLUMNS}" y2="{y + 50}" '
        'stroke="#999"/>'
    )
    parts.append(f'<text x="{label_width}" y="{y + 64}">0</text>')
    parts.append(f'<text x="{label_width + COLUMNS - 50}" y="{y + 64}">{_seconds(span)}</text>')
    parts.append("</svg>")
    return "".join(parts), used


def _utilisation(records: list[dict[str, Any]], start: int, span: int) -> str:
    workers = [r for r in records if r["role"] != "broker"]
    buckets = 60
    width = COLUMNS // buckets
    label_width = 230
    parts = [
        f'<svg width="{label_width + COLUMNS + 10}" height="{ROW * len(workers) + 20}" role="img">'
    ]
    for row, record in enumerate(workers):
        y = row * ROW
        parts.append(f'<text x="0" y="{y + 15}">{html.escape(_label(record))}</text>')
        busy = [0.0] * buckets
        size = span / buckets
        for _, a, b in record["slices"]:
            first, last = int((a - start) / size), int((b - start) / size)
            for bucket in range(max(first, 0), min(last, buckets - 1) + 1):
                left = start + bucket * size
                busy[bucket] += max(0.0, min(b, left + size) - max(a, left)) / size
        for bucket, load in enumerate(busy):
            share = min(load, 1.0)
            parts.append(
                f'<rect x="{label_width + bucket * width}" y="{y + 2}" width="{width - 1}" '
                f'height="{ROW - 4}" fill="hsl(210,70%,{92 - 50 * share:.0f}%)">'
                f"<title>{100 * share:.0f}% busy</title></rect>"
            )
    parts.append(
        f'<text x="{label_width}" y="{ROW * len(workers) + 14}">each square: '
        f"{_seconds(span / buckets)}; darker is busier</text></svg>"
    )
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i >= numeric_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(
    records: list[dict[str, Any]],
    offsets: dict[str, int] | None = None,
    *,
    title: str = "SCOOP run",
    wall_seconds: float | None = None,
) -> str:
    """The report page of a run's records."""
    records, start = align(records, offsets or {})
    end = max(
        [b for r in records for _, _, b in r["slices"]]
        + [at for r in records for at, *_ in r["counters"]]
        + [start + 1]
    )
    span = max(end - start, 1)
    tasks = collect_tasks(records)
    stats = worker_stats(records)
    totals: dict[str, int] = defaultdict(int)
    for record in records:
        for task_id, a, b in record["slices"]:
            totals[tasks.name(task_id)] += b - a
    _colors.clear()
    _colors.update(zip(sorted(totals, key=lambda n: -totals[n]), PALETTE, strict=False))
    wall = wall_seconds if wall_seconds is not None else span / 1e9
    busy = sum(s.busy_ns for s in stats)
    runners = [s for s in stats if s.tasks or s.busy_ns]
    efficiency = busy / (wall * 1e9 * max(1, len(runners)))
    timeline, used = _timeline(records, start, span, tasks)

    by_function: dict[str, list[int]] = defaultdict(list)
    durations: dict[int, int] = defaultdict(int)
    for record in records:
        for task_id, a, b in record["slices"]:
            durations[task_id] += b - a
    for task_id, total in durations.items():
        by_function[tasks.name(task_id)].append(total)
    failed_by_function: dict[str, int] = defaultdict(int)
    for task_id in tasks.failed:
        failed_by_function[tasks.name(task_id)] += 1
    function_rows = [
        [
            html.escape(name),
            str(len(times)),
            _seconds(sum(times)),
            _seconds(sum(times) / len(times)),
            _seconds(max(times)),
            str(failed_by_function.get(name, 0)),
        ]
        for name, times in sorted(by_function.items(), key=lambda item: -sum(item[1]))
    ]
    shape = tree_shape(records)
    per_depth = ", ".join(f"depth {d}: {n}" for d, n in shape["per_depth"].items()) or "none"
    balance_rows = [
        [
            html.escape(s.label),
            str(s.tasks),
            f"{100 * s.busy_ns / (wall * 1e9):.0f}%",
            str(s.handed),
            str(s.received),
            f"{s.bytes_in:,}",
            f"{s.bytes_out:,}",
        ]
        for s in stats
    ]
    where_ran: dict[int, str] = {}
    for record in records:
        for task_id, _, _ in record["slices"]:
            where_ran.setdefault(task_id, _label(record))
    failure_rows = [
        [
            f"{task_id:#x}",
            html.escape(tasks.name(task_id)),
            html.escape(kind),
            html.escape(where_ran.get(task_id, "?")),
        ]
        for task_id, kind in sorted(tasks.failed.items())
    ]
    legend = "".join(
        f'<span><i style="background:{_color(name)}"></i>{html.escape(name)}</span>'
        for name in sorted(used)
    )
    failures = (
        _table(["task", "function", "raised", "worker"], failure_rows, numeric_from=9)
        if failure_rows
        else "<p>No task raised.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary"><span>wall time (launch to end) <b>{wall:.3f} s</b></span>
<span>workers <b>{len(stats)}</b></span>
<span>tasks <b>{len(durations) - (0 in durations)}</b></span>
<span>parallel efficiency <b>{100 * efficiency:.0f}%</b></span>
<span class="{"failed" if tasks.failed else ""}">failed <b>{len(tasks.failed)}</b></span></p>
<h2>Timeline</h2>
<p class="legend">{legend}</p>
{timeline}
<h2>Utilisation over time</h2>
{_utilisation(records, start, span)}
<h2>Tasks by function</h2>
{_table(["function", "tasks", "total", "mean", "longest", "failed"], function_rows)}
<h2>Task tree</h2>
<p>{shape["tasks"]} tasks submitted; depth {shape["depth"]} ({per_depth});
{shape["parents"]} tasks submitted subtasks, fan-out median {shape["fan_out_median"]},
largest {shape["fan_out_max"]}.</p>
<h2>Load balancing and data moved</h2>
{_table(BALANCE_HEADER, balance_rows)}
<h2>Failures</h2>
{failures}
</body></html>
"""


__all__ = ["report_html"]
