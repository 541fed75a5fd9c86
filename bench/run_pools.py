"""The process pools' side: ProcessPoolExecutor, multiprocessing.Pool and loky, 2 workers each.

    python bench/run_pools.py --system ProcessPoolExecutor --workload submit --mode quick

Prints ``BENCH {json}`` lines (see workloads.py). The pools have no nested tasks, so the tree
is skipped; their arguments travel through pipes, not TCP, so the shared-constant byte count
(measured on TCP sockets) is skipped too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as w

SYSTEMS = ("ProcessPoolExecutor", "multiprocessing.Pool", "loky")


class _MpAdapter:
    """multiprocessing.Pool behind the few calls the workloads make."""

    def __init__(self) -> None:
        self.pool = multiprocessing.Pool(w.WORKERS)

    def submit(self, fn: Any, *args: Any) -> Any:
        result = self.pool.apply_async(fn, args)
        result.result = result.get  # the workloads call .result()
        return result

    def map(self, fn: Any, iterable: Any) -> list[Any]:
        return self.pool.map(fn, iterable)  # default chunksize, as a user gets it

    def shutdown(self) -> None:
        self.pool.close()
        self.pool.join()


def make(system: str) -> Any:
    """A 2-worker pool of ``system``; raises ImportError when it is not installed."""
    if system == "ProcessPoolExecutor":
        return concurrent.futures.ProcessPoolExecutor(w.WORKERS)
    if system == "multiprocessing.Pool":
        return _MpAdapter()
    if system == "loky":
        from loky import get_reusable_executor

        return get_reusable_executor(max_workers=w.WORKERS)
    raise SystemExit(f"run_pools.py: unknown system {system!r}")


def bench_submit(pool: Any, system: str, size: dict[str, int]) -> None:
    n = size["tiny"]

    def once() -> float:
        start = time.perf_counter()
        fs = [pool.submit(w.neg, i) for i in range(n)]
        results = [f.result() for f in fs]
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    w.emit("submit", system, "tasks/s", "tasks/s", w.repeat(once, size["repeats"]), f"n={n}")


def bench_map(pool: Any, system: str, size: dict[str, int]) -> None:
    n = size["tiny"]
    how = "map, default chunksize" + (" (1)" if system != "multiprocessing.Pool" else "")

    def once() -> float:
        start = time.perf_counter()
        results = list(pool.map(w.neg, range(n)))
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    label = system + (" map(chunksize=1)" if system == "ProcessPoolExecutor" else "")
    w.emit("map", label, "tasks/s", "tasks/s", w.repeat(once, size["repeats"]), f"n={n}, {how}")


def bench_latency(pool: Any, system: str, size: dict[str, int]) -> None:
    count = size["latency"]

    def once() -> float:
        start = time.perf_counter()
        for i in range(count):
            if pool.submit(w.neg, i).result() != -i:
                raise AssertionError("latency: wrong result")
        return (time.perf_counter() - start) / count * 1e6

    w.emit(
        "latency",
        system,
        "latency",
        "us",
        w.repeat(once, size["repeats"]),
        f"submit(neg).result(), mean of {count}",
    )


def bench_lognormal(pool: Any, system: str, size: dict[str, int]) -> None:
    durations = w.lognormal_durations(size["lognormal"])

    def once() -> float:
        start = time.perf_counter()
        took = list(pool.map(w.spin, durations))
        wall = time.perf_counter() - start
        if len(took) != len(durations):
            raise AssertionError("lognormal: missing results")
        return sum(took) / (w.WORKERS * wall)

    w.emit(
        "lognormal",
        system,
        "efficiency",
        "",
        w.repeat(once, size["repeats"]),
        f"{len(durations)} tasks, map with default arguments",
    )


def bench_bytes(pool: Any, system: str, size: dict[str, int]) -> None:
    data = w.payload(size["bytes_mib"])

    def once() -> float:
        start = time.perf_counter()
        back = pool.submit(w.echo, data).result()
        elapsed = time.perf_counter() - start
        if back != data:
            raise AssertionError("bytes: the result differs from the argument")
        return 2 * len(data) / elapsed / 1e9

    w.emit(
        "bytes",
        system,
        "throughput",
        "GB/s",
        w.repeat(once, size["repeats"]),
        f"{size['bytes_mib']} MiB there and back (2x counted); always runs in a worker process",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", required=True, choices=SYSTEMS)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--mode", default="full", choices=sorted(w.SIZES))
    options = parser.parse_args()
    size, system, workload = w.sizes(options.mode), options.system, options.workload
    if workload == "tree":
        w.emit_skip("tree", system, "no nested tasks: a task cannot wait on its own subtasks")
        return
    if workload == "shared":
        w.emit_skip("shared", system, "arguments travel through pipes: TCP byte count n/a")
        return
    pool = make(system)
    try:
        if workload == "startup":
            print("FIRST", pool.submit(w.neg, 1).result(), flush=True)
        elif workload == "submit":
            bench_submit(pool, system, size)
        elif workload == "map":
            bench_map(pool, system, size)
        elif workload == "latency":
            bench_latency(pool, system, size)
        elif workload == "lognormal":
            bench_lognormal(pool, system, size)
        elif workload == "bytes":
            bench_bytes(pool, system, size)
        else:
            raise SystemExit(f"run_pools.py: unknown workload {workload!r}")
    finally:
        pool.shutdown()


if __name__ == "__main__":
    main()
