"""An Executor opened and closed by the root of a launched run: the run's API works after it."""

import time

import scoop
from scoop import futures


def index(_):
    time.sleep(0.01)
    return scoop.worker[1]


if __name__ == "__main__":
    with scoop.Executor(1) as executor:
        print("INSIDE", executor.submit(abs, -1).result(), flush=True)
    print("AFTER", sorted(set(futures.map(index, range(20)))), flush=True)
