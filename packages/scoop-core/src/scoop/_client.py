"""The two sides of an Executor's client: its own thread, and the threads of its user.

::

    user threads (a notebook's, asyncio's...)            client thread (ClientScheduler)
      Executor.submit / futures.submit under it:            the hub of worker 0, which runs
      pickle the call here (errors at once), make a          no task: each turn it hands every
      scoop Future and a concurrent.futures.Future,  --->    queued task to the broker; results
      ClientScheduler.call_soon(enqueue)                     finish the scoop Futures, whose
      concurrent.futures.wait / as_completed /      <---     callbacks settle the
      result() block on the concurrent futures               concurrent.futures.Futures

Only the client thread touches the scheduler's state; other threads give it work through
:meth:`ClientScheduler.call_soon` (a deque and the wake-up event the hub waits on).

A concurrent future stays PENDING until its task's result is back (nothing tells the client
that a task started elsewhere), so ``cancel()`` works until then: best effort, the task may
still run, but its result is dropped and the future stays cancelled.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from scoop import _serialize
from scoop._comm import LauncherGone
from scoop._future import Future
from scoop._protocol import Entry, Kind
from scoop._scheduler import Scheduler
from scoop._worker import WorkerScheduler
from scoop.errors import ExecutorBrokenError, SharedConstantError

logger = logging.getLogger("scoop")


class ClientScheduler(WorkerScheduler):
    """Worker 0 of an Executor's run, driven by the client thread."""

    traces_callbacks = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, runs_tasks=False, **kwargs)
        #: Work other threads left for the client thread.
        self.calls: deque[Callable[[], object]] = deque()
        #: No more tasks will come: end the run once the unfinished ones are done.
        self.closing = False
        #: Why the run ended under us (the broker died...), once it did.
        self.broken: str | None = None
        #: Notified whenever a shared constant arrives (user threads wait on it).
        self.constants_changed = threading.Condition()
        #: Tasks with the broker whose futures were cancelled, to cancel there at the next turn.
        self.to_cancel: list[int] = []

    def call_soon(self, call: Callable[[], object]) -> None:
        """Have the client thread run ``call`` at its next turn (from any thread)."""
        self.calls.append(call)
        self.wake_event.set()

    def has_news(self) -> bool:
        return bool(self.calls) or super().has_news()

    def service(self) -> None:
        calls = self.calls
        # Bounded: threads that submit without pause must not keep results from being read.
        for _ in range(min(len(calls), MAX_CALLS_PER_TURN)):
            calls.popleft()()
        if self.to_cancel:
            digest = self.codec.digest([])
            self.comm.post(Kind.CANCEL, 0, [Entry(i, 0, digest, []) for i in self.to_cancel])
            self.to_cancel = []
        super().service()

    def constant_arrived(self) -> None:
        super().constant_arrived()
        with self.constants_changed:
            self.constants_changed.notify_all()

    def forget(self, fut: Future[Any]) -> None:
        """Its concurrent future was cancelled: the task runs nowhere it has not started."""
        if fut.cancel():  # still queued here
            return
        self.unfinished.pop(fut.id, None)
        if self.remote.pop(fut.id, None) is not None:  # with the broker, or a worker
            self.to_cancel.append(fut.id)

    def unknown_result(self, task_id: int) -> None:
        # The result of a task cancelled once it had started: nobody waits for it.
        logger.debug("%s dropped the result of cancelled task %#x", self.where, task_id)

    def close_when_done(self) -> None:
        """End the run once every unfinished task is done (no more will be submitted)."""
        self.closing = True

    def on_stop(self, error: BaseException | None) -> None:
        # The communication thread ended early: the broker is gone, or the session told us the
        # run is broken (the parent check, see scoop._executorrun); the reason is the run's.
        if not isinstance(error, LauncherGone):
            self.comm_error = error
        self.stopping = True
        self.wake_event.set()

    def serve_client(self) -> str | None:
        """Hand tasks out and take results in until the Executor closes; then end the run.

        Returns None when it ended as asked, else why the run ended under it (its unfinished
        futures then failed with that reason).
        """
        self._start()
        try:
            self.run_loop(
                lambda: self.stopping or (self.closing and not self.unfinished and not self.calls)
            )
        finally:
            reason = self._end_reason()
            if reason is not None:
                self.fail_unfinished(reason)
        if reason is None:
            self.flush()
            self.comm.post(Kind.SHUTDOWN, 0)
        return reason

    def _end_reason(self) -> str | None:
        if self.broken is not None:
            return self.broken
        if self.comm_error is not None:
            return f"the broker is gone: {self.comm_error}"
        if self.stopping:
            return "the broker ended the run"
        return None

    def share_constant(self, name: str, value: Any) -> None:
        """Set a shared constant a user thread checked (the first of a name wins, as on the broker).

        Another thread, or a worker, may have set it since the check.
        """
        if name not in self.constants:
            self.set_constant(name, value)

    def break_run(self, reason: str) -> None:
        """The run cannot go on (client thread): fail what is unfinished and stop."""
        self.broken = reason
        self.stopping = True

    def fail_unfinished(self, reason: str) -> None:
        """Fail every unfinished future: its run ended without its result."""
        for fut in list(self.unfinished.values()):
            fut._set_exception(run_ended(reason))


