"""Root script: one task (item 7) kills whatever worker runs it; the others are fine.

Prints ``GAVE UP <error type>: <message>`` for the task given up, then ``OK <n> others``.
The root never runs item 7 while another worker is left: the script waits on it with a timeout
first (which hands it away: a task run here could hold the waiter past its timeout), and once it
has killed a worker the broker keeps it from the root. So the run survives the task.
"""

import os
import signal
import time

import scoop
from scoop import futures
from scoop.errors import KilledWorkerError


def crash_on_seven(x):
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return x


def which_worker(_):
    time.sleep(0.01)
    return scoop.worker[1]


if __name__ == "__main__":
    # The root's script starts before the others join, and the root runs the first tasks
    # itself meanwhile: item 7 must find the others there.
    while len(set(futures.map(which_worker, range(4 * scoop.SIZE)))) < scoop.SIZE:
        pass
    submitted = [futures.submit(crash_on_seven, i) for i in range(40)]
    # Without this, the root could meet item 7 first while it waits on the others in order.
    futures.wait([submitted[7]], timeout=100)
    for fut in submitted:
        try:
            fut.result()
        except KilledWorkerError as exc:
            print(f"GAVE UP {type(exc).__name__}: {exc}", flush=True)
    fine = [fut.result() for fut in submitted if fut.exception() is None]
    assert fine == [i for i in range(40) if i != 7], fine
    print(f"OK {len(fine)} others", flush=True)
