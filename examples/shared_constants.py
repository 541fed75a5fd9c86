"""Shared constants: set a value once on the root, read it in every task.

Run with::

    python -m scoop_launch -n 4 examples/shared_constants.py

``shared.setConst(name=value)`` broadcasts the value to every worker once, instead of sending it
with every task. Tasks read it with ``shared.getConst(name)``. A constant cannot change: setting
it again raises a TypeError.
"""

from scoop import futures, shared


def score(word):
    """Look the word up in the shared table (sent once per worker, not once per task)."""
    table = shared.getConst("letter_values", timeout=None)
    bonus = shared.getConst("bonus", timeout=None)
    return sum(table.get(letter, 0) for letter in word) * bonus


if __name__ == "__main__":
    values = {letter: i + 1 for i, letter in enumerate("abcdefghijklmnopqrstuvwxyz")}
    shared.setConst(letter_values=values, bonus=2)
    try:
        shared.setConst(bonus=3)
    except TypeError as exc:
        print(f"setting a constant twice is refused: {type(exc).__name__}")
    words = ["scoop", "shared", "constants", "futures", "worker"] * 10
    scores = list(futures.map(score, words))
    print(f"shared_constants: scores {scores[:5]}, total {sum(scores)}")
