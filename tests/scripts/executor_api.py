"""Checks of scoop.Executor, run as a plain program (``python executor_api.py``).

Everything here is defined in ``__main__``, which exists only in this process: the workers get
functions and classes by value. This process is the client: it runs no task, so every check
that looks at where tasks ran fails if something ran here.
"""

import asyncio
import concurrent.futures as cf
import gc
import itertools
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _checks import check, raises, run_checks

import scoop
from scoop import futures, shared
from scoop.errors import RemoteTraceback, SerializationError

WORKERS = 2
executor = None


def where(x):
    time.sleep(0.02)  # blocking: both workers get some
    return x, os.getpid(), scoop.worker[1]


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Odd(ValueError):
    pass


def reject_odd(x):
    if x % 2:
        raise Odd(f"{x} is odd")
    return x


OFFSET = 0


def add_offset(x):
    return x + OFFSET


def leaves(depth):
    if depth == 0:
        return 1
    return sum(futures.map(leaves, [depth - 1, depth - 1]))


def submit_and_wait(n):
    fs = [futures.submit(abs, -i) for i in range(n)]
    return sum(f.result() for f in futures.as_completed(fs))


def read_constant(key):
    return shared.getConst("table", timeout=10)[key]


@check
def futures_are_concurrent_futures():
    fs = [executor.submit(pow, 2, i) for i in range(10)]
    assert all(isinstance(f, cf.Future) for f in fs)
    _, not_done = cf.wait(fs, timeout=30)
    assert not not_done
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=30)) == [2**i for i in range(10)]
    seen = []
    fs[0].add_done_callback(seen.append)
    assert seen == [fs[0]]


@check
def tasks_run_on_the_workers_never_here():
    results = list(executor.map(where, range(40)))
    assert [x for x, _, _ in results] == list(range(40))
    pids = {pid for _, pid, _ in results}
    indices = {index for _, _, index in results}
    assert os.getpid() not in pids, "a task ran in the client"
    assert len(pids) == WORKERS, f"tasks ran on {len(pids)} workers, expected {WORKERS}"
    assert indices == {1, 2}, indices


@check
def main_objects_travel_by_value():
    offset = 10
    assert executor.submit(lambda p: p.norm1() + offset, Point(3, -4)).result(30) == 17
    moved = executor.submit(lambda p: Point(p.y, p.x), Point(1, 2)).result(30)
    assert isinstance(moved, Point) and (moved.x, moved.y) == (2, 1)


@check
def exceptions_keep_type_message_and_remote_traceback():
    results = []
    try:
        executor.submit(reject_odd, 3).result(30)
    except Odd as exc:
        results.append(exc)
    assert results, "no Odd raised"
    exc = results[0]
    assert str(exc) == "3 is odd"
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "reject_odd" in str(exc.__cause__)
    mapped = executor.map(reject_odd, [0, 2, 4, 5, 6], chunksize=2)
    assert [next(mapped), next(mapped), next(mapped)] == [0, 2, 4]
    try:
        next(mapped)
    except Odd as exc:
        assert str(exc) == "5 is odd"
    else:
        raise AssertionError("the fourth item did not raise")


@check
def tasks_submit_and_wait_on_subtasks():
    assert executor.submit(leaves, 5).result(60) == 32
    assert executor.submit(submit_and_wait, 30).result(60) == sum(range(30))


@check
def scoop_futures_here_run_on_the_executor():
    fut = futures.submit(where, 1)
    assert isinstance(fut, cf.Future)
    assert fut.result(30)[1] != os.getpid()
    results = list(futures.map(where, range(30)))
    assert [x for x, _, _ in results] == list(range(30))
    assert os.getpid() not in {pid for _, pid, _ in results}
    done, _ = futures.wait([futures.submit(abs, -3)], timeout=30)
    assert [f.result() for f in done] == [3]
    assert sorted(futures.map_as_completed(abs, [-1, -2, -3])) == [1, 2, 3]

    class Toolbox:  # as DEAP users write it: toolbox.register("map", futures.map)
        map = staticmethod(futures.map)

    assert list(Toolbox.map(reject_odd, [0, 2, 4])) == [0, 2, 4]


@check
def map_timeout_counts_from_the_call_and_cancels_the_rest():
    start = time.monotonic()
    results = executor.map(time.sleep, [0.01, 1, 1, 1], timeout=0.5)
    assert next(results) is None
    raises(TimeoutError, lambda: next(results))
    assert time.monotonic() - start < 10
    assert executor._run.pending() == [], "a future of the map was left running"


def mark_and_sleep(directory, name, seconds):
    with open(os.path.join(directory, str(name)), "w"):
        pass
    time.sleep(seconds)
    return name


@check
def cancelled_tasks_that_have_not_started_never_run():
    directory = tempfile.mkdtemp()
    with scoop.Executor(1) as other:
        results = other.map(
            mark_and_sleep, itertools.repeat(directory), range(6), [0.01] + [1.0] * 5, timeout=0.5
        )
        assert next(results) == 0
        raises(TimeoutError, lambda: next(results))
        # Two probes one after the other: had a cancelled task stayed queued (at the broker or
        # on the worker), it would have run before the second probe's answer.
        for probe in ("probe1", "probe2"):
            assert other.submit(mark_and_sleep, directory, probe, 0).result(30) == probe
    ran = sorted(os.listdir(directory))
    assert ran == ["0", "1", "probe1", "probe2"], ran


