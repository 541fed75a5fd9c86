"""The root ends while other workers are still busy in tasks it no longer waits for."""

import time

import scoop
from scoop import futures


def slow_elsewhere(i):
    if scoop.worker[1] != 0:
        time.sleep(60)  # blocking: this worker cannot even hear the end of the run
    return i


if __name__ == "__main__":
    pending = [futures.submit(slow_elsewhere, i) for i in range(20)]
    done, not_done = futures.wait(pending, timeout=1.0)
    print(f"done {len(done)}, abandoned {len(not_done)}", flush=True)
