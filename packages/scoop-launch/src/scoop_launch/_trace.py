"""A run's records merged: the Chrome trace (``--trace``) and the end-of-run table (``--stats``).

Every process of a run writes what it recorded (``scoop._trace.Recorder``) into the run's trace
directory; remote hosts' agents send their files back. This module reads them, puts every time
on the launcher's clock, and builds:

* the trace, in the Chrome trace event format (``{"traceEvents": [...]}``), which the Perfetto
  UI and ``chrome://tracing`` open as it is: a process per worker named with its index and host
  (the broker is one too), a slice per stretch of a task's run, flow arrows from each task to the
  subtasks it submitted, marks where tasks left for the broker or arrived from it, and the
  broker's counters (queued tasks, hungry workers);
* the shape of the task tree; per-worker statistics and the table ``--stats`` prints are in
  scoop_launch._stats.

Clocks: times are each host's CLOCK_MONOTONIC. The processes of one host share it; another
host's are shifted by the offset its agent measured against the launcher (see
``scoop_launch._agent``), which is off by at most half the round trip of that measure.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scoop_launch._stats import _label, stats_table

#: The pid of the broker's track (workers' are their index + 1); not 0, which trace viewers
#: treat apart.
BROKER_PID = 1_000_000


def read_records(directory: str) -> list[dict[str, Any]]:
    """The records written into a trace directory (files of processes that ended cleanly)."""
    records = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                records.append(json.load(handle))
        except (OSError, ValueError):
            continue  # a process killed while writing: its record is lost, not the others
    return records


def _pid(record: dict[str, Any]) -> int:
    return BROKER_PID if record["role"] == "broker" else int(record["index"]) + 1


@dataclass
class Tasks:
    """What the records say about each task, across workers."""

    names: dict[int, str] = field(default_factory=dict)
    parents: dict[int, int] = field(default_factory=dict)
    #: Where and when each was submitted: (pid, time).
    submitted: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Where and when each first ran: (pid, time).
    first_run: dict[int, tuple[int, int]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    def name(self, task_id: int) -> str:
        """A task's function name (``main`` for the root's own code)."""
        if task_id == 0:
            return "main"
        if task_id == -1:  # scoop._trace.CALLBACK_TASK
            return "callback"
        return self.names.get(task_id, f"task {task_id:#x}")


def align(
    records: list[dict[str, Any]], offsets: dict[str, int]
) -> tuple[list[dict[str, Any]], int]:
    """The records with every time on the launcher's clock, and the earliest time."""
    earliest: int | None = None
    aligned = []
    for original in records:
        record = dict(original)
        aligned.append(record)
        shift = offsets.get(record.get("clock_host", ""), 0)  # local records: no shift
        if shift:
            record["slices"] = [(t, a - shift, b - shift) for t, a, b in record["slices"]]
            record["submits"] = [(t, p, n, at - shift) for t, p, n, at in record["submits"]]
            record["moves"] = [(at - shift, c) for at, c in record["moves"]]
            record["counters"] = [(at - shift, q, h) for at, q, h in record["counters"]]
            record["events"] = [(at - shift, text) for at, text in record["events"]]
        for times in (
            [a for _, a, _ in record["slices"]],
            [at for *_, at in record["submits"]],
            [at for at, _ in record["moves"]],
            [at for at, *_ in record["counters"]],
        ):
            if times:
                first = min(times)
                earliest = first if earliest is None else min(earliest, first)
    return aligned, earliest or 0


def collect_tasks(records: list[dict[str, Any]]) -> Tasks:
    """Join the records: names and parents (from submitters), where each task first ran."""
    tasks = Tasks()
    for record in records:
        pid = _pid(record)
        for task_id, parent, name, at in record["submits"]:
            tasks.names[task_id] = name
            tasks.parents[task_id] = parent
            tasks.submitted[task_id] = (pid, at)
        for task_id, start, _ in record["slices"]:
            seen = tasks.first_run.get(task_id)
            if seen is None or start < seen[1]:
                tasks.first_run[task_id] = (pid, start)
        for task_id, kind in record["failures"]:
            tasks.failed[task_id] = kind
    return tasks


