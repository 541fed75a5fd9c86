"""Root script: a task kills the worker it runs on (not the root) in the middle of the run."""

import os
import time

import scoop
from scoop import futures


def maybe_die(i):
    time.sleep(0.01)
    if scoop.worker[1] != 0:
        os._exit(9)  # as a segfault or the OOM killer would
    return i


if __name__ == "__main__":
    print("started", flush=True)
    print(sum(futures.map(maybe_die, range(200))))
