"""Keep every worker busy until the launcher is signalled; print "started" once work runs."""

import time

import scoop
from scoop import futures


def busy(i):
    time.sleep(0.01)
    return scoop.worker[1]


if __name__ == "__main__":
    futures.submit(busy, 0).result()
    print("started", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        list(futures.map(busy, range(20)))
    print("was not stopped", flush=True)
