"""Tasks that block their worker: the figures of issue 8 (a worker that always answers).

Run under the launcher::

    python -m scoop_launch -n 4 bench/blocking.py            # both measurements
    python -m scoop_launch -n 4 bench/blocking.py callback   # or one of them

``callback``: the original SCOOP's callback example, 5 tasks sleeping 1..5 s, submitted at once
and taken as they complete: at ``-n 4`` it takes about its longest task (5 s) when the tasks
queued behind a sleeping one reach idle workers.

``map``: ``map_as_completed`` over 600 items of 50 ms whose item 0 blocks 10 s: how soon every
result outside the blocked item's own chunk (a map sends ~16 chunks per worker) has arrived;
about 600 * 50 ms / workers when the blocked worker's queue is shared.
"""

from __future__ import annotations

import sys
import time

import scoop
from scoop import futures


def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def item(x: int) -> tuple[int, int]:
    time.sleep(10 if x == 0 else 0.05)
    return x, scoop.worker[1]


def callback() -> None:
    start = time.monotonic()
    fs = [futures.submit(sleeper, i) for i in range(1, 6)]
    for fut in futures.as_completed(fs):
        fut.result()
    print(f"callback: 5 tasks of 1..5 s took {time.monotonic() - start:.2f} s")


def blocked_map(n: int = 600) -> None:
    start = time.monotonic()
    arrivals = [
        (time.monotonic() - start, x, w) for x, w in futures.map_as_completed(item, range(n))
    ]
    blocked_at = next(t for t, x, _ in arrivals if x == 0)
    others = [t for t, _, _ in arrivals if t < blocked_at - 0.001]
    print(
        f"map: {len(others)} of {n} results before the blocked item's chunk, the last at "
        f"{max(others):.2f} s (ideal {n * 0.05 / scoop.SIZE:.2f} s); the blocked chunk at "
        f"{blocked_at:.2f} s"
    )


if __name__ == "__main__":
    wanted = sys.argv[1:] or ["callback", "map"]
    if "callback" in wanted:
        callback()
    if "map" in wanted:
        blocked_map()
