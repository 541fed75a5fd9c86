"""The public API through the launcher: ``python -m scoop_launch -n N api_core.py N [check...]``.

Every check asserts internally; ``_checks.run_checks`` prints one PASS/FAIL line per check. Tasks
that must run on other workers do a few milliseconds of work, many of them, and report
``scoop.worker``. ``nap`` waits without blocking its worker (a ``getConst`` of a constant that is
never set), so slow futures cost no worker time.
"""

import concurrent.futures
import functools
import itertools
import logging
import operator
import socket
import sys
import time

from _checks import check, root_runs_tasks, run_checks, task_runners

import scoop
from scoop import futures, shared

EXPECTED_SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 1
HOST = socket.gethostname()


# -- task functions (top level, so that every worker has them) ------------------------------


def square(x):
    return x * x


def add(a, b):
    return a + b


def ident(x):
    return x


def nap(seconds, value):
    """Wait ``seconds`` without blocking the worker, then return ``value``."""
    assert shared.getConst("__never_set__", timeout=seconds) is None
    return value


def work(x):
    """A few milliseconds of blocking work; returns x and the worker that ran it."""
    time.sleep(0.004)
    return x, scoop.worker[1]


def fail(message):
    raise ValueError(message)


def combine(a, b, *rest, c=0, **kw):
    return a, b, rest, c, sorted(kw.items())


def where():
    return scoop.IS_RUNNING, scoop.IS_ORIGIN, scoop.SIZE, scoop.worker


def globals_after_work(_):
    time.sleep(0.004)
    return where()


def read_const(name):
    time.sleep(0.004)
    return shared.getConst(name, timeout=10), scoop.worker[1]


def read_missing_const(_):
    start = time.monotonic()
    value = shared.getConst("never_defined_anywhere", timeout=0.1)
    return value, time.monotonic() - start


def set_const_in_task(name, value):
    shared.setConst(**{name: value})
    return scoop.worker[1]


def say(text):
    print(text, flush=True)
    return text


class Multiplier:
    """Its bound method is a task."""

    def __init__(self, k):
        self.k = k

    def apply(self, x):
        time.sleep(0.004)
        return x * self.k, scoop.worker[1]


