"""The direct path between workers of one machine: ``direct_path.py on|off [check...]``.

Run at ``-n 3`` on one machine. A task a waiter with a timeout awaits goes straight to a worker
that just said it was idle, and its result comes straight back (scoop._direct); each check
asserts where the tasks ran and, with ``on``, that they did travel on the direct path (the
root's counters), so that none passes because the root ran a task itself or because everything
went through the broker.
"""

import os
import signal
import sys
import time

from _checks import check, run_checks, wait_for_every_worker

import scoop
from scoop import _runtime, futures

MODE = sys.argv[1]
TRIPS = 300


def runner(_=None):
    return scoop.worker[1]


def direct_sent():
    channel = _runtime.current().direct
    return None if channel is None else channel.sent


def kill_first_runner(marker_dir):
    """Kills the worker that runs it first (a marker file says it happened); then returns."""
    try:
        fd = os.open(os.path.join(marker_dir, "killed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return scoop.worker[1]
    os.write(fd, str(scoop.worker[1]).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return None


@check
def check_forced_remote_trips_go_direct():
    wait_for_every_worker()
    before = direct_sent()
    start = time.perf_counter()
    ran_on = [futures.submit(runner).result(timeout=30) for _ in range(TRIPS)]
    took = (time.perf_counter() - start) / TRIPS
    assert 0 not in ran_on, "a task a waiter with a timeout awaits ran on the root"
    if MODE == "on":
        sent = direct_sent() - before
        # The first trip (no worker has said it is idle yet) goes through the broker.
        assert sent >= TRIPS * 0.8, f"only {sent} of {TRIPS} tasks went on the direct path"
    else:
        assert before is None, "the direct path is on though SCOOP_DIRECT_PATH=off"
    print(f"ROUND TRIP {took * 1e6:.0f} us", flush=True)


@check
def check_many_awaited_tasks_spread_and_all_come_back():
    # Only one task per idle worker goes directly: the rest go to the broker, which shares
    # them out, so all three workers run some (each task blocks, so the root cannot run them
    # all itself while the others idle).
    def sleepy(i):
        time.sleep(0.01)
        return i, scoop.worker[1]

    fs = [futures.submit(sleepy, i) for i in range(60)]
    done, not_done = futures.wait(fs, timeout=60)
    assert len(done) == 60 and not not_done
    results = [f.result() for f in fs]
    assert [i for i, _ in results] == list(range(60))
    assert {w for _, w in results} >= {1, 2}, f"ran on {sorted({w for _, w in results})}"


@check
def check_a_worker_killed_holding_a_direct_task():
    marker_dir = os.environ["SCOOP_TEST_MARKERS"]
    for _ in range(20):  # a worker has just said it is idle: the next task goes directly
        futures.submit(runner).result(timeout=30)
    before = direct_sent()
    survivor = futures.submit(kill_first_runner, marker_dir).result(timeout=60)
    with open(os.path.join(marker_dir, "killed")) as killed:
        victim = int(killed.read())
    assert victim != 0 and survivor not in (None, victim), (victim, survivor)
    if MODE == "on":
        # The first run went directly; its rerun went through the broker (it lost a worker).
        assert direct_sent() - before == 1, direct_sent() - before
    print(f"KILLED worker {victim}; ran again on worker {survivor}", flush=True)
    channel = _runtime.current().direct
    if channel is not None:  # the test checks that the run removed it, the killed one's too
        print(f"DIRECT DIRECTORY {channel.directory}", flush=True)


if __name__ == "__main__":
    run_checks()
