"""What one process of a run did, recorded for ``--trace``, ``--report``, ``--stats``, ``--debug``.

Off (the default) nothing is recorded: the scheduler, the communication thread and the broker
hold ``None`` and test it once where they would record. On, each process keeps plain lists in
memory and writes them as one JSON file when it ends (``Recorder.write``); the launcher merges
the files of a run (``scoop_launch._trace``).

Times are ``time.monotonic_ns()``: one clock for every process of a host (Linux's
CLOCK_MONOTONIC), unaffected by changes of the wall clock. Each file says which host it comes
from; the launcher shifts other hosts' times by the offset it measured to each (see there).

What is recorded:

* ``slices``: ``(task id, start, end)``, one per stretch of a task's run on this worker (a task
  that waits on subtasks and resumes has several). Task id 0 is the root's own code.
* ``submits``: ``(task id, parent task id, function name, time)`` for each task submitted here;
  the parent is the task whose code submitted it (0: the root's code, or an Executor's client).
* ``failures``: ``(task id, exception type)`` of tasks run here that raised.
* ``moves``: ``(time, count)``: tasks this worker handed to the broker (negative) or received
  from it (positive).
* ``bytes_in`` / ``bytes_out``: what its connection carried.
* ``counters`` (the broker): ``(time, queued tasks, hungry workers)`` at each change.
* ``events`` (the broker): ``(time, text)``, e.g. a worker lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import Any

#: Task id of the root's own code (its script), or of an Executor's client.
ROOT_TASK = 0
#: Pseudo task id of done-callbacks run by the scheduler itself (they may submit tasks).
CALLBACK_TASK = -1


def _is_chunk(fn: Any) -> bool:
    # Imported here, not at the top: the broker records too, and has no use for what _batch
    # imports (greenlet, the picklers). Only a name not seen before gets here.
    from scoop._batch import run_chunk

    return fn is run_chunk


def task_name(fn: Any, args: tuple[Any, ...]) -> str:
    """A task's name in the trace: its function's, or ``map(f)`` for a chunk of a map of f."""
    if _is_chunk(fn) and args:
        return f"map({_name_of(args[0])})"
    return _name_of(fn)


def _name_of(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__name__


class Recorder:
    """The record of one process (worker, client or broker)."""

    def __init__(self, role: str, index: int, *, detail: bool = True) -> None:
        self.role = role
        self.index = index
        #: False (only --stats asked): totals only, no list that grows with the run.
        self.detail = detail
        self.tasks = 0
        self.busy_ns = 0
        self.handed = 0
        self.received = 0
        self.slices: list[tuple[int, int, int]] = []
        self.submits: list[tuple[int, int, str, int]] = []
        #: Names of the functions submitted here (not of map chunks, named by their function).
        self._names: dict[Any, str] = {}
        self.failures: list[tuple[int, str]] = []
        self.moves: list[tuple[int, int]] = []
        self.counters: list[tuple[int, int, int]] = []
        self.events: list[tuple[int, str]] = []
        self.bytes_in = 0
        self.bytes_out = 0
        #: The task whose slice is open (the parent of what is submitted now).
        self.current = ROOT_TASK
        self._since = 0
        self._last_counters = (-1, -1)

    # -- the scheduler (main thread) ----------------------------------------------------------

    def begin(self, task_id: int, *, new: bool = False) -> None:
        """A task's code starts (``new``) or resumes."""
        self.current = task_id
        self.tasks += new
        self._since = time.monotonic_ns()

    def end(self) -> None:
        """It returned, or parked to wait."""
        now = time.monotonic_ns()
        self.busy_ns += now - self._since
        if self.detail:
            self.slices.append((self.current, self._since, now))
        self.current = ROOT_TASK

    def submitted(self, task_id: int, fn: Any, args: tuple[Any, ...]) -> None:
        """A task was submitted here, by the task running now."""
        if self.detail:
            try:
                name = self._names[fn]
            except (KeyError, TypeError):  # new, or unhashable
                name = task_name(fn, args)  # a function's __qualname__: one string, shared
                if not _is_chunk(fn) and len(self._names) < 1024:
                    with contextlib.suppress(TypeError):
                        self._names[fn] = name
            self.submits.append((task_id, self.current, name, time.monotonic_ns()))

    def failed(self, task_id: int, exc: BaseException) -> None:
        """A task run here raised."""
        self.failures.append((task_id, type(exc).__qualname__))

    # -- the communication thread, the broker -------------------------------------------------

    def moved(self, count: int) -> None:
        """``count`` tasks arrived (positive) or left for the broker (negative)."""
        if count > 0:
            self.received += count
        else:
            self.handed -= count
        if self.detail:
            self.moves.append((time.monotonic_ns(), count))

    def counted(self, queued: int, hungry: int) -> None:
        """The broker's queue and hungry workers, recorded when they change."""
        if self.detail and (queued, hungry) != self._last_counters:
            self._last_counters = (queued, hungry)
            self.counters.append((time.monotonic_ns(), queued, hungry))

    def event(self, text: str) -> None:
        """Something worth a mark on the timeline (a worker lost, joined...)."""
        self.events.append((time.monotonic_ns(), text))

    # -- the end ------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Everything recorded, as JSON-ready data (from any thread: nothing is changed)."""
        slices = list(self.slices)
        if self.detail and self._since and self.current != ROOT_TASK:  # a task still runs
            slices.append((self.current, self._since, time.monotonic_ns()))
        return {
            "role": self.role,
            "index": self.index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "tasks": self.tasks,
            "busy_ns": self.busy_ns,
            "handed": self.handed,
            "received": self.received,
            "slices": slices,
            "submits": list(self.submits),
            "failures": self.failures,
            "moves": self.moves,
            "counters": self.counters,
            "events": self.events,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    def write(self, directory: str) -> None:
        """Write the record into the run's trace directory (as ``<role>-<index>.json``)."""
        path = os.path.join(directory, f"{self.role}-{self.index}.json")
        # A temporary name of this thread's: the communication thread writes a snapshot when the
        # run ends (the main thread may still be in a task, and be killed in it), then the main
        # thread writes the whole record.
        part = f"{path}.{threading.get_ident()}.part"
        with open(part, "w", encoding="utf-8") as handle:
            json.dump(self.as_dict(), handle, separators=(",", ":"))
        os.replace(part, path)  # whole or absent: a process killed mid-write


__all__ = ["CALLBACK_TASK", "ROOT_TASK", "Recorder", "task_name"]
