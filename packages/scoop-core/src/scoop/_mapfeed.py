"""A map's calls, read lazily from its iterables and submitted a window at a time.

``futures.map`` and ``map_as_completed`` do not draw their iterables whole: a map over a
generator of millions of items, or over ``itertools.count()``, keeps a bounded number of items
in flight. The feed reads ahead up to :func:`lookahead` items: a map that ends within them (most
maps) is chunked exactly as if it had been a list (``scoop._batch.chunk_size``: about 16 chunk
tasks per worker, down to 4 for items known to be short); a longer one gets chunks of the
largest size. At most ``window`` tasks are in flight, that is at most
:data:`MAX_ITEMS_IN_FLIGHT` items; the next chunk is submitted each time the consumer takes a
result. The first window is submitted by the call itself, so that the work starts at once, as
it did when maps drew everything.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from scoop import _batch, _serialize
from scoop._future import Future
from scoop._scheduler import Scheduler
from scoop.errors import SerializationError

#: Most items of one map in flight (queued, running, or with a result not yet consumed).
MAX_ITEMS_IN_FLIGHT = 262_144
#: Most items in one chunk task: large enough that a task's overhead vanishes.
MAX_CHUNK_ITEMS = 4096
#: Chunk tasks in flight per worker: twice the chunks a map makes per worker.
WINDOW_TASKS_PER_WORKER = 2 * _batch.TASKS_PER_WORKER


class MapFeed:
    """Submits the chunk tasks of one map as they are needed."""

    def __init__(
        self, scheduler: Scheduler, func: Callable[..., Any], iterables: tuple[Iterable[Any], ...]
    ) -> None:
        self.scheduler = scheduler
        self.func = func
        self.fn_frame = scheduler.pickle_function(func)  # once; names a bad function at once
        workers = max(1, scheduler.size)
        most = max(
            1, min(MAX_CHUNK_ITEMS, MAX_ITEMS_IN_FLIGHT // (WINDOW_TASKS_PER_WORKER * workers))
        )
        self._items: Iterator[tuple[Any, ...]] = zip(*iterables, strict=False)
        ahead = list(itertools.islice(self._items, _batch.TASKS_PER_WORKER * workers * most + 1))
        ended = len(ahead) <= _batch.TASKS_PER_WORKER * workers * most
        learned = _batch.item_seconds(func)
        self.per_task = (
            min(most, _batch.chunk_size(len(ahead), workers, learned)) if ended else most
        )
        self._ahead = ahead
        self._at = 0
        self.batched = self.per_task > 1
        self.chunk_frame = scheduler.pickle_function(_batch.run_chunk) if self.batched else b""
        self.window = WINDOW_TASKS_PER_WORKER * workers
        self._submitted = 0  # items
        self.exhausted = False

    def _take(self, count: int) -> list[tuple[Any, ...]]:
        # Slices, not item by item: a map of tiny items spends its time here otherwise.
        ahead, at = self._ahead, self._at
        if at >= len(ahead):
            return list(itertools.islice(self._items, count))
        taken = ahead[at : at + count]
        self._at = at + len(taken)
        if self._at >= len(ahead):
            self._ahead, self._at = [], 0  # read ahead and all given out: let it go
        if len(taken) < count:
            taken.extend(itertools.islice(self._items, count - len(taken)))
        return taken

    def next_task(self) -> Future[Any] | None:
        """Submit the next task of the map (None once the iterables are exhausted)."""
        if self.exhausted:
            return None
        chunk = self._take(self.per_task)
        if not chunk:
            self.exhausted = True
            return None
        start = self._submitted
        self._submitted += len(chunk)
        scheduler = self.scheduler
        if not self.batched:
            return scheduler.submit(self.func, chunk[0], {}, self.fn_frame)
        try:
            return scheduler.submit(_batch.run_chunk, (self.func, chunk), {}, self.chunk_frame)
        except SerializationError:
            for offset, args in enumerate(chunk):  # name the item that cannot travel
                try:
                    _serialize.dumps_call(args, {})
                except SerializationError as exc:
                    raise SerializationError(f"item {start + offset} of the map: {exc}") from exc
            raise

    def more(self, in_flight: int) -> list[Future[Any]]:
        """Submit tasks until ``window`` are in flight or the iterables are exhausted."""
        tasks: list[Future[Any]] = []
        while in_flight + len(tasks) < self.window:
            task = self.next_task()
            if task is None:
                break
            tasks.append(task)
        return tasks


__all__ = ["MAX_ITEMS_IN_FLIGHT", "MapFeed"]
