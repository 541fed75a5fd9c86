"""Tiny-task throughput of SCOOP beside ProcessPoolExecutor(2), in one run.

Run: python -m scoop_launch -n 2 bench/tiny_tasks.py [--tasks 20000] [--repeats 5]
Prints one line per figure: the median tasks/s with min and max over the repeats.
"""

import argparse
import concurrent.futures
import operator
import statistics
import time

from scoop import futures


def scoop_map(n):
    return list(futures.map(operator.neg, range(n)))


def scoop_submit(n):
    fs = [futures.submit(operator.neg, i) for i in range(n)]
    return [f.result() for f in fs]


def pool_map(pool, n):
    return list(pool.map(operator.neg, range(n)))


def pool_submit(pool, n):
    fs = [pool.submit(operator.neg, i) for i in range(n)]
    return [f.result() for f in fs]


def measure(label, fn, n, repeats):
    fn(min(n, 1000))  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(n)
        rates.append(n / (time.perf_counter() - start))
        assert result == [-i for i in range(n)]
    print(
        f"{label:42} median {statistics.median(rates):>10,.0f} tasks/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f})",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    n, repeats = options.tasks, options.repeats
    measure("scoop futures.map", scoop_map, n, repeats)
    measure("scoop submit + result", scoop_submit, n, repeats)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        measure("ProcessPoolExecutor(2).map", lambda k: pool_map(pool, k), n, repeats)
        measure(
            "ProcessPoolExecutor(2) submit + result", lambda k: pool_submit(pool, k), n, repeats
        )
