"""The whole futures API outside the launcher: serial, in-process, after one RuntimeWarning."""

import concurrent.futures
import functools
import operator
import threading
import warnings

import pytest

import scoop
from scoop import _runtime, futures, shared
from scoop._scheduler import DeadlockError, Scheduler
from scoop.errors import SerializationError, SharedConstantError


@pytest.fixture(autouse=True)
def fresh_scheduler():
    _runtime.install(Scheduler())
    yield
    _runtime.install(None)


def square(x):
    return x * x


def fail(x):
    raise ValueError(f"bad {x}")


def tree(depth):
    if depth == 0:
        return 1
    return sum(futures.map(tree, [depth - 1] * 2))


def chain(k):
    return 0 if k == 0 else futures.submit(chain, k - 1).result() + 1


def waits_for_constant(name):
    return shared.getConst(name, timeout=None)


def test_warns_once_outside_a_run():
    _runtime.install(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(futures.map(square, range(3))) == [0, 1, 4]
        assert futures.submit(square, 3).result() == 9
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "python -m scoop_launch" in str(caught[0].message)
    assert scoop.IS_RUNNING is False


def test_map_in_order_with_several_iterables():
    assert list(futures.map(operator.add, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]
    assert list(futures.map(square, [])) == []


def test_nested_tree_and_long_chain():
    assert tree(10) == 1024
    assert chain(300) == 300


def test_submit_kinds_of_callables():
    class Adder:
        def __init__(self, n):
            self.n = n

        def add(self, x):
            return x + self.n

    assert futures.submit(Adder(2).add, 1).result() == 3
    assert futures.submit(functools.partial(operator.mul, 3), 4).result() == 12
    assert futures.submit(lambda x, y=1: x + y, 1, y=5).result() == 6


def test_exception_reaches_waiter_with_its_type():
    fut = futures.submit(fail, 3)
    with pytest.raises(ValueError, match="bad 3"):
        fut.result()
    assert isinstance(fut.exception(), ValueError)
    assert fut.done() and not fut.cancelled()


def test_wait_variants_never_raise():
    good = [futures.submit(square, i) for i in range(3)]
    bad = futures.submit(fail, 1)
    done, not_done = futures.wait([*good, bad])
    assert done == {*good, bad} and not not_done
    fresh = [futures.submit(square, i) for i in range(3)]
    done, not_done = futures.wait(fresh, return_when=futures.FIRST_COMPLETED)
    assert len(done) >= 1
    failing = [futures.submit(fail, 0), *(futures.submit(square, i) for i in range(3))]
    done, _ = futures.wait(failing, return_when=futures.FIRST_EXCEPTION)
    assert failing[0] in done
    with pytest.raises(ValueError):
        futures.wait(good, return_when="SOMETIMES")


def test_as_completed_includes_failures_and_map_as_completed():
    fs = [futures.submit(square, 2), futures.submit(fail, 1)]
    assert set(futures.as_completed(fs)) == set(fs)
    assert sorted(futures.map_as_completed(square, range(5))) == [0, 1, 4, 9, 16]


def test_map_reduce_and_correct_scan():
    assert futures.mapReduce(square, operator.add, range(10)) == 285
    assert futures.mapScan(lambda x: x, operator.add, range(1, 7)) == [1, 3, 6, 10, 15, 21]
    assert futures.mapReduce(str, operator.add, "abcdefg") == "abcdefg"
    assert futures.mapReduce(square, operator.add, [4]) == 16
    with pytest.raises(TypeError, match="empty"):
        futures.mapReduce(square, operator.add, [])


def test_result_timeout_raises_standard_timeout_error():
    fut = futures.submit(waits_for_constant, "never-set")
    with pytest.raises(concurrent.futures.TimeoutError):
        fut.result(timeout=0.05)
    with pytest.raises(TimeoutError):
        list(futures.as_completed([fut], timeout=0.05))
    done, not_done = futures.wait([fut], timeout=0.05)
    assert not done and not_done == {fut}
    shared.setConst(**{"never-set": 7})
    assert fut.result(timeout=5) == 7


def test_cancel_before_start():
    fut = futures.submit(square, 3)
    assert fut.cancel() and fut.cancelled() and fut.done()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result()
    ran = futures.submit(square, 2)
    assert ran.result() == 4
    assert not ran.cancel()


def test_done_callbacks_run_once_when_done():
    seen = []
    fut = futures.submit(square, 5)
    fut.add_done_callback(lambda f: seen.append(f.result()))
    fut.result()
    fut.add_done_callback(lambda f: seen.append("late"))
    assert seen == [25, "late"]


def test_shared_constants():
    shared.setConst(alpha=1, beta=[2])
    assert shared.getConst("alpha") == 1
    assert futures.submit(shared.getConst, "beta").result() == [2]
    assert shared.getConst("missing", timeout=0.01) is None
    with pytest.raises(SharedConstantError) as info:
        shared.setConst(alpha=2)
    assert isinstance(info.value, TypeError)


def test_unpicklable_inputs_fail_at_submit_naming_them():
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="lock"):
        futures.submit(square, lock)
    with pytest.raises(SerializationError, match="lock"):
        futures.map(square, [1, lock])


def test_deadlock_is_reported_not_hung():
    fut = futures.submit(waits_for_constant, "nobody-sets-this")
    with pytest.raises(DeadlockError):
        fut.result()


def test_shutdown_waits_for_pending():
    fs = [futures.submit(square, i) for i in range(4)]
    futures.shutdown()
    assert all(f.done() for f in fs)


def fail_at_seven(x):
    if x == 7:
        raise ValueError("seven")
    return x


def test_batched_map_keeps_order_and_raises_at_the_failing_item():
    results = []
    with pytest.raises(ValueError, match="seven"):
        for value in futures.map(fail_at_seven, range(1000)):
            results.append(value)
    assert results == list(range(7))
    assert list(futures.map(square, range(1000))) == [x * x for x in range(1000)]
    assert sorted(futures.map_as_completed(square, range(500))) == [x * x for x in range(500)]


def test_batched_map_names_the_unpicklable_item():
    items = [1] * 600 + [threading.Lock()]
    with pytest.raises(SerializationError, match=r"item 600 of the map: argument 0 .*lock"):
        futures.map(square, items)


def test_the_originals_extra_map_keywords_are_ignored_with_a_warning_naming_them():
    # The original SCOOP's examples pass parallelLevel=2 to futures.map; it ignored it.
    with pytest.warns(DeprecationWarning, match="map\\(\\) ignores parallelLevel"):
        assert list(futures.map(abs, [-1, -2], parallelLevel=2)) == [1, 2]
    with pytest.warns(DeprecationWarning, match="mapReduce\\(\\) ignores a, b"):
        assert futures.mapReduce(abs, operator.add, [-1, -2], b=1, a=2) == 3
    with pytest.raises(TypeError):
        futures.submit(abs, -1, unknown=1).result()  # a task's own keywords still count
