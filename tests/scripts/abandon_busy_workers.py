"""The root ends while other workers are still busy in tasks it no longer waits for."""

import time

import scoop
from scoop import futures


def slow_elsewhere(i):
    time.sleep(0.01)  # long enough that the root hands some to the idle worker
    if scoop.worker[1] != 0:
        time.sleep(60)  # blocking: this worker cannot even hear the end of the run
    return i


def which_worker(_):
    time.sleep(0.01)
    return scoop.worker[1]


if __name__ == "__main__":
    # First make sure the other worker has joined (and is idle, asking for work).
    while len(set(futures.map(which_worker, range(4)))) < scoop.SIZE:
        pass
    pending = [futures.submit(slow_elsewhere, i) for i in range(20)]
    done, not_done = futures.wait(pending, timeout=1.0)
    print(f"done {len(done)}, abandoned {len(not_done)}", flush=True)
