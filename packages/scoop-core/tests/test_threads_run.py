"""A whole run in one process: a broker and workers in threads, over the in-memory transport."""

import os
import threading
import time
from collections import Counter

import pytest

from scoop import _runtime, futures, shared
from scoop._broker import Broker
from scoop._protocol import Codec, local_versions
from scoop._worker import WorkerScheduler
from scoop.errors import RemoteTraceback, SerializationError
from scoop.testing import memory_transport
from scoop.transport import BindOptions, ConnectOptions


def run_in_threads(size, root):
    """Run ``root()`` as the root task of a run of ``size`` workers; return what it returned."""
    transport = memory_transport()
    secret = os.urandom(32)
    endpoint = transport.bind(BindOptions())
    broker = Broker(endpoint, Codec(secret), "memory", size=size)
    outcome = {}

    def worker(index):
        link = transport.connect(ConnectOptions(address=endpoint.address))
        scheduler = WorkerScheduler(link, Codec(secret), index, size, hostname="thread-host")
        _runtime.install(scheduler, thread_only=True)
        try:
            scheduler.join(local_versions("memory"))
            if index == 0:

                def main():
                    try:
                        outcome["value"] = root()
                    except BaseException as exc:
                        outcome["error"] = exc

                outcome["code"] = scheduler.run_root(main)
            else:
                scheduler.serve()
        finally:
            scheduler.close()

    threads = [threading.Thread(target=broker.serve, daemon=True)]
    threads += [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the run did not end"
    endpoint.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def worker_index(_=None):
    time.sleep(0.001)  # long enough that idle workers ask for work
    return _runtime.current().index


def tree(depth):
    if depth == 0:
        return 1
    return sum(futures.map(tree, [depth - 1] * 3))


def fail_deep(depth):
    if depth == 0:
        raise KeyError("deep down")
    return futures.submit(fail_deep, depth - 1).result()


def fail_on_other_worker(_):
    time.sleep(0.002)
    if _runtime.current().index != 0:
        raise ValueError(f"raised on {_runtime.current().index}")
    return "root"


def unpicklable_result(_):
    time.sleep(0.002)
    if _runtime.current().index != 0:
        return threading.Lock()
    return "root"


def read_constant(_):
    time.sleep(0.001)
    return shared.getConst("table", timeout=5)["k"]


@pytest.mark.timeout(60)
def test_tasks_spread_over_every_worker():
    counts = run_in_threads(3, lambda: Counter(futures.map(worker_index, range(300))))
    assert sum(counts.values()) == 300
    assert set(counts) == {0, 1, 2}


@pytest.mark.timeout(60)
def test_tree_of_subtasks_across_workers():
    assert run_in_threads(3, lambda: tree(5)) == 3**5


@pytest.mark.timeout(60)
def test_remote_exception_keeps_type_and_chains_traceback():
    def root():
        results = []
        for fut in futures.as_completed(
            [futures.submit(fail_on_other_worker, i) for i in range(40)]
        ):
            results.append(fut.exception())
        remote = [e for e in results if e is not None]
        assert remote, "no task ran on another worker"
        return remote[0]

    error = run_in_threads(2, root)
    assert isinstance(error, ValueError) and "raised on 1" in str(error)
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "fail_on_other_worker" in error.__cause__.traceback_text
    assert any("worker 1 on host thread-host" in note for note in error.__notes__)


@pytest.mark.timeout(60)
def test_exception_deep_in_a_tree_reaches_the_root():
    def root():
        try:
            futures.submit(fail_deep, 6).result()
        except KeyError as exc:
            return exc
        return None

    assert isinstance(run_in_threads(3, root), KeyError)


@pytest.mark.timeout(60)
def test_unpicklable_result_names_it_and_pool_goes_on():
    def root():
        outcomes = [
            f.exception()
            for f in futures.as_completed(
                [futures.submit(unpicklable_result, i) for i in range(40)]
            )
        ]
        errors = [e for e in outcomes if e is not None]
        after = list(futures.map(worker_index, range(50)))
        return errors, after

    errors, after = run_in_threads(2, root)
    assert errors and all(isinstance(e, SerializationError) for e in errors)
    assert "lock" in str(errors[0]) and "cannot be pickled" in str(errors[0])
    assert len(after) == 50


@pytest.mark.timeout(60)
def test_shared_constant_reaches_other_workers():
    def root():
        shared.setConst(table={"k": 42})
        return Counter(futures.map(read_constant, range(100)))

    assert run_in_threads(2, root) == Counter({42: 100})


def fail_on_worker_one(x):
    time.sleep(0.0005)
    if _runtime.current().index != 0:
        raise ValueError(f"item {x} failed remotely")
    return x


@pytest.mark.timeout(60)
def test_batched_map_spreads_and_reports_an_item_failure_remotely():
    def root():
        seen = Counter(futures.map(worker_index, range(2000)))
        try:
            list(futures.map(fail_on_worker_one, range(2000)))
        except ValueError as exc:
            return seen, exc
        return seen, None

    seen, error = run_in_threads(2, root)
    assert set(seen) == {0, 1} and sum(seen.values()) == 2000
    assert error is not None, "no item ran on worker 1"
    assert "failed remotely" in str(error)
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "fail_on_worker_one" in error.__cause__.traceback_text
    assert any("worker 1 on host thread-host" in note for note in error.__notes__)


RELEASE = threading.Event()


def wait_for_release(_):
    RELEASE.wait(10)  # a task the waiter could not have run itself within its timeout
    return _runtime.current().index


def test_a_timeout_holds_when_another_worker_is_idle():
    """A waiter with a timeout hands even its last task to an idle worker: had it run the task
    itself, its timeout could not fire until the task returned (tasks are not preempted)."""
    RELEASE.clear()

    def root():
        _wait_for_demand(_runtime.current())
        fut = futures.submit(wait_for_release, 0)
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.2)
        RELEASE.set()
        return fut.result(timeout=30)

    assert run_in_threads(2, root) == 1


def _wait_for_demand(scheduler):
    deadline = time.monotonic() + 10
    while not scheduler.demand and time.monotonic() < deadline:
        time.sleep(0.01)  # polls a condition: the communication thread records the demand
    assert scheduler.demand, "the idle worker never asked for work"


@pytest.mark.timeout(60)
def test_a_cancelled_task_handed_out_does_not_hide_an_idle_worker():
    """Handing out a queue whose oldest task was cancelled sends nothing: the demand stays
    known, so the idle worker still gets the next tasks (it once starved for good)."""

    def root():
        _wait_for_demand(_runtime.current())
        cancelled = futures.submit(worker_index)
        assert cancelled.cancel()
        other = futures.submit(worker_index)
        futures.wait([cancelled, other])
        return Counter(futures.map(worker_index, range(300)))

    assert set(run_in_threads(2, root)) == {0, 1}
