"""Errors through the launcher: ``python -m scoop_launch -n N api_errors.py N [check...]``.

A task's exception reaches the waiter with its type and message (and, when it ran on another
worker, a RemoteTraceback as ``__cause__`` and a note naming host and worker), at any depth of a
task tree; objects that cannot be pickled are refused at once, or come back as errors naming
them; the pool goes on serving afterwards.
"""

import socket
import sys
import threading
import time

import greenlet
from _checks import check, run_checks

import scoop
from scoop import futures
from scoop.errors import RemoteTraceback, SerializationError

EXPECTED_SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 1
HOST = socket.gethostname()
LOCK = threading.Lock()
REMOTE_SEEN = {}


class TaskError(Exception):
    """An exception class of the script: workers rebuild it as this very type."""


class BadStrError(Exception):
    """An exception whose ``__str__`` itself fails."""

    def __str__(self):
        raise RuntimeError("this __str__ fails")


class LockedError(Exception):
    """An exception that cannot be pickled (it holds a lock)."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def fail_after_work(i):
    time.sleep(0.004)
    raise TaskError(f"task {i} failed")


def raise_bad_str(i):
    time.sleep(0.004)
    raise BadStrError(i)


def raise_greenlet_exit(i):
    time.sleep(0.004)
    raise greenlet.GreenletExit(f"gevent-style exit {i}")


def ident(x):
    return x


def work(x):
    time.sleep(0.004)
    return x, scoop.worker[1]


def tree(depth, index, bad_leaf):
    """A binary tree of nested maps; leaf ``bad_leaf`` raises."""
    if depth == 0:
        if index == bad_leaf:
            raise TaskError(f"leaf {index} failed")
        return 1
    children = [2 * index, 2 * index + 1]
    return sum(futures.map(tree, [depth - 1] * 2, children, [bad_leaf] * 2))


def chain(k):
    """Each task waits on the next; the last raises."""
    if k == 0:
        raise KeyError("end of the chain")
    return futures.submit(chain, k - 1).result()


def return_lock(_):
    time.sleep(0.004)
    return scoop.worker[1], threading.Lock()


def raise_locked(i):
    time.sleep(0.004)
    raise LockedError(f"locked {i}")


def check_remote_details(exc, function_name, kind):
    """Whatever ran remotely carries a RemoteTraceback cause and a note naming where."""
    cause = exc.__cause__
    if cause is None:
        return False
    assert isinstance(cause, RemoteTraceback), repr(cause)
    assert function_name in cause.traceback_text, cause.traceback_text
    notes = getattr(exc, "__notes__", [])
    assert any("worker" in note and HOST in note for note in notes), notes
    REMOTE_SEEN[kind] = REMOTE_SEEN.get(kind, 0) + 1
    return True


@check
def check_exception_type_and_message():
    fs = [futures.submit(fail_after_work, i) for i in range(60)]
    for i, fut in enumerate(fs):
        try:
            fut.result()
        except TaskError as exc:
            assert type(exc) is TaskError and str(exc) == f"task {i} failed"
            check_remote_details(exc, "fail_after_work", "direct")
        else:
            raise AssertionError("the task's error must be raised by result()")
    # exception() gives the same object, without raising.
    exc = fs[0].exception()
    assert type(exc) is TaskError and str(exc) == "task 0 failed"
    # Builtin types too, through map.
    try:
        list(futures.map(int, ["1", "two"]))
    except ValueError as exc:
        assert "two" in str(exc)
    else:
        raise AssertionError("map must raise the task's error")


@check
def check_exception_deep_in_tree():
    for bad_leaf in (0, 37, 63):
        try:
            futures.submit(tree, 6, 0, bad_leaf).result()
        except TaskError as exc:
            assert type(exc) is TaskError and str(exc) == f"leaf {bad_leaf} failed", exc
            check_remote_details(exc, "tree", "tree")
        else:
            raise AssertionError("the leaf's error must reach the root")
    try:
        futures.submit(chain, 60).result()
    except KeyError as exc:
        assert type(exc) is KeyError and exc.args == ("end of the chain",)
        check_remote_details(exc, "chain", "chain")
    else:
        raise AssertionError("the chain's error must reach the root")
    # The same trees without a failing leaf still work.
    assert futures.submit(tree, 6, 0, -1).result() == 64


@check
def check_unpicklable_argument_refused_at_once():
    for call in (
        lambda: futures.submit(ident, LOCK),
        lambda: futures.submit(ident, x=LOCK),
        lambda: futures.map(ident, [1, LOCK, 3]),
        lambda: futures.map_as_completed(ident, [LOCK]),
    ):
        try:
            call()
        except SerializationError as exc:
            assert "lock" in str(exc).lower(), exc
        else:
            raise AssertionError("an unpicklable argument must raise SerializationError")
    try:
        futures.submit(ident, x=LOCK)
    except SerializationError as exc:
        assert "'x'" in str(exc), exc


@check
def check_unpicklable_function_refused_at_once():
    lock = threading.Lock()

    def holds_lock():
        return lock.locked()

    try:
        futures.submit(holds_lock)
    except SerializationError as exc:
        assert "holds_lock" in str(exc), exc
        assert "lock" in str(exc).lower()
    else:
        raise AssertionError("an unpicklable function must raise SerializationError")
    try:
        futures.map(holds_lock, [])
    except SerializationError:
        pass
    else:
        raise AssertionError("map with an unpicklable function must raise SerializationError")


@check
def check_unpicklable_result():
    # It fails wherever the task ran, the root included: a task may run on any worker.
    fs = [futures.submit(return_lock, i) for i in range(60)]
    for fut in fs:
        exc = fut.exception()
        assert isinstance(exc, SerializationError), repr(exc)
        assert "lock" in str(exc).lower() and "return_lock" in str(exc), exc
        if " on worker 0 " not in str(exc):
            REMOTE_SEEN["unpicklable result"] = REMOTE_SEEN.get("unpicklable result", 0) + 1
    assert [x for x, _ in futures.map(work, range(40))] == list(range(40))  # the pool goes on
    # In a map, many items travel as one task: the error names the function and the item.
    try:
        list(futures.map(return_lock, range(200)))
    except SerializationError as exc:
        assert "return_lock" in str(exc) and "run_chunk" not in str(exc), exc
        assert "for the map item (" in str(exc), exc
        print(f"INFO map result error: {exc}")
    # The map was left at its first error; let its other tasks end before the next check, which
    # needs idle workers.
    futures.shutdown(wait=True)


@check
def check_unpicklable_exception():
    fs = [futures.submit(raise_locked, i) for i in range(60)]
    for i, fut in enumerate(fs):
        exc = fut.exception()
        assert exc is not None
        if type(exc) is LockedError:
            assert str(exc) == f"locked {i}"
        else:
            assert "LockedError" in str(exc) and f"locked {i}" in str(exc), exc
            assert isinstance(exc.__cause__, RemoteTraceback)
            assert "raise_locked" in exc.__cause__.traceback_text
            REMOTE_SEEN["unpicklable exception"] = REMOTE_SEEN.get("unpicklable exception", 0) + 1
    assert [x for x, _ in futures.map(work, range(40))] == list(range(40))  # the pool goes on


@check
def check_exception_whose_str_fails():
    for i, fut in enumerate([futures.submit(raise_bad_str, i) for i in range(40)]):
        exc = fut.exception(timeout=60)
        assert type(exc) is BadStrError and exc.args == (i,), repr(exc)
    try:
        list(futures.map(raise_bad_str, range(40)))
    except BadStrError:
        pass
    else:
        raise AssertionError("map did not raise the task's exception")
    assert [x for x, _ in futures.map(work, range(40))] == list(range(40))  # the pool goes on


@check
def check_task_raising_greenlet_exit_fails_like_any_other():
    # GreenletExit is what gevent code raises; it must not be mistaken for the scheduler's own.
    for i, fut in enumerate([futures.submit(raise_greenlet_exit, i) for i in range(40)]):
        exc = fut.exception(timeout=60)
        assert isinstance(exc, greenlet.GreenletExit), repr(exc)
        assert f"gevent-style exit {i}" in str(exc)
    try:
        list(futures.map(raise_greenlet_exit, range(40)))
    except greenlet.GreenletExit:
        pass
    else:
        raise AssertionError("map did not raise the task's GreenletExit")


@check
def check_workers_that_raised_keep_serving():
    raised_on = set()
    for fut in [futures.submit(fail_after_work, i) for i in range(60)]:
        exc = fut.exception()
        for note in getattr(exc, "__notes__", []):
            raised_on.add(int(note.split("worker ", 1)[1].split()[0]))
    assert {x for x, _ in futures.map(work, range(60))} == set(range(60))
    print(f"INFO remote failures seen: {REMOTE_SEEN}; raised on workers {sorted(raised_on)}")


@check
def check_remote_paths_were_exercised():
    if EXPECTED_SIZE == 1:
        assert not REMOTE_SEEN, REMOTE_SEEN  # everything ran on the root
        return
    for kind in ("direct", "unpicklable result", "unpicklable exception"):
        assert REMOTE_SEEN.get(kind), f"no {kind!r} error came from another worker: {REMOTE_SEEN}"


if __name__ == "__main__":
    run_checks()
