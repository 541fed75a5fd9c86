"""Root script: a map chunk that runs long while another worker is idle gives it half its items.

Run with ``-n 3 --root-runs-no-task`` (two workers run the tasks). The map has 8 items a chunk;
the items of the first chunk take 40 ms each (item 6 raises), every other item none. Prints
``SPLIT <workers that ran the first chunk's items> <results up to the error> <error>``.
"""

import time

import scoop
from scoop import futures

SLOW = 8  # the first chunk: scoop._batch makes 16 chunks a worker of the 3 * 16 * 8 items


def item(x):
    if x < SLOW:
        time.sleep(0.04)  # blocking: the idle worker asks for work meanwhile
        if x == 6:
            raise ValueError(f"item {x} raised on worker {scoop.worker[1]}")
    return x, scoop.worker[1]


if __name__ == "__main__":
    count = 3 * 16 * SLOW
    got = []
    error = None
    try:
        for value in futures.map(item, range(count)):
            got.append(value)
    except ValueError as exc:
        error = exc
    assert [x for x, _ in got] == list(range(6)), got
    # The rest of the map, with no failing item: in order, every item once.
    rest = list(futures.map(item, range(7, count)))
    assert [x for x, _ in rest] == list(range(7, count)), rest
    first_chunk = sorted({w for x, w in got + rest if x < SLOW})
    print("SPLIT", first_chunk, len(got), repr(error), flush=True)
