"""Hello, SCOOP: square numbers in parallel with ``futures.map``.

Run with::

    python -m scoop_launch -n 4 examples/hello_map.py [COUNT]

``futures.map`` works like the builtin ``map`` but runs the calls on every worker of the run and
yields the results in input order. Each task also reports which worker ran it.
"""

import sys
import time

import scoop
from scoop import futures


def square(x):
    """The task: runs on whichever worker is free (the sleep stands for real work)."""
    time.sleep(0.02)
    return x * x, scoop.worker[1]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    results = list(futures.map(square, range(count)))
    squares = [value for value, _ in results]
    workers = sorted({worker for _, worker in results})
    print(f"tasks ran on worker(s) {workers} of {scoop.SIZE}")
    print(f"squares of 0..{count - 1}: {squares}")
    print(f"hello_map: sum of squares of 0..{count - 1} = {sum(squares)}")