def run_ended(reason: str) -> ExecutorBrokenError:
    """The error of what the run of an Executor cannot do any more, and why."""
    return ExecutorBrokenError(f"the Executor's run ended: {reason}")


#: Most calls of other threads the client thread runs in one turn.
MAX_CALLS_PER_TURN = 4096


class ExecutorFront(Scheduler):
    """What ``scoop.futures`` and ``scoop.shared`` use in the user's threads of an Executor.

    Calls go to the Executor; waits block the calling thread on concurrent futures. (The
    client thread has its own scheduler, and tasks on workers theirs.)
    """

    def __init__(
        self,
        client: ClientScheduler,
        submit: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], bytes | None], Any],
        outstanding: Callable[[], list[cf.Future[Any]]],
        task_runners: int,
    ) -> None:
        super().__init__()
        self.client = client
        self._submit = submit
        self._outstanding = outstanding
        self.size = task_runners
        self._constants_lock = threading.Lock()

    @property
    def where(self) -> str:
        """This process, as error notes name it."""
        return self.client.where

    def pickle_function(self, fn: Callable[..., Any]) -> bytes:
        return self.client.pickle_function(fn)

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes | None = None,
    ) -> Any:
        return self._submit(fn, args, kwargs, fn_frame)

    def wait_one(self, fut: Any, timeout: float | None) -> None:
        cf.wait([fut], timeout)

    def wait_futures(self, futures: Iterable[Any], timeout: float | None, return_when: str) -> None:
        cf.wait(list(futures), timeout, return_when)

    def iter_completed(self, futures: Iterable[Any], timeout: float | None) -> Iterator[Any]:
        return cf.as_completed(list(futures), timeout)

    def pending_futures(self) -> list[Any]:
        return self._outstanding()

    def set_constant(self, name: str, value: Any) -> None:
        with self._constants_lock:  # two threads setting one name: one wins, the other raises
            if name in self.constants or name in self.client.constants:
                raise SharedConstantError(
                    f"shared constant {name!r} is already set; constants cannot change"
                )
            _serialize.dumps_or_explain((name, value), f"shared constant {name!r}")  # fail here
            self.constants[name] = value
        self.client.call_soon(lambda: self.client.share_constant(name, value))

    def wait_constant(self, name: str, timeout: float | None) -> bool:
        known = self.client.constants
        with self.client.constants_changed:
            found = self.client.constants_changed.wait_for(
                lambda: name in self.constants or name in known, timeout
            )
        if found and name not in self.constants:
            self.constants[name] = known[name]
        return bool(found)

    def idle(self, timeout: float | None) -> None:
        raise RuntimeError("an Executor's front never runs the scheduler loop")


__all__ = ["ClientScheduler", "ExecutorFront", "run_ended"]
