"""Root script: each task ends the process of the worker it runs on, unless that is the root.

The argument is the exit status the worker ends with (default 9, as a crash would give).
"""

import os
import sys
import time

import scoop
from scoop import futures

STATUS = int(sys.argv[1]) if len(sys.argv) > 1 else 9


def maybe_die(i):
    time.sleep(0.01)
    if scoop.worker[1] != 0:
        os._exit(STATUS)
    return i


if __name__ == "__main__":
    print("started", flush=True)
    print(sum(futures.map(maybe_die, range(200))))
