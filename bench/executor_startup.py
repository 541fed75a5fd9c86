"""scoop.Executor's start-up and round trip beside ProcessPoolExecutor's, in one run.

``python bench/executor_startup.py [ROUNDS]``: for each, the median over ROUNDS of the time to
open it, to the first result, of one round trip (200 in a row), and from open to shutdown.
"""

from __future__ import annotations

import concurrent.futures as cf
import statistics
import sys
import time
from collections.abc import Callable

import scoop


def increment(x: int) -> int:
    return x + 1


def measure(make: Callable[[], cf.Executor], rounds: int) -> str:
    opened, first, round_trip, total = [], [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        executor = make()
        opened.append(time.perf_counter() - start)
        executor.submit(increment, 1).result()
        first.append(time.perf_counter() - start)
        loop = time.perf_counter()
        for _ in range(200):
            executor.submit(increment, 1).result()
        round_trip.append((time.perf_counter() - loop) / 200)
        executor.shutdown()
        total.append(time.perf_counter() - start)
    median = statistics.median
    return (
        f"open {median(opened) * 1e3:.0f} ms, first result {median(first) * 1e3:.0f} ms, "
        f"round trip {median(round_trip) * 1e3:.3f} ms, open..shutdown {median(total) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print("scoop.Executor(2)      ", measure(lambda: scoop.Executor(2), count))
    print("ProcessPoolExecutor(2) ", measure(lambda: cf.ProcessPoolExecutor(2), count))
