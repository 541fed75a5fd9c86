"""Keep every worker busy until the launcher is signalled; print "started" once work runs.

"Once work runs": once a worker other than the root ran a task. The root's script starts
before the others have joined the run, and the root runs the first tasks itself meanwhile.

With the argument ``ignore-sigterm`` every process of the run ignores SIGTERM and is stuck in a
long task (deaf to the broker's SHUTDOWN), so only the launcher's SIGKILL after its grace period
ends them.
"""

import os
import signal
import sys
import time

import scoop
from scoop import futures

STUBBORN = sys.argv[1:] == ["ignore-sigterm"]
if STUBBORN:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def busy(i):
    time.sleep(60 if STUBBORN and i > 0 else 0.01)
    return scoop.worker[1]


def where(_):
    time.sleep(0.01)
    return scoop.worker[1]


if __name__ == "__main__":
    while set(futures.map(where, range(4 * scoop.SIZE))) == {0}:
        pass
    print("started by root pid", os.getpid(), flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        list(futures.map(busy, range(20)))
    print("was not stopped", flush=True)