class Point:
    """Instances travel as arguments and results."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None


def shift(p):
    time.sleep(0.004)
    return Point(p.x + 1, p.y * 2), scoop.worker[1]


def make_adder(k):
    def adder(x):
        time.sleep(0.004)
        return x + k, scoop.worker[1]

    return adder


def binary_tree(depth):
    """Nested maps: 2**depth leaves, each counting 1."""
    if depth == 0:
        return 1, {scoop.worker[1]}
    total, workers = 0, {scoop.worker[1]}
    for count, seen in futures.map(binary_tree, [depth - 1, depth - 1]):
        total += count
        workers |= seen
    return total, workers


def ternary_tree(depth):
    """Nested submits: 3**depth leaves."""
    if depth == 0:
        time.sleep(0.001)
        return 1, {scoop.worker[1]}
    children = [futures.submit(ternary_tree, depth - 1) for _ in range(3)]
    total, workers = 0, {scoop.worker[1]}
    for child in futures.as_completed(children):
        count, seen = child.result()
        total += count
        workers |= seen
    return total, workers


def chain(k):
    """A chain of tasks, each waiting on the next."""
    if k == 0:
        return 0
    return futures.submit(chain, k - 1).result() + 1


# -- checks ---------------------------------------------------------------------------------


@check
def check_scoop_globals():
    assert scoop.IS_RUNNING is True
    assert scoop.IS_ORIGIN is True
    assert scoop.SIZE == EXPECTED_SIZE, (scoop.SIZE, EXPECTED_SIZE)
    assert scoop.worker == (HOST, 0), scoop.worker
    assert isinstance(scoop.logger, logging.Logger)
    assert scoop.logger.name == "scoop"
    scoop.logger.info("the scoop logger works")
    seen = list(futures.map(globals_after_work, range(60)))
    for running, origin, size, worker in seen:
        assert running is True
        assert size == EXPECTED_SIZE
        assert worker[0] == HOST
        assert 0 <= worker[1] < EXPECTED_SIZE
        assert origin is (worker[1] == 0), (origin, worker)


@check
def check_map_ordered():
    result = futures.map(square, range(200))
    assert not isinstance(result, list)  # an iterator, as the builtin map
    assert list(result) == [x * x for x in range(200)]
    # Order holds even when later tasks finish first.
    assert list(futures.map(nap, [0.2, 0.1, 0.0], "abc")) == ["a", "b", "c"]


@check
def check_map_multiple_iterables():
    assert list(futures.map(add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    # Stops at the shortest iterable, as the builtin map.
    assert list(futures.map(add, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]
    assert list(futures.map(add, iter(range(5)), (x for x in range(5)))) == [0, 2, 4, 6, 8]


@check
def check_map_empty():
    assert list(futures.map(square, [])) == []
    assert list(futures.map(add, [], [1, 2])) == []
    assert list(futures.map_as_completed(square, [])) == []


@check
def check_map_as_completed():
    assert sorted(futures.map_as_completed(square, range(100))) == [x * x for x in range(100)]
    # Completion order, not input order.
    got = list(futures.map_as_completed(nap, [0.6, 0.4, 0.2, 0.0], "abcd"))
    assert got == ["d", "c", "b", "a"], got


@check
def check_submit_args_kwargs():
    fut = futures.submit(combine, 1, 2, 3, 4, c=5, d=6, e=7)
    assert isinstance(fut, futures.Future)
    assert fut.result() == (1, 2, (3, 4), 5, [("d", 6), ("e", 7)])
    assert futures.submit(combine, "x", b="y").result() == ("x", "y", (), 0, [])
    assert futures.submit(square, 12).result() == 144


@check
def check_wait():
    slow = futures.submit(nap, 1.0, "slow")
    fast = futures.submit(ident, "fast")
    result = futures.wait([slow, fast], return_when=futures.FIRST_COMPLETED)
    assert isinstance(result, tuple)
    assert result.done == {fast} and result.not_done == {slow}, result

    bad = futures.submit(fail, "boom in wait")
    done, not_done = futures.wait([slow, bad], return_when=futures.FIRST_EXCEPTION)
    assert done == {bad} and not_done == {slow}, (done, not_done)  # and no exception raised

    # FIRST_EXCEPTION with no failure waits for all, as ALL_COMPLETED.
    good = [futures.submit(nap, 0.05, i) for i in range(3)]
    done, not_done = futures.wait(good, return_when=futures.FIRST_EXCEPTION)
    assert done == set(good) and not not_done

    start = time.monotonic()
    done, not_done = futures.wait([slow], timeout=0.1)
    took = time.monotonic() - start
    assert not done and not_done == {slow}
    assert 0.09 <= took < 0.8, took

    start = time.monotonic()
    done, not_done = futures.wait([slow], timeout=0)
    assert not done and time.monotonic() - start < 0.5

    done, not_done = futures.wait([slow, fast, bad])  # ALL_COMPLETED by default
    assert done == {slow, fast, bad} and not not_done
    assert slow.result() == "slow"
    assert futures.wait([]) == (set(), set())

    try:
        futures.wait([fast], return_when="SOMETIMES")
    except ValueError:
        pass
    else:
        raise AssertionError("an unknown return_when must raise ValueError")


@check
def check_as_completed():
    fs = [futures.submit(nap, 0.05 * i, i) for i in range(5)]
    fs.append(futures.submit(fail, "failed but yielded"))
    got = list(futures.as_completed(fs))
    assert sorted(got, key=id) == sorted(fs, key=id)
    assert all(f.done() for f in got)
    failed = [f for f in got if f.exception() is not None]
    assert len(failed) == 1 and str(failed[0].exception()) == "failed but yielded"

    slow = futures.submit(nap, 1.0, "slow")
    quick = futures.submit(ident, "quick")
    seen = []
    start = time.monotonic()
    try:
        for f in futures.as_completed([slow, quick], timeout=0.2):
            seen.append(f)
    except concurrent.futures.TimeoutError:
        took = time.monotonic() - start
    else:
        raise AssertionError("as_completed(timeout=...) must raise TimeoutError")
    assert concurrent.futures.TimeoutError is TimeoutError or sys.version_info < (3, 11)
    assert seen == [quick], seen
    assert 0.15 <= took < 0.9, took
    assert slow.result() == "slow"


@check
def check_map_reduce_and_scan():
    assert futures.mapReduce(square, operator.add, range(10)) == 285
    assert futures.mapReduce(add, operator.mul, [1, 2, 3], [1, 1, 1]) == 2 * 3 * 4
    assert futures.mapScan(ident, operator.add, [1, 2, 3, 4, 5, 6]) == [1, 3, 6, 10, 15, 21]
    # The reduction is applied in input order (string concatenation is not commutative).
    assert futures.mapScan(ident, operator.add, "abcd") == ["a", "ab", "abc", "abcd"]
    assert futures.mapReduce(ident, operator.add, "abcd") == "abcd"
    assert futures.mapScan(square, operator.add, []) == []
    assert futures.mapScan(square, operator.add, [3]) == [9]
    try:
        futures.mapReduce(square, operator.add, [])
    except TypeError:
        pass
    else:
        raise AssertionError("mapReduce of an empty input must raise TypeError")
    big = list(range(300))
    assert futures.mapReduce(work, lambda a, b: (a[0] + b[0], 0), big)[0] == sum(big)


@check
def check_shutdown_waits_for_queued():
    fs = [futures.submit(nap, 0.05, i) for i in range(10)]
    futures.shutdown()
    assert all(f.done() for f in fs)
    futures.shutdown(wait=False)


@check
def check_shutdown_waits_for_started():
    started = futures.submit(nap, 0.5, "started")
    futures.wait([started], timeout=0.05)  # it has started by now, here or elsewhere
    assert started.running() and not started.done()
    futures.shutdown(wait=True)
    assert started.done(), "shutdown(wait=True) returned before a started task finished"


@check
def check_future_result_and_exception():
    slow = futures.submit(nap, 0.5, "slow")
    start = time.monotonic()
    try:
        slow.result(timeout=0.05)
    except concurrent.futures.TimeoutError as exc:
        assert isinstance(exc, TimeoutError)
    else:
        raise AssertionError("result(timeout) must raise TimeoutError")
    try:
        slow.exception(timeout=0.05)
    except concurrent.futures.TimeoutError:
        pass
    else:
        raise AssertionError("exception(timeout) must raise TimeoutError")
    assert time.monotonic() - start < 0.45
    assert slow.result(timeout=5) == "slow"
    assert slow.exception() is None
    bad = futures.submit(fail, "from exception()")
    exc = bad.exception(timeout=10)
    assert type(exc) is ValueError and str(exc) == "from exception()"
    assert bad.done() and not bad.running() and not bad.cancelled()


@check
def check_future_states():
    fut = futures.submit(nap, 0.3, "x")
    assert not fut.done() and not fut.running() and not fut.cancelled()  # still queued here
    futures.wait([fut], timeout=0.05)
    assert fut.running() and not fut.done()
    assert fut.cancel() is False  # too late: it started
    assert fut.result() == "x"
    assert fut.done() and not fut.running() and not fut.cancelled()
    assert fut.cancel() is False


@check
def check_cancel():
    fut = futures.submit(square, 3)
    assert fut.cancel() is True
    assert fut.cancelled() and fut.done() and not fut.running()
    assert fut.cancel() is True  # cancelling twice is fine
    for method in (fut.result, fut.exception):
        try:
            method()
        except concurrent.futures.CancelledError:
            pass
        else:
            raise AssertionError(f"{method.__name__}() of a cancelled future must raise")
    other = futures.submit(square, 4)
    done, _not_done = futures.wait([fut, other])
    assert done == {fut, other}
    assert set(futures.as_completed([fut, other])) == {fut, other}
    calls = []
    fut.add_done_callback(calls.append)
    assert calls == [fut]


@check
def check_add_done_callback():
    calls = []
    fut = futures.submit(nap, 0.05, 7)

    def boom(_):
        raise RuntimeError("a failing callback is logged and ignored")

    fut.add_done_callback(lambda f: calls.append(("first", f.result())))
    fut.add_done_callback(boom)
    fut.add_done_callback(lambda f: calls.append(("second", f.done())))
    assert calls == []
    assert fut.result() == 7
    assert calls == [("first", 7), ("second", True)], calls
    late = []
    fut.add_done_callback(late.append)  # already done: called at once
    assert late == [fut]
    bad = futures.submit(fail, "callback sees it")
    got = []
    bad.add_done_callback(lambda f: got.append(str(f.exception())))
    futures.wait([bad])
    assert got == ["callback sees it"]


@check
def check_shared_constants():
    table = {i: i * i for i in range(1000)}
    shared.setConst(api_table=table, api_number=42)
    assert shared.getConst("api_table") == table
    assert shared.getConst("api_number") == 42
    seen = list(futures.map(read_const, ["api_number"] * 60))
    assert all(value == 42 for value, _ in seen), seen
    try:
        shared.setConst(api_number=43)
    except TypeError as exc:
        assert "api_number" in str(exc)
    else:
        raise AssertionError("setting a constant twice must raise TypeError")
    assert shared.getConst("api_number") == 42
    start = time.monotonic()
    assert shared.getConst("never_defined_anywhere", timeout=0.1) is None
    assert 0.09 <= time.monotonic() - start < 0.8
    for value, took in futures.map(read_missing_const, range(4)):
        assert value is None and 0.09 <= took < 0.8, (value, took)
    # A constant set inside a task reaches the root too.
    futures.submit(set_const_in_task, "from_task", "hello").result()
    assert shared.getConst("from_task", timeout=10) == "hello"


@check
def check_callables_and_objects_travel():
    lam = lambda x: (time.sleep(0.004), x * 10, scoop.worker[1])[1:]  # noqa: E731
    closure = make_adder(100)
    bound = Multiplier(3).apply
    part = functools.partial(combine, "p", c=9)

    class Local:  # defined in a function: travels by value
        def __init__(self, v):
            self.v = v

        def __call__(self, x):
            time.sleep(0.004)
            return x + self.v, scoop.worker[1]

    xs = list(range(40))
    assert [v for v, _ in futures.map(lam, xs)] == [x * 10 for x in xs]
    assert [v for v, _ in futures.map(closure, xs)] == [x + 100 for x in xs]
    assert [v for v, _ in futures.map(bound, xs)] == [x * 3 for x in xs]
    assert [v for v, _ in futures.map(Local(5), xs)] == [x + 5 for x in xs]
    assert list(futures.map(part, xs)) == [("p", x, (), 9, []) for x in xs]
    points = [Point(x, x) for x in xs]
    assert [p for p, _ in futures.map(shift, points)] == [Point(x + 1, 2 * x) for x in xs]
    assert futures.submit(lambda: "no args").result() == "no args"
    assert futures.submit(Point, 1, y=2).result() == Point(1, 2)


@check
def check_remote_print_and_nested_submit_from_tasks():
    # Tasks may use the whole API themselves (covered in depth by api_trees.py).
    assert futures.submit(futures.mapReduce, square, operator.add, range(5)).result() == 30
    assert futures.submit(say, "printed by a task").result() == "printed by a task"


@check
def check_tree_nested_map_12_levels():
    total, workers = futures.submit(binary_tree, 12).result()
    assert total == 4096, total
    print(f"INFO nested map tree ran on workers {sorted(workers)}")


@check
def check_tree_ternary_submit_depth_6():
    total, workers = ternary_tree(6)
    assert total == 729, total
    print(f"INFO ternary submit tree ran on workers {sorted(workers)}")


@check
def check_chain_of_200_waiting_tasks():
    assert futures.submit(chain, 200).result() == 200
    assert chain(200) == 200


@check
def check_work_spreads_over_workers():
    if task_runners(EXPECTED_SIZE) < 2:
        return  # only one worker runs tasks
    # Several rounds, each with far more work than one worker should take alone.
    for round_ in range(5):
        workers = {w for _, w in futures.map(work, range(120))}
        assert len(workers) > 1, f"round {round_}: all 120 tasks ran on workers {workers}"


@check
def check_map_reads_its_iterables_lazily():
    read = [0]

    def counted():
        for i in itertools.count():
            read[0] = i
            yield i

    squares = futures.map(square, counted())  # an endless input: only what is needed is read
    assert list(itertools.islice(squares, 3000)) == [i * i for i in range(3000)]
    assert read[0] < 600_000, f"the map read {read[0]} items ahead"
    unordered = futures.map_as_completed(square, itertools.count())
    taken = list(itertools.islice(unordered, 2000))
    assert len(set(taken)) == 2000 and all(int(v**0.5) ** 2 == v for v in taken)
    # A short generator is chunked as a list would be: results in order, all of them.
    assert list(futures.map(square, (i for i in range(100)))) == [i * i for i in range(100)]
    assert sorted(futures.map_as_completed(square, iter(range(50)))) == [i * i for i in range(50)]


@check
def check_a_root_that_runs_no_task_runs_none():
    if root_runs_tasks():
        return
    ran = {w for _, w in futures.map(work, range(60))}
    ran.add(futures.submit(work, 0).result()[1])
    ran |= {
        f.result()[1] for f in futures.as_completed([futures.submit(work, i) for i in range(9)])
    }
    assert 0 not in ran, f"the root ran tasks: {sorted(ran)}"


if __name__ == "__main__":
    run_checks()
