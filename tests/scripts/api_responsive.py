"""A worker that always answers: ``python -m scoop_launch -n N api_responsive.py N [check...]``.

Tasks here block their worker (``time.sleep``), as numpy calls or long loops do. Each check is
built so that it fails if the root runs the blocking task itself, or if a blocked worker keeps
the tasks queued behind its blocking one: it asserts where the blocking task ran, not only how
long things took. At ``-n 1`` there is nobody to hand work to: the checks then assert what a
timeout can promise there (nothing while the root itself runs the task).
"""

import sys
import time

from _checks import check, run_checks, task_runners

import scoop
from scoop import futures

EXPECTED_SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 1

#: How long the blocking tasks block, in seconds.
BLOCK_S = 2.0
_blocked_here = False


def block(seconds):
    """Hold this worker (a blocking call); return the worker that ran it."""
    time.sleep(seconds)
    return scoop.worker[1]


def quick(x):
    time.sleep(0.01)
    return x, scoop.worker[1]


def block_first_item_on_worker_1(x):
    """Items take 20 ms, but the first item worker 1 runs blocks it for 1.5 * BLOCK_S."""
    global _blocked_here
    if scoop.worker[1] == 1 and not _blocked_here:
        _blocked_here = True
        time.sleep(1.5 * BLOCK_S)
        return x, "blocked"
    time.sleep(0.02)
    return x, scoop.worker[1]


@check
def check_result_timeout_holds_with_idle_workers():
    start = time.monotonic()
    fut = futures.submit(block, BLOCK_S)
    try:
        fut.result(timeout=0.2)
    except TimeoutError:
        took = time.monotonic() - start
        assert EXPECTED_SIZE > 1, "at -n 1 the root runs the task: its result is there after it"
        assert took < BLOCK_S / 2, f"result(timeout=0.2) raised only after {took:.2f} s"
    else:
        assert EXPECTED_SIZE == 1, "result(timeout=0.2) returned a 2 s task's result"
    ran_on = fut.result()
    if EXPECTED_SIZE > 1:
        assert ran_on != 0, "the root ran the task a waiter with a timeout awaited"


@check
def check_wait_timeout_holds_with_one_long_task_among_21():
    fs = [futures.submit(quick, i) for i in range(20)]
    long = futures.submit(block, BLOCK_S)
    start = time.monotonic()
    done, not_done = futures.wait([*fs, long], timeout=0.5)
    took = time.monotonic() - start
    if EXPECTED_SIZE > 1:  # at -n 1 the wait returns once the task the root runs returns
        assert took < BLOCK_S / 2, f"wait(timeout=0.5) returned after {took:.2f} s"
        assert long in not_done and long not in done
    assert [f.result()[0] for f in fs] == list(range(20))
    ran_on = long.result()
    if EXPECTED_SIZE > 1:
        assert ran_on != 0, "the root ran the long task a waiter with a timeout awaited"


@check
def check_blocked_worker_hands_its_queue_away():
    if task_runners(EXPECTED_SIZE) < 2:
        return  # nobody else could take the queue
    # Fewer items than 16 per worker: one item per map chunk, so no item shares the fate of
    # the blocked one. Worker 1 blocks on the first item it runs; the items queued behind it
    # there must still come back long before it returns.
    items = 12 * EXPECTED_SIZE
    start = time.monotonic()
    arrivals = []
    for x, where in futures.map_as_completed(block_first_item_on_worker_1, range(items)):
        arrivals.append((time.monotonic() - start, x, where))
    assert sorted(x for _, x, _ in arrivals) == list(range(items))
    blocked = [a for a in arrivals if a[2] == "blocked"]
    assert len(blocked) == 1, f"worker 1 never ran an item: {arrivals}"
    others = [t for t, _, where in arrivals if where != "blocked"]
    assert arrivals[-1][2] == "blocked", f"a result arrived after the blocked one: {arrivals}"
    assert max(others) < BLOCK_S * 0.75, (
        f"the other results waited for the blocked worker: last at {max(others):.2f} s"
    )


def tiny(x):
    return x


def block_and_say_when(seconds):
    began = time.time()  # one machine: the workers' clocks are the root's
    time.sleep(seconds)
    return scoop.worker[1], began


@check
def check_long_tasks_after_tiny_ones_spread_at_once():
    runners = task_runners(EXPECTED_SIZE)
    if runners < 2:
        return  # nobody else could take them
    # Tiny tasks make the workers ask for many at once; the long ones that follow must not
    # wait behind the first of them on the worker that got them all.
    assert len(list(futures.map(tiny, range(5000)))) == 5000
    count = min(runners, 3)
    outcomes = [f.result() for f in [futures.submit(block_and_say_when, 0.8) for _ in range(count)]]
    workers = {worker for worker, _ in outcomes}
    starts = sorted(began for _, began in outcomes)
    assert len(workers) == count, f"{count} long tasks ran on workers {sorted(workers)}"
    assert starts[-1] - starts[0] < 0.5, (
        f"a long task started {starts[-1] - starts[0]:.2f} s after the first, on {outcomes}"
    )


@check
def check_sleeping_tasks_finish_in_the_longest_one():
    # The original SCOOP's callback example, in half seconds: 5 tasks of 0.5 .. 2.5 s.
    start = time.monotonic()
    fs = [futures.submit(block, 0.5 * i) for i in range(1, 6)]
    workers = {f.result() for f in futures.as_completed(fs)}
    took = time.monotonic() - start
    if task_runners(EXPECTED_SIZE) >= 4:
        # One worker each but for one: 3 s at best; run one after the other on fewer workers,
        # they take 4 s and more. (On 3 workers the best is 2.5 s but 3.5 s is common.)
        assert took < 3.5, f"took {took:.2f} s on workers {sorted(workers)}"


if __name__ == "__main__":
    run_checks()
