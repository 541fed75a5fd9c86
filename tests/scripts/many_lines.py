"""Every worker prints many lines at once; each must reach the user whole."""

import time

import scoop
from scoop import futures


def chatter(task):
    time.sleep(0.01)  # blocking, so that the tasks spread over the workers
    for line in range(50):
        print(f"line {line} of task {task} on worker {scoop.worker[1]} " + "x" * 60)
    return scoop.worker[1]


if __name__ == "__main__":
    print("workers", sorted(set(futures.map(chatter, range(40)))))
