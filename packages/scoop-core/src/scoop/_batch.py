"""Automatic batching of ``futures.map``: many small calls travel and run as one task.

A map of n items over W workers becomes about ``W * TASKS_PER_WORKER`` chunk tasks of consecutive
items (never fewer than one item each): few enough that per-task overhead vanishes, many enough
that steal-half load balancing evens out uneven items and that a worker added to the run finds
work. Once this process has run chunks of a function, its maps of items known to be short get
fewer, larger chunks (down to ``W * FEWEST_TASKS_PER_WORKER``), each of about ``CHUNK_SECONDS``.
A running chunk gives the later half of its items still to run to a worker that is idle (lazy
splitting, in ``run_chunk``), so large chunks do not leave workers idle at the end of a map.
Results keep their order. An item that raises does not fail its chunk: the chunk records an
ItemFailure in that item's place, and the map raises it when it reaches that item, with the
remote traceback chained as for a plain task.
"""

from __future__ import annotations

import functools
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from scoop import _serialize
from scoop._future import Future, TaskUnwound
from scoop.errors import RemoteTraceback, ScoopError

#: Chunk tasks a map aims for per worker when its items' duration is not known.
TASKS_PER_WORKER = 16
#: Fewest chunk tasks per worker, for items known to be short.
FEWEST_TASKS_PER_WORKER = 2
#: How long a chunk of short items should take. Each chunk costs about 0.6 ms of CPU over the
#: run's processes (its messages, and the threads they wake): DEAP's maps of ~2 ms items in
#: chunks of 16 per worker (~13 ms) ran 5% slower than in chunks of 4 per worker (~50 ms). Since
#: chunks split for idle workers, larger ones cost no balance: 2 a worker of up to 0.1 s took
#: the broker and the communication threads 0.2 s less CPU over DEAP's run than 4 of 0.05 s.
CHUNK_SECONDS = 0.1
#: A running chunk gives items away to an idle worker only if they take at least this long (by
#: its items so far): less is not worth a task's messages.
SPLIT_SECONDS = 0.002
#: How many functions' item durations a process remembers.
_REMEMBERED = 64
#: Seconds per item of the chunks this process ran, by function: ``id(fn)``: ``(ref, seconds)``,
#: where ``ref()`` is the function (a weak reference: a function is not kept alive with what it
#: holds; a strong one for what cannot have weak references, such as builtins), so that another
#: object given the same id is not taken for it.
_item_seconds: dict[int, tuple[Callable[[], Any], float]] = {}


class UnpicklableItemError(ScoopError):
    """An item of a batched map raised an exception that could not travel back."""


def chunk_size(items: int, workers: int, item_seconds: float | None = None) -> int:
    """How many consecutive items one chunk task carries.

    ``item_seconds``: how long an item took lately, if known; short items make larger chunks,
    of about CHUNK_SECONDS, but never fewer than FEWEST_TASKS_PER_WORKER per worker.
    """
    workers = max(1, workers)
    size = -(-items // (workers * TASKS_PER_WORKER))
    if item_seconds is not None:
        coarsest = -(-items // (workers * FEWEST_TASKS_PER_WORKER))
        wanted = int(CHUNK_SECONDS / max(item_seconds, 1e-9))
        size = max(size, min(coarsest, wanted))
    return max(1, size)


def item_seconds(fn: Any) -> float | None:
    """How long an item of ``fn`` took in the last chunk of it this process ran (None: none)."""
    entry = _item_seconds.get(id(fn))
    return entry[1] if entry is not None and entry[0]() is fn else None


def _remember(fn: Any, seconds: float) -> None:
    if len(_item_seconds) >= _REMEMBERED and id(fn) not in _item_seconds:
        _item_seconds.clear()  # a process mapping that many functions: start over
    try:
        ref: Callable[[], Any] = weakref.ref(fn)
    except TypeError:
        ref = functools.partial(_same, fn)
    _item_seconds[id(fn)] = (ref, seconds)


def _same(fn: Any) -> Any:
    return fn


class ItemFailure:
    """An exception raised by one item of a chunk, kept in that item's place."""

    __slots__ = ("exception", "remote", "traceback_text", "where")

    def __init__(self, exception: BaseException, traceback_text: str, where: str) -> None:
        self.exception = exception
        self.traceback_text = traceback_text
        self.where = where
        self.remote = False

    def __reduce__(self) -> tuple[Any, ...]:
        exception = self.exception
        try:
            _serialize.loads(_serialize.dumps(exception))
        except Exception:
            summary = _serialize.exception_summary(exception)
            exception = UnpicklableItemError(f"the task raised {summary}, which cannot travel")
        return _rebuild_failure, (exception, self.traceback_text, self.where)

    def raise_it(self) -> None:
        """Raise the item's exception, with its remote traceback if it came from elsewhere."""
        exception = self.exception
        if self.remote:
            exception.__cause__ = RemoteTraceback(self.traceback_text)
            exception.add_note(f"(raised in a task on {self.where})")
            self.remote = False  # annotate once, however often the result is read
        raise exception


def _rebuild_failure(exception: BaseException, traceback_text: str, where: str) -> ItemFailure:
    failure = ItemFailure(exception, traceback_text, where)
    failure.remote = True
    return failure


def run_chunk(fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Call ``fn(*args)`` for each item in order; the task body of a chunk.

    While a worker is idle (the scheduler's ``demand``), the chunk gives away the later half of
    the items it has not run yet, as a chunk task of its own sent at once (lazy splitting): the
    end of a map never leaves a worker idle behind another that runs a whole chunk. Its own
    items run on; the results of the parts it gave away are waited for at the end, in order.
    """
    from scoop._runtime import current

    scheduler = current()
    results: list[Any] = []
    append = results.append
    given_away: list[Future[Any]] = []
    end = len(items)
    index = 0
    started = time.perf_counter()
    while index < end:
        try:
            append(fn(*items[index]))
        except TaskUnwound:
            raise
        except BaseException as exc:
            text = "".join(traceback.format_exception(exc))
            append(ItemFailure(exc, text, scheduler.where))
            trace = scheduler.trace
            if trace is not None:  # the chunk's task, whose slice is open
                trace.failed(trace.current, exc)
        index += 1
        if scheduler.demand and end - index >= 2:
            count = (end - index) // 2
            if (time.perf_counter() - started) / index * count >= SPLIT_SECONDS:
                given_away.append(scheduler.submit(run_chunk, (fn, items[end - count : end]), {}))
                end -= count
                scheduler.offload()
    if end:  # a chunk that waited on subtasks counts its waits: its maps' chunks stay small
        _remember(fn, (time.perf_counter() - started) / end)
    for part in reversed(given_away):  # the last given away holds the items just after ours
        results.extend(part.result())
    return results


def describe_unpicklable(
    fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], results: list[Any]
) -> str | None:
    """Name the first result of a chunk that cannot be pickled, for the error message.

    The message names the user's function and that item's arguments; None if every result
    pickles on its own.
    """
    for args, result in zip(items, results, strict=False):
        try:
            _serialize.dumps(result)
        except Exception:
            call = ", ".join(_serialize.describe(arg, limit=40) for arg in args)
            return (
                f"the result of {_serialize.describe(fn)} for the map item ({call}), "
                f"{_serialize.describe(result)},"
            )
    return None


def unwrap(results: list[Any]) -> Any:
    """Yield a chunk's results in order, raising an item's exception where it stands."""
    for item in results:
        if type(item) is ItemFailure:
            item.raise_it()
        yield item
