"""Exceptions travel: a task raises, the waiting code catches it with its own type and message.

Run with::

    python -m scoop_launch -n 4 examples/exceptions.py

When the task ran on another worker, the exception's ``__cause__`` is a
``scoop.errors.RemoteTraceback`` holding the remote traceback as text (so an uncaught error shows
the remote frames above the local ones), and a note names the host and worker where it was raised.
The worker that raised goes on serving tasks.
"""

import time

from scoop import futures
from scoop.errors import RemoteTraceback


def check_positive(x):
    """Raise ValueError for a negative number, after a little work."""
    time.sleep(0.01)
    if x < 0:
        raise ValueError(f"negative input: {x}")
    return x


def middle(x):
    """A task between the root and the failing task: the error passes through it unchanged."""
    return futures.submit(check_positive, x).result()


def show(label, exc):
    """Print what the waiter got: type, message, and where it came from."""
    print(f"exceptions: {label}: caught {type(exc).__name__}: {exc}")
    cause = exc.__cause__
    if isinstance(cause, RemoteTraceback):
        assert "check_positive" in cause.traceback_text
        print("  raised on another worker; __cause__ is the RemoteTraceback:")
        print("  " + cause.traceback_text.strip().replace("\n", "\n  "))
        for note in getattr(exc, "__notes__", []):
            print(f"  note: {note}")
    else:
        print("  raised on this worker (no remote traceback)")


if __name__ == "__main__":
    # One failure raised directly by a task, one raised two levels down a task tree.
    for label, fut in (
        ("direct", futures.submit(check_positive, -1)),
        ("nested", futures.submit(middle, -2)),
    ):
        try:
            fut.result()
        except ValueError as exc:
            show(label, exc)

    # Many tasks, some failing: enough work that other workers take part.
    fs = [futures.submit(check_positive, x if x % 10 else -x) for x in range(1, 81)]
    failed = [f for f in futures.as_completed(fs) if f.exception() is not None]
    remote = [f for f in failed if isinstance(f.exception().__cause__, RemoteTraceback)]
    print(f"  {len(remote)} of the {len(failed)} failures were raised on other workers")
    messages = sorted(str(f.exception()) for f in failed)
    print(f"exceptions: batch: {len(failed)} ValueErrors: {messages}")

    # The pool goes on after errors.
    results = list(futures.map(check_positive, range(5)))
    print(f"exceptions: after the errors the pool still works: {results}")