@check
def map_chunks_keep_order():
    assert list(executor.map(pow, range(100), itertools.repeat(2), chunksize=7)) == [
        i**2 for i in range(100)
    ]


@check
def map_with_buffersize_reads_lazily():
    drawn = []

    def numbers():
        for i in itertools.count():
            drawn.append(i)
            yield i

    results = executor.map(abs, numbers(), buffersize=3)
    assert list(itertools.islice(results, 10)) == list(range(10))
    assert len(drawn) <= 13, f"{len(drawn)} items drawn for 10 results with buffersize=3"
    results.close()


@check
def asyncio_uses_the_executor():
    async def main():
        loop = asyncio.get_running_loop()
        first = await asyncio.wrap_future(executor.submit(where, 1))
        second = await loop.run_in_executor(executor, where, 2)
        return first, second

    first, second = asyncio.run(main())
    assert (first[0], second[0]) == (1, 2)
    assert os.getpid() not in (first[1], second[1])


@check
def shared_constants_reach_the_tasks():
    shared.setConst(table={"a": 1, "b": 2})
    assert shared.getConst("table") == {"a": 1, "b": 2}
    assert sorted(executor.map(read_constant, ["a", "b"])) == [1, 2]


@check
def a_call_that_cannot_travel_fails_at_submit():
    try:
        executor.submit(abs, threading.Lock())
    except SerializationError as exc:
        assert "argument 0" in str(exc), exc
    else:
        raise AssertionError("no SerializationError")


@check
def cancel_drops_a_result_not_yet_back():
    fut = executor.submit(time.sleep, 0.5)
    assert fut.cancel() and fut.cancelled()
    assert executor.submit(abs, -1).result(30) == 1
    # Cancelled while it runs on a worker: done for every way of waiting.
    running = executor.submit(time.sleep, 2)
    time.sleep(0.3)
    assert running.cancel()
    done, not_done = cf.wait([running], timeout=5)
    assert done == {running} and not not_done
    assert list(cf.as_completed([running], timeout=5)) == [running]
    futures.shutdown()  # scoop.futures' wait for what is pending here returns too


@check
def a_changed_global_reaches_the_workers():
    global OFFSET
    OFFSET = 1
    assert executor.submit(add_offset, 1).result(30) == 2
    OFFSET = 100
    assert executor.submit(add_offset, 1).result(30) == 101
    assert list(executor.map(add_offset, [1])) == [101]


@check
def done_callbacks_may_block_and_use_the_executor():
    got = []
    finished = threading.Event()

    def callback(fut):
        got.append(executor.submit(abs, -fut.result()).result(30))  # waits on the Executor
        finished.set()

    executor.submit(abs, 5).add_done_callback(callback)
    assert finished.wait(30) and got == [5]


@check
def two_threads_setting_one_constant_one_wins():
    errors = []

    def set_it(value):
        try:
            shared.setConst(race=value)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=set_it, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1, errors
    assert executor.submit(abs, -6).result(30) == 6  # the Executor goes on


@check
def an_executor_nobody_refers_to_is_collected_and_its_run_ends():
    other = scoop.Executor(hosts="localhost", workers=1)
    assert other.submit(abs, -1).result(30) == 1
    session = other._run.session
    del other
    gc.collect()
    deadline = time.monotonic() + 30
    while any(p.popen.poll() is None for p in [*session.local, session.broker]):
        assert time.monotonic() < deadline, "the run of a collected Executor went on"
        time.sleep(0.05)


@check
def submit_after_shutdown_raises():
    other = scoop.Executor(1)
    assert other.submit(abs, -2).result(30) == 2
    other.shutdown()
    try:
        other.submit(abs, -2)
    except RuntimeError as exc:
        assert "after shutdown" in str(exc)
    else:
        raise AssertionError("no RuntimeError")
    assert all(p.popen.poll() is not None for p in other._run.session.local)
    assert other._run.session.broker.popen.poll() is not None


@check
def shutdown_without_waiting_lets_tasks_finish():
    other = scoop.Executor(1)
    fut = other.submit(where, 5)
    start = time.monotonic()
    other.shutdown(wait=False)
    assert time.monotonic() - start < 1.0
    assert fut.result(30)[0] == 5
    assert other._run.finished.wait(30)


@check
def shutdown_can_cancel_what_is_not_done():
    other = scoop.Executor(1)
    fs = [other.submit(time.sleep, 0.3) for _ in range(6)]
    other.shutdown(cancel_futures=True)
    assert all(f.done() for f in fs)
    assert any(f.cancelled() for f in fs)


class Stop(Exception):
    pass


@check
def an_exception_leaving_the_block_ends_the_run_now():
    start = time.monotonic()
    try:
        with scoop.Executor(1) as other:
            other.submit(time.sleep, 60)
            session = other._run.session
            raise Stop
    except Stop:
        pass
    assert time.monotonic() - start < 10
    assert all(p.popen.poll() is not None for p in session.local)


if __name__ == "__main__":
    with scoop.Executor(WORKERS) as executor:
        run_checks(wait_for_workers=False)
