"""How maps are cut into chunk tasks: finely at first, coarser for items known to be short."""

from __future__ import annotations

import time
from typing import Any

from scoop import _batch
from scoop._mapfeed import MapFeed


def spin(seconds: float) -> float:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


class _Scheduler:
    """What MapFeed asks of a scheduler, recording the chunk tasks submitted."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.chunks: list[int] = []

    def pickle_function(self, _fn: Any) -> bytes:
        return b""

    def submit(self, fn: Any, args: tuple[Any, ...], _kwargs: Any, _frame: bytes) -> None:
        self.chunks.append(len(args[1]) if fn is _batch.run_chunk else 1)


def _chunks_of_a_map(fn: Any, items: int, workers: int) -> list[int]:
    scheduler = _Scheduler(workers)
    feed = MapFeed(scheduler, fn, (range(items),))  # type: ignore[arg-type]
    while feed.next_task() is not None or not feed.exhausted:
        pass
    return scheduler.chunks


def test_unknown_items_make_sixteen_chunks_per_worker() -> None:
    assert _batch.chunk_size(320, 2) == 10
    assert _batch.chunk_size(5, 2) == 1


def test_short_items_make_chunks_of_about_chunk_seconds_but_two_per_worker_at_least() -> None:
    # 4 ms items: 25 of them make CHUNK_SECONDS (0.1 s); 200 over 2 workers allow 50 a chunk.
    assert _batch.chunk_size(200, 2, 0.004) == 25
    assert _batch.chunk_size(200, 2, 0.0000001) == 50  # tiny items: 2 chunks per worker
    assert _batch.chunk_size(200, 2, 0.02) == 7  # long items: as if unknown
    assert _batch.chunk_size(2000, 2, 0.004) == 63  # never smaller than when unknown


def test_a_map_after_chunks_of_its_function_ran_here_gets_larger_chunks() -> None:
    def short(_x: int) -> None:
        spin(0.001)

    def other(_x: int) -> None:
        spin(0.001)

    assert _batch.item_seconds(short) is None
    first = _chunks_of_a_map(short, 200, 2)
    assert len(first) == 29 and sum(first) == 200  # 7 items a chunk
    _batch.run_chunk(short, [(i,) for i in range(5)])
    learned = _batch.item_seconds(short)
    assert learned is not None and 0.001 <= learned < 0.01, learned
    later = _chunks_of_a_map(short, 200, 2)
    assert sum(later) == 200 and 4 <= len(later) < 29, later
    assert len(_chunks_of_a_map(other, 200, 2)) == 29  # another function learned nothing


def test_what_is_learned_does_not_keep_a_function_alive() -> None:
    import gc
    import weakref

    def short(_x: int) -> None:
        pass

    _batch.run_chunk(short, [(1,)])
    assert _batch.item_seconds(short) is not None
    gone = weakref.ref(short)
    del short
    gc.collect()
    assert gone() is None
    _batch.run_chunk(abs, [(-1,)])  # no weak reference to a builtin: learned all the same
    assert _batch.item_seconds(abs) is not None
