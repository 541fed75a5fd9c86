"""Root script for the fault-tolerance tests: work that goes on while workers are lost.

Modes (argv[1]):

``map N``     ``futures.map`` over N items (a 4 ms task each).
``tree K``    K subtrees (``submit``), each a tree of depth 3 and fan-out 5 of nested ``submit``;
              each leaf is a 2 ms task that returns 1.

The root prints ``ROOT <pid>`` first. Each task appends a line ``<pid> <worker index>`` to the
file named by ``SCOOP_TEST_PROGRESS`` (if set): the test watches it to lose or add workers while
most of the work is still to do, and to see which workers ran tasks. At the end the root checks
every result and that each future's result was delivered once (a done-callback counts), and
prints ``OK``, then ``SIZE n`` (``scoop.SIZE``: the workers in the run now).
"""

import os
import sys
import time
from collections import Counter

import scoop
from scoop import futures

_progress_fd = None


def _progress():
    global _progress_fd
    path = os.environ.get("SCOOP_TEST_PROGRESS")
    if path:
        if _progress_fd is None:
            _progress_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(_progress_fd, f"{os.getpid()} {scoop.worker[1]}\n".encode())


def square(x):
    time.sleep(0.004)
    _progress()
    return x * x


def tree(depth, fanout=5):
    if depth == 0:
        time.sleep(0.002)
        _progress()
        return 1
    children = [futures.submit(tree, depth - 1, fanout) for _ in range(fanout)]
    return sum(child.result() for child in children)


def run_map(n):
    results = list(futures.map(square, range(n)))
    assert results == [x * x for x in range(n)], "wrong or misplaced results"
    return n


def run_tree(k):
    deliveries = Counter()
    subtrees = [futures.submit(tree, 3) for _ in range(k)]
    for fut in subtrees:
        fut.add_done_callback(lambda f: deliveries.update([id(f)]))
    futures.wait(subtrees)
    assert [fut.result() for fut in subtrees] == [125] * k, [f.result() for f in subtrees]
    assert sorted(deliveries.values()) == [1] * k, deliveries
    return k * 125


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    print(f"ROOT {os.getpid()}", flush=True)
    start = time.monotonic()
    done = run_map(count) if mode == "map" else run_tree(count)
    print(f"OK {mode} {done} in {time.monotonic() - start:.2f} s", flush=True)
    print(f"SIZE {scoop.SIZE}", flush=True)
