"""Exit as told: ``exit_with.py CODE`` calls sys.exit(int(CODE)); ``exit_with.py msg TEXT`` calls
sys.exit(TEXT); ``exit_with.py none`` returns normally. Every worker prints a line when it imports
the script, to stdout and stderr, to show that workers' output reaches the user."""

import sys

import scoop
from scoop import futures


def shout(i):
    print(f"task {i} printed on worker {scoop.worker[1]}", flush=True)
    return i


if not scoop.IS_ORIGIN:
    print(f"worker {scoop.worker[1]} imported the script", flush=True)
    print(f"worker {scoop.worker[1]} writes to stderr", file=sys.stderr, flush=True)

if __name__ == "__main__":
    assert list(futures.map(shout, range(3))) == [0, 1, 2]
    how = sys.argv[1]
    if how == "msg":
        sys.exit(sys.argv[2])
    if how != "none":
        sys.exit(int(how))
