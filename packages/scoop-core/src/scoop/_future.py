r"""The Future type.

A Future moves through the states of ``concurrent.futures``::

    PENDING --start here--> RUNNING --return/raise--> FINISHED
       |  \--handed to another worker (RUNNING, remote)--> FINISHED when its result comes back
       \--cancel()--> CANCELLED        (only while still queued on this worker)

Waiting never blocks the worker: ``result()`` parks the calling greenlet in the scheduler, which
runs other ready work until the future finishes or the timeout expires.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import greenlet

if TYPE_CHECKING:
    from scoop._scheduler import Scheduler, Waiter
    from scoop.transport import Frame

__all__ = ["Future"]

T = TypeVar("T")

PENDING = "PENDING"
RUNNING = "RUNNING"
CANCELLED = "CANCELLED"
FINISHED = "FINISHED"


class TaskUnwound(greenlet.GreenletExit):
    """A parked task's greenlet is being thrown away: it unwinds without recording a result.

    That happens when the worker ends, or when nothing can resume the greenlet any more.
    greenlet throws GreenletExit into such a greenlet where it parked; the scheduler turns it
    into this class there, so that a GreenletExit a task raises itself (gevent code does) is
    told apart and reaches the waiter like any other exception.
    """


class Future(Generic[T]):
    """The eventual result of a task submitted with :func:`scoop.futures.submit` or ``map``."""

    __slots__ = (
        "_args",
        "_blame",
        "_call_frames",
        "_callbacks",
        "_direct",
        "_exception",
        "_fn",
        "_fn_frame",
        "_kwargs",
        "_offered",
        "_result",
        "_scheduler",
        "_state",
        "_waiters",
        "id",
    )

    def __init__(
        self,
        scheduler: Scheduler,
        task_id: int,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes,
        call_frames: list[Frame],
    ) -> None:
        self._scheduler = scheduler
        #: Unique id of the task in this run (the submitting worker's index in the high bits).
        self.id = task_id
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._fn_frame = fn_frame
        self._call_frames = call_frames
        self._state = PENDING
        #: The task from another worker under which this one was submitted (0: none), blamed
        #: if this one's code kills the worker (see scoop._slot).
        self._blame = 0
        #: Already handed to the broker once for a waiter with a timeout (see Scheduler.offer).
        self._offered = False
        #: Whether it may go to another worker directly (not once a worker holding it was lost).
        self._direct = True
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Waiter] = []
        self._callbacks: list[Callable[[Future[T]], object]] = []

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", None) or repr(self._fn)
        return f"<scoop Future {self.id:#x} {name} {self._state.lower()}>"

    def done(self) -> bool:
        """Return True if the task finished (with a result or an exception) or was cancelled."""
        return self._state in (FINISHED, CANCELLED)

    def running(self) -> bool:
        """Return True if the task is executing here or has been handed to another worker."""
        return self._state == RUNNING

    def cancelled(self) -> bool:
        """Return True if the task was cancelled before it started."""
        return self._state == CANCELLED

    def cancel(self) -> bool:
        """Cancel the task if it has not started yet; return True if it is (now) cancelled."""
        # Under the queue lock: the communication thread may be handing this task away.
        with self._scheduler.queue_lock:
            if self._state == CANCELLED:
                return True
            if self._state != PENDING:
                return False
            self._state = CANCELLED
        self._release()
        self._notify()
        return True

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task and return its result, or raise its exception.

        Raises ``TimeoutError`` (``concurrent.futures.TimeoutError``) if it is not done within
        ``timeout`` seconds and ``concurrent.futures.CancelledError`` if it was cancelled. An
        exception raised in another worker is re-raised here with its remote traceback chained.
        """
        self._wait_finished(timeout)
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task and return the exception it raised, or None if it succeeded."""
        self._wait_finished(timeout)
        return self._exception

    def _wait_finished(self, timeout: float | None) -> None:
        """Wait until finished; raise CancelledError or TimeoutError if it did not finish."""
        if not self.done():
            self._scheduler.wait_one(self, timeout)
        if self._state == CANCELLED:
            raise CancelledError(f"{self!r} was cancelled")
        if self._state != FINISHED:
            raise TimeoutError(f"{self!r} did not finish within {timeout} seconds")

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(future)`` when the future is done (at once if it already is).

        Callbacks run in the scheduler of the worker that owns the future; an exception they
        raise is logged and ignored.
        """
        if self.done():
            self._scheduler.run_callback(fn, self)
        else:
            self._callbacks.append(fn)

    # -- used by the scheduler ---------------------------------------------------------------

    def _release(self) -> None:
        # The call is not needed once the task has started or ended; drop the references.
        self._fn_frame = b""
        self._call_frames = []

    def _set_result(self, value: Any) -> None:
        self._result = value
        self._state = FINISHED
        self._notify()

    def _set_exception(self, exc: BaseException) -> None:
        self._exception = exc
        self._state = FINISHED
        self._notify()

    def _notify(self) -> None:
        self._args = ()
        self._kwargs = {}
        self._release()  # a task that ran elsewhere kept its payload until now, for a rerun
        waiters, self._waiters = self._waiters, []
        scheduler = self._scheduler
        scheduler.unfinished.pop(self.id, None)
        spilled = scheduler.spilled_tasks
        if spilled:  # what of its payload went to shared memory and no worker read
            spilled.release(self.id)
        for waiter in waiters:
            waiter.notify(self)
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            scheduler.run_callback(fn, self)
