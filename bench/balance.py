"""Load balance of blocking tasks: wall time of n tasks of 0.5 s submitted at once, on -n 2.

Run: python -m scoop_launch -n 2 bench/balance.py [--task-seconds 0.5] [--counts 2 4 8]
Each count is timed after the previous one finished (so the other worker is idle and known to
be); the ideal wall time is ceil(n / workers) * task seconds. Blocking tasks are the hard case:
a worker hands work away only between tasks.
"""

import argparse
import math
import time

import scoop
from scoop import futures


def block(seconds: float) -> int:
    time.sleep(seconds)  # a blocking call holds its worker, as a long computation would
    return scoop.worker[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-seconds", type=float, default=0.5)
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 4, 8])
    options = parser.parse_args()
    futures.submit(block, 0.0).result()  # every worker has joined and asked for work
    for count in options.counts:
        start = time.perf_counter()
        submitted = [futures.submit(block, options.task_seconds) for _ in range(count)]
        where = [f.result() for f in submitted]
        wall = time.perf_counter() - start
        ideal = math.ceil(count / scoop.SIZE) * options.task_seconds
        print(
            f"{count} tasks of {options.task_seconds} s on {scoop.SIZE} workers: {wall:.2f} s "
            f"(ideal {ideal:.2f} s), ran on workers {sorted(where)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
