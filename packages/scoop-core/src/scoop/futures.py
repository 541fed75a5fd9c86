"""The SCOOP futures API: run functions in parallel on every worker of the run.

Names and behaviour follow the original SCOOP and PEP 3148 (``concurrent.futures``): ``submit``
returns a :class:`Future`; ``map`` yields results in order; ``wait`` and ``as_completed`` take the
standard ``return_when`` constants. Waiting never blocks the worker: the waiting task is parked and
other tasks run meanwhile, so tasks may submit and wait on subtasks to any depth.

Outside ``python -m scoop_launch`` every function still works, serially in this process, after
one RuntimeWarning.
"""

from __future__ import annotations

import functools
import itertools
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from scoop import _batch
from scoop._future import Future
from scoop._mapfeed import MapFeed
from scoop._runtime import current

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "DoneAndNotDoneFutures",
    "Future",
    "as_completed",
    "map",
    "mapReduce",
    "mapScan",
    "map_as_completed",
    "shutdown",
    "submit",
    "wait",
]

T = TypeVar("T")

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"
_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


class DoneAndNotDoneFutures(NamedTuple):
    """What :func:`wait` returns: the set of done futures and the set of the others."""

    done: set[Future[Any]]
    not_done: set[Future[Any]]


def _deadline(timeout: float | None) -> float | None:
    # The original SCOOP took a negative timeout to mean "no timeout"; keep that.
    if timeout is None or timeout < 0:
        return None
    return time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def submit(func: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Schedule ``func(*args, **kwargs)`` as a task and return its :class:`Future`.

    The function and arguments are pickled at once, so one that cannot travel to another worker
    raises :class:`scoop.errors.SerializationError` here, naming it.
    """
    return current().submit(func, args, kwargs)


def _ordered_results(feed: MapFeed, deadline: float | None) -> Iterator[Any]:
    # Results are dropped as they are yielded, and the next task is submitted as each result
    # is taken, so that a long map keeps neither its items nor its results.
    return _ordered_from(feed, deque(feed.more(0)), deadline)


def _ordered_from(
    feed: MapFeed, in_flight: deque[Future[Any]], deadline: float | None
) -> Iterator[Any]:
    while in_flight:
        value = in_flight.popleft().result(_remaining(deadline))
        in_flight.extend(feed.more(len(in_flight)))
        if feed.batched:
            yield from _batch.unwrap(value)
        else:
            yield value


def _completed_results(feed: MapFeed, deadline: float | None) -> Iterator[Any]:
    return _completed_from(feed, set(feed.more(0)), deadline)


def _completed_from(
    feed: MapFeed, pending: set[Future[Any]], deadline: float | None
) -> Iterator[Any]:
    while pending:
        done, pending = wait(pending, _remaining(deadline), FIRST_COMPLETED)
        if not done:
            raise TimeoutError(f"{len(pending)} tasks of the map were not done in time")
        pending.update(feed.more(len(pending)))
        for fut in done:
            if feed.batched:
                yield from _batch.unwrap(fut.result())
            else:
                yield fut.result()


def _ignored(function: str, options: dict[str, Any]) -> None:
    # The original SCOOP's maps took and ignored any keyword (its examples pass parallelLevel).
    if options:
        names = ", ".join(sorted(options))
        warnings.warn(
            f"futures.{function}() ignores {names}, as the original SCOOP did; remove "
            f"{'it' if len(options) == 1 else 'them'}",
            DeprecationWarning,
            stacklevel=3,
        )


def map(
    func: Callable[..., T],
    *iterables: Iterable[Any],
    timeout: float | None = None,
    **ignored: Any,
) -> Iterator[T]:
    """Apply ``func`` to every item of the iterables in parallel; yield results in input order.

    The iterables are read lazily: the call submits the first tasks (many small items batched
    into fewer tasks, see ``scoop._batch``), and each result taken makes room for the next, so
    that a map over millions of items, or an endless generator, keeps a bounded number in
    flight (``scoop._mapfeed``). A call's exception is raised when its result is reached.
    ``timeout`` (seconds, from the call) raises ``TimeoutError`` when a result is not ready in
    time. Other keywords are ignored, with a DeprecationWarning (the original SCOOP ignored
    them).
    """
    _ignored("map", ignored)
    deadline = _deadline(timeout)
    return _ordered_results(MapFeed(current(), func, iterables), deadline)


def map_as_completed(
    func: Callable[..., T],
    *iterables: Iterable[Any],
    timeout: float | None = None,
    **ignored: Any,
) -> Iterator[T]:
    """Like :func:`map`, but yield each result as soon as its task finishes."""
    _ignored("map_as_completed", ignored)
    deadline = _deadline(timeout)
    return _completed_results(MapFeed(current(), func, iterables), deadline)


def as_completed(fs: Iterable[Future[T]], timeout: float | None = None) -> Iterator[Future[T]]:
    """Yield the futures as they finish (failed and cancelled ones too).

    Raises ``TimeoutError`` if some are still unfinished ``timeout`` seconds after the call.
    """
    deadline = _deadline(timeout)
    return current().iter_completed(fs, _remaining(deadline))


def wait(
    fs: Iterable[Future[Any]],
    timeout: float | None = None,
    return_when: str = ALL_COMPLETED,
) -> DoneAndNotDoneFutures:
    """Wait until ``return_when`` holds for the futures, or ``timeout`` seconds pass.

    ``return_when`` is FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED. Returns
    ``(done, not_done)``; a task's exception is never raised here.
    """
    if return_when not in _RETURN_WHEN:
        raise ValueError(
            f"return_when must be one of {', '.join(_RETURN_WHEN)}, not {return_when!r}"
        )
    fs = set(fs)
    current().wait_futures(fs, _remaining(_deadline(timeout)), return_when)
    done = {f for f in fs if f.done()}
    return DoneAndNotDoneFutures(done, fs - done)


def mapReduce(
    mapFunc: Callable[..., T],
    reductionOp: Callable[[T, T], T],
    *iterables: Iterable[Any],
    timeout: float | None = None,
    **ignored: Any,
) -> T:
    """Map in parallel, then reduce the results in input order with ``reductionOp``.

    ``mapReduce(f, op, xs)`` equals ``functools.reduce(op, map(f, xs))``; an empty input raises
    TypeError as ``reduce`` does.
    """
    _ignored("mapReduce", ignored)
    results = map(mapFunc, *iterables, timeout=timeout)
    try:
        return functools.reduce(reductionOp, results)
    except TypeError as exc:
        if "empty" in str(exc):
            raise TypeError("mapReduce() of an empty input has no result") from None
        raise


def mapScan(
    mapFunc: Callable[..., T],
    reductionOp: Callable[[T, T], T],
    *iterables: Iterable[Any],
    timeout: float | None = None,
    **ignored: Any,
) -> list[T]:
    """Map in parallel, then return every prefix reduction, in input order.

    ``mapScan(f, op, xs)`` equals ``list(itertools.accumulate(map(f, xs), op))``.
    """
    _ignored("mapScan", ignored)
    return list(itertools.accumulate(map(mapFunc, *iterables, timeout=timeout), reductionOp))


def shutdown(wait: bool = True) -> None:
    """Wait for every unfinished future submitted by this worker (if ``wait``).

    Present for PEP 3148 compatibility: the run itself ends when the root script ends.
    """
    if wait:
        scheduler = current()
        scheduler.wait_futures(scheduler.pending_futures(), None, ALL_COMPLETED)
