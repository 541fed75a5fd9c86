"""The greenlet scheduler of one worker.

Data flow inside a worker::

    submit(fn, *args) --> Future (pickled once, to check it can travel) --> local deque
                                                                            |  newest first (LIFO:
    hub loop: resume ready greenlets  <-- futures finishing wake waiters    |  depth-first, bounded)
              start the next local task in a new greenlet <-----------------+
              each turn: service() (subclass: act on what the network brought, send results)
              nothing to run: idle() waits for the network or the next timer

The queue of tasks (``local``) is shared with a worker's communication thread, which may hand
queued tasks to idle workers at any time: it is only changed under ``queue_lock``, and a queued
Future changes state (started, handed away, cancelled) only under that lock.

The hub is whichever greenlet runs the loop: the worker's main greenlet under the launcher, or the
user's own main greenlet in serial mode (the first ``result()`` that has to wait drives the loop).
A task that waits parks its greenlet and switches to the hub; it never blocks the worker (the
waits, and the Waiter that futures notify, are in scoop._waiting).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import greenlet

from scoop import _serialize
from scoop._future import PENDING, RUNNING, Future, TaskUnwound
from scoop._slot import RunningSlot
from scoop._trace import CALLBACK_TASK, ROOT_TASK, Recorder
from scoop._waiting import Waiter, Waiting
from scoop.errors import SerializationError

if TYPE_CHECKING:
    from scoop._spill import SpillStore

logger = logging.getLogger("scoop")


class DeadlockError(RuntimeError):
    """Every task of this process is waiting and nothing can wake any of them."""


class Scheduler(Waiting):
    """Runs tasks in greenlets on this process; the base class runs everything locally."""

    #: Index of this worker in the run (0 is the root), and the number of workers.
    index = 0
    size = 1
    #: How many workers the broker last said were idle (serial: none, ever).
    demand = 0
    #: Files in shared memory of tasks this process sent out (scoop._spill; serial: none).
    spilled_tasks: SpillStore | None = None
    #: Whether done-callbacks get slices of their own in a trace (not an Executor's client's,
    #: which are its own plumbing).
    traces_callbacks = True

    def __init__(self) -> None:
        self.hub: greenlet.greenlet | None = None
        self.ready: deque[greenlet.greenlet] = deque()
        self.local: deque[Any] = deque()
        #: Guards ``local`` and the state of the Futures queued in it (see the module docstring).
        self.queue_lock = threading.Lock()
        #: True while the hub has switched into a task (its greenlet runs user code).
        self.busy = False
        self.timers: list[tuple[float, int, Waiter]] = []
        #: Waits on futures with a timeout under way: while there are any, a worker hands even
        #: its last queued task to an idle worker (tasks are not preempted, so one it ran itself
        #: would hold the waiter past its timeout).
        self.deadline_waits = 0
        self._timer_seq = itertools.count()
        self._task_seq = itertools.count(1)
        self._fn_frames: dict[Any, bytes] = {}
        self.constants: dict[str, Any] = {}
        self.constant_waiters: list[Waiter] = []
        #: Futures submitted here that have not finished, by id (for ``futures.shutdown``).
        self.unfinished: dict[int, Future[Any]] = {}
        #: Tasks whose greenlet started here, and those that ended: the difference runs or waits.
        self.tasks_started = 0
        self.tasks_ended = 0
        #: The task from another worker whose code (or a subtask's) runs now; 0 for none.
        self.blame = 0
        self._blame_of: dict[greenlet.greenlet, int] = {}
        #: Where ``blame`` is published for whoever sees this process die (scoop._slot).
        self.running_slot: RunningSlot | None = None
        #: What this worker did, when the run is traced (scoop._trace); None: nothing recorded.
        self.trace: Recorder | None = None
        #: While traced: the task each parked greenlet runs.
        self._task_of: dict[greenlet.greenlet, int] = {}

    @property
    def where(self) -> str:
        """This worker, as error notes name it."""
        return "this process"

    # -- submitting --------------------------------------------------------------------------

    def next_task_id(self) -> int:
        """A task id unique in the run: this worker's index above a per-worker sequence."""
        return (self.index << 40) | next(self._task_seq)

    def pickle_function(self, fn: Callable[..., Any]) -> bytes:
        """Pickle a task's function, remembering module-level functions (pickled by name)."""
        try:
            return self._fn_frames[fn]
        except (KeyError, TypeError):
            pass
        if not callable(fn):
            raise TypeError(f"{_serialize.describe(fn)} is not callable")
        try:
            frame = _serialize.dumps_in_band(fn)
        except Exception as exc:
            raise SerializationError(
                f"the function {_serialize.describe(fn)} cannot be pickled to travel to another "
                f"worker: {_serialize.safe_str(exc)}"
            ) from exc
        # Functions pickled by name can be cached; closures and lambdas may change, so not them,
        # nor what of __main__ travels by value (an Executor's client): its globals may change.
        name = getattr(fn, "__name__", "<")
        by_name = isinstance(fn, type) or (
            getattr(fn, "__qualname__", None) == name and not name.startswith("<")
        )
        if by_name and _serialize.main_by_value:
            by_name = getattr(fn, "__module__", None) != "__main__"
        if by_name and len(self._fn_frames) < 1024:
            with contextlib.suppress(TypeError):  # unhashable callables are not cached
                self._fn_frames[fn] = frame
        return frame

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes | None = None,
    ) -> Future[Any]:
        """Queue a call as a new task; raise SerializationError at once if it cannot travel."""
        fut = self.new_future(fn, args, kwargs, fn_frame)
        self.enqueue(fut)
        return fut

    def new_future(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes | None = None,
    ) -> Future[Any]:
        """A task's Future, its call pickled (SerializationError if it cannot travel)."""
        if fn_frame is None:
            fn_frame = self.pickle_function(fn)
        call_frames = _serialize.dumps_call(args, kwargs)
        return Future(self, self.next_task_id(), fn, args, kwargs, fn_frame, call_frames)

    def enqueue(self, fut: Future[Any]) -> None:
        """Queue a new Future's task here (whence it may be handed away)."""
        if self.trace is not None:
            self.trace.submitted(fut.id, fut._fn, fut._args)
        fut._blame = self.blame
        self.unfinished[fut.id] = fut
        self.local.append(fut)

    def run_callback(self, fn: Callable[[Future[Any]], object], fut: Future[Any]) -> None:
        """Run a done-callback; its exception is logged, never raised into the scheduler."""
        # Run by the hub (a result came in), a callback gets a slice of its own in the trace:
        # what it submits then has a parent, and its arrows a slice to start from.
        traced = (
            self.trace is not None and self.traces_callbacks and greenlet.getcurrent() is self.hub
        )
        if traced:
            assert self.trace is not None
            self.trace.begin(CALLBACK_TASK)
        try:
            fn(fut)
        except Exception:
            logger.exception("done-callback %r of %r raised", fn, fut)
        finally:
            if traced:
                assert self.trace is not None
                self.trace.end()

    # -- the loop ----------------------------------------------------------------------------

    def run_loop(self, until: Callable[[], bool]) -> None:
        """Run tasks on the calling greenlet (which becomes the hub) until ``until()`` is true."""
        previous_hub = self.hub
        self.hub = greenlet.getcurrent()
        try:
            while not until():
                if self.timers:
                    self._fire_timers(time.monotonic())
                self.service()
                if self.ready:
                    glet = self.ready.popleft()
                    self.busy = True
                    if self.running_slot is not None:
                        self._enter(glet, self._blame_of.get(glet, 0))
                    if self.trace is not None:
                        self.trace.begin(self._task_of.get(glet, ROOT_TASK))
                    try:
                        glet.switch()
                    finally:
                        self.busy = False
                        if self.running_slot is not None:
                            self._leave(glet)
                        if self.trace is not None:
                            self._traced_stop(glet)
                    continue
                if until():
                    break
                if len(self.local) > 1 or (self.local and self.deadline_waits):
                    self.offload()  # hand out surplus before this worker takes the next task
                task = self._next_local()
                if task is not None:
                    glet = greenlet.greenlet(self._run, parent=self.hub)
                    self.busy = True
                    if self.running_slot is not None:
                        self._enter(glet, task._blame if isinstance(task, Future) else task.id)
                    if self.trace is not None:
                        self._task_of[glet] = task.id
                        self.trace.begin(task.id, new=True)
                    try:
                        glet.switch(task)
                    finally:
                        self.busy = False
                        if self.running_slot is not None:
                            self._leave(glet)
                        if self.trace is not None:
                            self._traced_stop(glet)
                    continue
                if until():
                    break
                self.idle(self.timers[0][0] - time.monotonic() if self.timers else None)
        finally:
            self.hub = previous_hub

    def _traced_stop(self, glet: greenlet.greenlet) -> None:
        # A task's stretch ends: it returned (its greenlet is dead) or parked to wait.
        assert self.trace is not None
        self.trace.end()
        if glet.dead:
            self._task_of.pop(glet, None)

    def _enter(self, glet: greenlet.greenlet, blame: int) -> None:
        # Only with a running slot: which task's code runs now, should this process die in it.
        self._blame_of[glet] = self.blame = blame
        assert self.running_slot is not None
        self.running_slot.write(blame)

    def _leave(self, glet: greenlet.greenlet) -> None:
        if glet.dead:
            self._blame_of.pop(glet, None)
        self.blame = 0
        assert self.running_slot is not None
        self.running_slot.write(0)

    def _fire_timers(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, waiter = heapq.heappop(self.timers)
            self.wake(waiter)

    def _next_local(self) -> Any:
        """Take the newest queued task (a Future is marked started), or None if there is none."""
        if not self.local:
            return None
        with self.queue_lock:
            local = self.local  # read under the lock: a subclass may replace it
            while local:
                task = local.pop()
                if not isinstance(task, Future):
                    return task
                if task._state == PENDING:
                    task._state = RUNNING
                    return task
        return None

    def _run(self, task: Any) -> None:
        self.tasks_started += 1
        try:
            if isinstance(task, Future):
                self.run_own(task)
            else:
                self.run_foreign(task)
        finally:
            self.tasks_ended += 1

    def run_own(self, fut: Future[Any]) -> None:
        """Execute a task submitted on this worker, with its original objects (marked started)."""
        fut._release()
        try:
            value = fut._fn(*fut._args, **fut._kwargs)
        except TaskUnwound:
            raise
        except BaseException as exc:
            if self.trace is not None:
                self.trace.failed(fut.id, exc)
            fut._set_exception(exc)
            return
        problem = self.result_problem(fut, value)
        if problem is None:
            fut._set_result(value)
        else:
            fut._set_exception(problem)

    def result_problem(self, fut: Future[Any], value: Any) -> BaseException | None:
        """Why the result of a task run here may not be kept (None: it may); serial: never."""
        return None

    def run_foreign(self, task: Any) -> None:
        """Execute a task received from another worker (only workers on a network have them)."""
        raise NotImplementedError

    def offload(self) -> None:
        """Hand surplus queued tasks to idle workers, if any are known; serial: none are."""

    def offer(self, futures: list[Future[Any]]) -> None:
        """A wait with a timeout begins on ``futures``: let other workers run those queued here.

        Serial: there is nobody else.
        """

    def end_offer(self, futures: list[Future[Any]]) -> None:
        """The wait with a timeout on ``futures`` is over (see :meth:`offer`)."""

    def service(self) -> None:
        """Act on what the network brought and send what is due; the serial scheduler has none."""

    def idle(self, timeout: float | None) -> None:
        """Nothing to run: wait for something to happen, at most ``timeout`` seconds."""
        if timeout is None:
            raise DeadlockError(
                "every task is waiting and nothing can wake them (a future that can never "
                "finish, or a shared constant that is never set)"
            )
        time.sleep(max(timeout, 0.0))

    def pending_futures(self) -> list[Future[Any]]:
        """Futures submitted here that are not finished (queued, running or elsewhere)."""
        return list(self.unfinished.values())


__all__ = ["DeadlockError", "Scheduler", "Waiter"]
