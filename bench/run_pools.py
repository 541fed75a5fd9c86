"""The process pools' side: ProcessPoolExecutor, multiprocessing.Pool and loky, 2 workers each.

    python bench/run_pools.py --system ProcessPoolExecutor --workload submit --mode quick

Prints ``BENCH {json}`` lines (see workloads.py), through the runner skeleton (runner.py). The
pools have no nested tasks, so the tree is skipped; their arguments travel through pipes, not
TCP, so the shared-constant byte count (measured on TCP sockets) is skipped too.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import runner
import workloads as w

SYSTEMS = ("ProcessPoolExecutor", "multiprocessing.Pool", "loky")


class PoolPeer(runner.Peer):
    """A concurrent.futures executor of 2 processes (ProcessPoolExecutor, loky)."""

    skips = {
        "tree": "no nested tasks: a task cannot wait on its own subtasks",
        "shared": "arguments travel through pipes: TCP byte count n/a",
    }

    def __init__(self, system: str) -> None:
        self.system = system
        self.pool: Any = None
        self.how = {
            "map": "map, default chunksize" + (" (1)" if system != "multiprocessing.Pool" else ""),
            "bytes": "always runs in a worker process",
        }
        if system == "ProcessPoolExecutor":
            self.map_label = "ProcessPoolExecutor map(chunksize=1)"

    def start(self) -> None:
        if self.system == "loky":
            from loky import get_reusable_executor

            self.pool = get_reusable_executor(max_workers=w.WORKERS)
        else:
            self.pool = concurrent.futures.ProcessPoolExecutor(w.WORKERS)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        return list(self.pool.map(fn, items))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class MultiprocessingPeer(PoolPeer):
    """multiprocessing.Pool(2): apply_async and map."""

    def start(self) -> None:
        self.pool = multiprocessing.Pool(w.WORKERS)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.apply_async(fn, args)

    def result(self, handle: Any) -> Any:
        return handle.get()

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        return list(self.pool.map(fn, items))  # default chunksize, as a user gets it

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def make(system: str) -> runner.Peer:
    """The peer of ``system``."""
    return MultiprocessingPeer(system) if system == "multiprocessing.Pool" else PoolPeer(system)


if __name__ == "__main__":
    runner.main(make, SYSTEMS, "run_pools.py")