def chrome_trace(
    records: list[dict[str, Any]], offsets: dict[str, int] | None = None
) -> dict[str, Any]:
    """The Chrome trace event format of a run's records."""
    records, origin = align(records, offsets or {})
    tasks = collect_tasks(records)

    def us(at: int) -> float:
        return (at - origin) / 1000

    events: list[dict[str, Any]] = []
    for record in records:
        pid = _pid(record)
        events.append(
            {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": _label(record)}}
        )
        events.append(
            {
                "ph": "M",
                "pid": pid,
                "name": "process_sort_index",
                "args": {"sort_index": pid or 1 << 20},
            }
        )
        events.append(
            {"ph": "M", "pid": pid, "tid": 0, "name": "thread_name", "args": {"name": "tasks"}}
        )
        for task_id, start, end in record["slices"]:
            args: dict[str, Any] = {"task": f"{task_id:#x}", "function": tasks.name(task_id)}
            if task_id in tasks.parents:
                args["parent"] = f"{tasks.parents[task_id]:#x}"
            if task_id in tasks.failed:
                args["raised"] = tasks.failed[task_id]
            events.append(
                {
                    "ph": "X",
                    "pid": pid,
                    "tid": 0,
                    "ts": us(start),
                    "dur": max((end - start) / 1000, 0.001),
                    "name": tasks.name(task_id),
                    "cat": "task",
                    "args": args,
                }
            )
        for at, count in record["moves"]:
            what = (
                f"received {count} tasks" if count > 0 else f"handed {-count} tasks to the broker"
            )
            events.append(
                {
                    "ph": "i",
                    "s": "t",
                    "pid": pid,
                    "tid": 0,
                    "ts": us(at),
                    "name": what,
                    "cat": "move",
                }
            )
        for at, queued, hungry in record["counters"]:
            events.append(
                {
                    "ph": "C",
                    "pid": pid,
                    "ts": us(at),
                    "name": "broker",
                    "args": {"queued tasks": queued, "hungry workers": hungry},
                }
            )
        for at, text in record["events"]:
            events.append({"ph": "i", "s": "g", "pid": pid, "tid": 0, "ts": us(at), "name": text})
        if record["role"] == "client":
            events.extend(_submit_slices(pid, [at for *_, at in record["submits"]], us))
    # A flow arrow from each task to each subtask it submitted, from the submit to its first run.
    for task_id, (submitter, at) in tasks.submitted.items():
        ran = tasks.first_run.get(task_id)
        if ran is None:
            continue  # cancelled, or its worker's record was lost
        flow_id = f"{task_id:#x}"
        events.append(
            {
                "ph": "s",
                "id": flow_id,
                "pid": submitter,
                "tid": 0,
                "ts": us(at),
                "name": "submit",
                "cat": "submit",
            }
        )
        events.append(
            {
                "ph": "f",
                "bp": "e",
                "id": flow_id,
                "pid": ran[0],
                "tid": 0,
                "ts": us(ran[1]),
                "name": "submit",
                "cat": "submit",
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _submit_slices(pid: int, times: list[int], us: Any) -> list[dict[str, Any]]:
    """Slices for an Executor's client, which runs no task: its submits, in bursts.

    A flow arrow starts inside a slice; the client's submits get one per burst (submits less
    than SUBMIT_BURST_NS apart).
    """
    spans: list[list[int]] = []
    for at in sorted(times):
        if spans and at - spans[-1][1] < SUBMIT_BURST_NS:
            spans[-1][1] = at
        else:
            spans.append([at, at])
    return [
        {
            "ph": "X",
            "pid": pid,
            "tid": 0,
            "ts": us(first),
            "dur": max((last - first) / 1000, 0.001),
            "name": "submit",
            "cat": "client",
            "args": {"task": "0x0", "function": "submit"},
        }
        for first, last in spans
    ]


#: Submits of an Executor's client closer than this share one slice.
SUBMIT_BURST_NS = 1_000_000


def tree_shape(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The task tree: its depth, tasks per depth, and fan-out (subtasks per parent)."""
    tasks = collect_tasks(records)
    children: dict[int, int] = defaultdict(int)
    for parent in tasks.parents.values():
        children[parent] += 1
    depth_of: dict[int, int] = {0: 0}

    def depth(task_id: int) -> int:
        chain = []
        while task_id not in depth_of:
            chain.append(task_id)
            task_id = tasks.parents.get(task_id, 0)
        level = depth_of[task_id]
        for node in reversed(chain):
            level += 1
            depth_of[node] = level
        return depth_of[chain[0]] if chain else level

    per_depth: dict[int, int] = defaultdict(int)
    for task_id in tasks.parents:
        per_depth[depth(task_id)] += 1
    fan_outs = sorted(children.values())
    return {
        "tasks": len(tasks.parents),
        "depth": max(per_depth, default=0),
        "per_depth": dict(sorted(per_depth.items())),
        "fan_out_max": fan_outs[-1] if fan_outs else 0,
        "fan_out_median": fan_outs[len(fan_outs) // 2] if fan_outs else 0,
        "parents": len(fan_outs),
    }


def write_outputs(
    config: Any,
    records: list[dict[str, Any]],
    offsets: dict[str, int],
    wall_seconds: float,
    errors: dict[str, int] | None = None,
) -> None:
    """Write the trace, the report and the table a run's configuration asks for.

    ``errors``: how far off each host's clock offset may be (ns), said with the offsets.
    """
    if not records:
        print("scoop: no process recorded anything: no trace, report or table", file=sys.stderr)
        return
    missing = sorted(
        set(range(config.size)) - {r["index"] for r in records if r["role"] != "broker"}
    )
    if missing:
        print(
            f"scoop: no record of worker{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} (killed before it could write one): what "
            "follows leaves out its work",
            file=sys.stderr,
        )
    for host, offset in sorted(offsets.items()):
        margin = (errors or {}).get(host, 0)
        print(
            f"scoop: times of host {host} moved by {-offset / 1e6:+.3f} ms onto this machine's "
            f"clock (within {margin / 1e6:.3f} ms)",
            file=sys.stderr,
        )
    if config.trace_file:
        _write(config.trace_file, "trace", json.dumps(chrome_trace(records, offsets)))
    if config.report_file:
        from scoop_launch._report import report_html

        name = os.path.basename(config.script) if config.script else "a scoop.Executor"
        page = report_html(
            records, offsets, title=f"SCOOP run of {name}", wall_seconds=wall_seconds
        )
        _write(config.report_file, "report", page)
    if config.stats:
        print(stats_table(records, wall_seconds), file=sys.stderr)


def _write(path: str, what: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # --debug's directory
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"scoop: cannot write the {what} to {path}: {exc.strerror}", file=sys.stderr)
        return
    hint = " (open it in https://ui.perfetto.dev or chrome://tracing)" if what == "trace" else ""
    print(f"scoop: {what} written to {path}{hint}", file=sys.stderr)


__all__ = ["chrome_trace", "read_records", "tree_shape", "write_outputs"]
