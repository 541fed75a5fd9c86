"""mapReduce and mapScan: map in parallel, then reduce (or scan) the results in input order.

Run with::

    python -m scoop_launch -n 4 examples/map_reduce.py

``futures.mapReduce(f, op, xs)`` equals ``functools.reduce(op, map(f, xs))`` and
``futures.mapScan(f, op, xs)`` equals ``list(itertools.accumulate(map(f, xs), op))``: every
prefix reduction, in order. Word counting shows a reduction that is not commutative-looking:
dictionaries merged in input order.
"""

import operator
from collections import Counter

from scoop import futures

TEXT = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "the dog sleeps",
    "the fox runs",
]


def identity(x):
    """The task of the scan: return its argument."""
    return x


def square(x):
    """The task of the sum of squares."""
    return x * x


def count_words(line):
    """Count the words of one line."""
    return Counter(line.split())


def merge(a, b):
    """Merge two word counts (a new Counter: the inputs stay as they were)."""
    return a + b


if __name__ == "__main__":
    total = futures.mapReduce(square, operator.add, range(1, 11))
    prefixes = futures.mapScan(identity, operator.add, [1, 2, 3, 4, 5, 6])
    words = futures.mapReduce(count_words, merge, TEXT)
    top = ", ".join(f"{w}={c}" for w, c in sorted(words.items(), key=lambda i: (-i[1], i[0]))[:3])
    assert total == 385 and prefixes == [1, 3, 6, 10, 15, 21], (total, prefixes)
    print(f"map_reduce: sum of squares 1..10 = {total}")
    print(f"map_reduce: scan of 1..6 = {prefixes}")
    print(f"map_reduce: top words: {top}")
