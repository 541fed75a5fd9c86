"""What every system runs: task functions, workload sizes, expected results, reporting.

Standard library only: this module is imported by the runners of every system family, each in
its own environment (the bench env, the original SCOOP's Python 3.11 venv, the dev venv), and by
their worker processes (run.py puts ``bench/`` on ``PYTHONPATH``).

A runner prints one line per figure, ``BENCH {json}``, with the raw values of every repeat;
run.py aggregates them (median, min, max) and computes the goals.
"""

from __future__ import annotations

import json
import math
import operator
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

MARK = "BENCH "
WORKERS = 2
MiB = 1 << 20

#: Workload sizes. ``full`` is the issue's; ``quick`` keeps --quick under 3 minutes; ``guard``
#: is the guard test's (correctness only, one repeat).
SIZES: dict[str, dict[str, int]] = {
    "full": {
        "tiny": 20000,
        "tiny_slow": 5000,  # the original SCOOP: superlinear, 20000 takes minutes a repeat
        "tiny_dask": 3000,  # dask, Ray: ~150-2000 tasks/s here, 20000 would take minutes a repeat
        "latency": 300,
        "tree": 20,
        "lognormal": 2000,
        "bytes_mib": 64,
        "shared_mb": 50,
        "shared_tasks": 1000,
        "repeats": 5,
    },
    "quick": {
        "tiny": 5000,
        "tiny_slow": 2000,
        "tiny_dask": 300,
        "latency": 100,
        "tree": 20,
        "lognormal": 500,
        "bytes_mib": 64,
        "shared_mb": 50,
        "shared_tasks": 1000,
        "repeats": 5,
    },
    "guard": {
        "tiny": 200,
        "tiny_slow": 100,
        "tiny_dask": 50,
        "latency": 5,
        "tree": 4,
        "lognormal": 40,
        "bytes_mib": 1,
        "shared_mb": 1,
        "shared_tasks": 200,
        "repeats": 1,
    },
}

#: The log-normal durations: sigma 1, mean 2 ms (mu = ln(mean) - sigma^2 / 2); fixed seed.
LOGNORMAL_MEAN_S = 0.002
LOGNORMAL_SIGMA = 1.0
LOGNORMAL_SEED = 5


def sizes(mode: str) -> dict[str, int]:
    """The sizes of a mode (full, quick, guard)."""
    return SIZES[mode]


def emit(
    workload: str,
    system: str,
    metric: str,
    unit: str,
    values: list[float],
    note: str = "",
    **extra: Any,
) -> None:
    """Print one figure's raw values (one per repeat) for run.py."""
    record = {
        "workload": workload,
        "system": system,
        "metric": metric,
        "unit": unit,
        "values": values,
        "note": note,
        **extra,
    }
    print(MARK + json.dumps(record), flush=True)


def emit_skip(workload: str, system: str, note: str) -> None:
    """Say that a system does not run a workload, and why."""
    print(MARK + json.dumps({"workload": workload, "system": system, "skip": note}), flush=True)


def repeat(fn: Callable[[], float], repeats: int, warmup: bool = True) -> list[float]:
    """Run ``fn`` once as a warm-up (unless told not to), then ``repeats`` times: its values."""
    if warmup:
        fn()
    return [fn() for _ in range(repeats)]


# ---------------------------------------------------------------------------- task functions


neg = operator.neg


def echo(data: bytes) -> bytes:
    """The 64 MiB workload's task: the argument comes back as the result."""
    return data


def echo_where(data: bytes) -> tuple[int, bytes]:
    """``echo`` that also says which process ran it."""
    return os.getpid(), data


def where(_: object = None) -> tuple[int, float]:
    """Which process ran this, and when it ran (perf_counter is system-wide on Linux)."""
    return os.getpid(), time.perf_counter()


def spin(seconds: float) -> float:
    """Busy for ``seconds`` (a computation, not a sleep); returns the time it took."""
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        pass
    return time.perf_counter() - start


def busy(seconds: float) -> tuple[int, float, float]:
    """Busy for ``seconds``; returns its process and when it started and ended."""
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        pass
    return os.getpid(), start, time.perf_counter()


def lognormal_durations(count: int) -> list[float]:
    """``count`` task durations, log-normal with mean LOGNORMAL_MEAN_S, always the same."""
    rng = random.Random(LOGNORMAL_SEED)
    mu = math.log(LOGNORMAL_MEAN_S) - LOGNORMAL_SIGMA**2 / 2
    return [rng.lognormvariate(mu, LOGNORMAL_SIGMA) for _ in range(count)]


def tree_expected(n: int) -> int:
    """The full tree's result, computed serially (the original SCOOP's examples/full_tree.py).

    func0(n) -> func1(n) maps func2 over 1..n; func2(k) submits func3(1..k) and adds them in
    completion order; func3(j) maps func4 over 1..j; func4(m) = m*m.
    """
    return sum(
        sum(sum(m * m for m in range(1, j + 1)) for j in range(1, k + 1)) for k in range(1, n + 1)
    )


def tree_tasks(n: int) -> int:
    """Number of tasks in the full tree of size n (1772 for n = 20)."""
    return 2 + n + n * (n + 1) // 2 + sum(k * (k + 1) // 2 for k in range(1, n + 1))


def check_tiny(results: list[int], n: int) -> None:
    """The tiny workloads return ``-i`` for every ``i`` in order."""
    if results != [-i for i in range(n)]:
        raise AssertionError(f"tiny tasks: wrong results (first {results[:5]!r}, n={n})")


def payload(mib: float) -> bytes:
    """A bytes object of ``mib`` MiB that is not all zeros (so nothing may cheat on content)."""
    size = int(mib * MiB)
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (size // len(block) + 1))[:size]


# ------------------------------------------------------------------------- bytes on the wire

_SS_PID = re.compile(r"pid=(\d+)")
_SS_RECEIVED = re.compile(r"bytes_received:(\d+)")
_SS_SENT = re.compile(r"bytes_sent:(\d+)")


def tcp_bytes_by_pid() -> dict[int, tuple[int, int]]:
    """Bytes received and sent so far over TCP by each process, from ``ss -tinpH``.

    The kernel keeps ``bytes_received``/``bytes_sent`` per TCP socket (tcp_info); ss names the
    process owning each socket. Sockets closed before the call are not counted, so callers take
    a baseline and a final reading while the sockets are open. Needs /usr/bin/ss (iproute2) and
    the right to see other processes' sockets (same user).
    """
    out = subprocess.run(
        ["ss", "-tinpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    totals: dict[int, tuple[int, int]] = {}
    pids: list[int] = []
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):  # a socket line: its owners
            pids = [int(p) for p in _SS_PID.findall(line)]
            continue
        received = _SS_RECEIVED.search(line)
        sent = _SS_SENT.search(line)
        for pid in set(pids):
            r, s = totals.get(pid, (0, 0))
            totals[pid] = (
                r + (int(received.group(1)) if received else 0),
                s + (int(sent.group(1)) if sent else 0),
            )
    return totals


def received_delta(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], pids: set[int]
) -> dict[int, int]:
    """Bytes each of ``pids`` received over TCP between two readings."""
    return {pid: after.get(pid, (0, 0))[0] - before.get(pid, (0, 0))[0] for pid in pids}


def python_label() -> str:
    """This interpreter, for the notes."""
    return f"Python {sys.version.split()[0]}"
