"""Per-worker figures of a run, and the table ``--stats`` prints at its end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _label(record: dict[str, Any]) -> str:
    host = record["host"]
    if record["role"] == "broker":
        return f"broker ({host})"
    if record["role"] == "client":
        return f"worker 0, Executor client ({host})"
    if record["index"] == 0:
        return f"worker 0, root ({host})"
    return f"worker {record['index']} ({host})"


@dataclass
class WorkerStats:
    """One worker's figures for the end-of-run table."""

    label: str
    tasks: int
    busy_ns: int
    handed: int
    received: int
    bytes_in: int
    bytes_out: int


def worker_stats(records: list[dict[str, Any]]) -> list[WorkerStats]:
    """Per worker: tasks run, time busy in task code, tasks handed over, bytes moved."""
    rows = []
    for record in sorted(records, key=lambda r: (r["role"] == "broker", r["index"])):
        if record["role"] == "broker":
            continue
        rows.append(
            WorkerStats(
                _label(record),
                int(record["tasks"]),
                int(record["busy_ns"]),
                int(record["handed"]),
                int(record["received"]),
                int(record["bytes_in"]),
                int(record["bytes_out"]),
            )
        )
    return rows


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def stats_table(records: list[dict[str, Any]], wall_seconds: float) -> str:
    """The table ``--stats`` prints at the end of a run."""
    rows = worker_stats(records)
    wall_ns = max(wall_seconds, 1e-9) * 1e9
    lines = [
        f"{'worker':40} {'tasks':>7} {'busy':>6} {'handed':>7} {'received':>8} "
        f"{'bytes in':>10} {'bytes out':>10}"
    ]
    for row in rows:
        lines.append(
            f"{row.label:40} {row.tasks:>7} {100 * row.busy_ns / wall_ns:>5.0f}% {row.handed:>7} "
            f"{row.received:>8} {_size(row.bytes_in):>10} {_size(row.bytes_out):>10}"
        )
    runners = [row for row in rows if row.tasks or row.busy_ns]
    busy = sum(row.busy_ns for row in rows)
    efficiency = busy / (wall_ns * max(1, len(runners)))
    lines.append(
        f"wall time {wall_seconds:.3f} s; parallel efficiency {100 * efficiency:.0f}% "
        f"(time in task code over wall time x {len(runners)} workers)"
    )
    return "\n".join(lines)


__all__ = ["WorkerStats", "stats_table", "worker_stats"]
