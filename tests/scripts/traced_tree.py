"""A run worth tracing: a tree of nested maps, a map of tiny items, submits; one submitted task
and one item of a map raise.

Prints ``SUBMITTED n`` (the tasks submitted, chunks of maps counted as one each is a task).
"""

import contextlib
import time

from scoop import futures


def leaf(x):
    time.sleep(0.002)  # blocking: idle workers ask for the rest
    if x == 13:
        raise ValueError("thirteen")
    return x


def node(depth):
    time.sleep(0.001)
    if depth == 0:
        return 1
    return sum(futures.map(node, [depth - 1] * 3))


if __name__ == "__main__":
    assert node(3) == 27
    assert sum(futures.map(abs, range(500))) == sum(range(500))
    fs = [futures.submit(leaf, i) for i in range(30)]
    futures.wait(fs)
    assert sum(1 for f in fs if f.exception() is not None) == 1
    with contextlib.suppress(ValueError):  # an item of a map raises: its chunk's failure too
        list(futures.map(leaf, range(40)))
    print("DONE", flush=True)
