"""Waiting in a task: parked greenlets, what wakes them, and the waits built on them.

:class:`Waiting` is a part of :class:`scoop._scheduler.Scheduler` (a mixin, for the size of the
module): a task that waits on futures or a shared constant parks its greenlet on a
:class:`Waiter`, which futures notify as they finish; the scheduler's loop resumes it. A wait
with a timeout also sets a timer, and offers the awaited tasks queued here to idle workers
(``offer``: tasks are not preempted, so one run here could hold the waiter past its timeout).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import greenlet

from scoop._future import CANCELLED, Future, TaskUnwound
from scoop.errors import SharedConstantError


class Waiter:
    """A parked greenlet and what it waits for; futures notify it when they finish."""

    __slots__ = ("active", "failed", "finished", "fired", "glet", "pending")

    def __init__(self, glet: greenlet.greenlet, pending: int = 0, collect: bool = False) -> None:
        self.glet = glet
        self.fired = False
        self.active = True
        self.pending = pending
        self.failed = False
        self.finished: deque[Future[Any]] | None = deque() if collect else None

    def notify(self, fut: Future[Any]) -> None:
        self.pending -= 1
        if fut._exception is not None or fut._state == CANCELLED:
            self.failed = True
        if self.finished is not None:
            self.finished.append(fut)
        fut._scheduler.wake(self)


class Waiting:
    """Parking and waking greenlets; mixed into the scheduler, whose state it uses."""

    # The scheduler's state this part reads and changes (see scoop._scheduler.Scheduler).
    hub: greenlet.greenlet | None
    ready: deque[greenlet.greenlet]
    timers: list[tuple[float, int, Waiter]]
    _timer_seq: itertools.count[int]
    deadline_waits: int
    constants: dict[str, Any]
    constant_waiters: list[Waiter]

    def run_loop(self, until: Callable[[], bool]) -> None:
        raise NotImplementedError

    def offer(self, futures: list[Future[Any]]) -> None:
        raise NotImplementedError

    def end_offer(self, futures: list[Future[Any]]) -> None:
        raise NotImplementedError

    def wake(self, waiter: Waiter) -> None:
        """Mark a waiter's condition as possibly met and schedule its greenlet to resume."""
        if waiter.active and not waiter.fired:
            waiter.fired = True
            if waiter.glet is not self.hub:
                self.ready.append(waiter.glet)

    def park(self, waiter: Waiter) -> None:
        """Suspend the calling greenlet until the waiter is woken (or its timer fires)."""
        waiter.fired = False
        current = greenlet.getcurrent()
        if self.hub is None or current is self.hub:
            self.run_loop(lambda: waiter.fired)
            return
        try:
            self.hub.switch()
        except greenlet.GreenletExit as exc:
            raise TaskUnwound() from exc

    def _start_wait(self, waiter: Waiter, timeout: float | None) -> float | None:
        if timeout is None or timeout < 0:
            return None
        deadline = time.monotonic() + timeout
        heapq.heappush(self.timers, (deadline, next(self._timer_seq), waiter))
        return deadline

    def wait_one(self, fut: Future[Any], timeout: float | None) -> None:
        """Park until ``fut`` is done or ``timeout`` seconds have passed."""
        self.wait_futures([fut], timeout, "ALL_COMPLETED")

    def wait_futures(
        self, futures: Iterable[Future[Any]], timeout: float | None, return_when: str
    ) -> None:
        """Park until the ``concurrent.futures`` condition ``return_when`` holds, or timeout."""
        pending = [f for f in futures if not f.done()]
        if not pending:
            return
        if return_when == "FIRST_EXCEPTION" and any(
            f.done() and (f._exception is not None or f.cancelled()) for f in futures
        ):
            return
        waiter = Waiter(greenlet.getcurrent(), pending=len(pending))
        total = waiter.pending
        with self._watching(waiter, pending, timeout) as deadline:
            while waiter.pending > 0:
                if return_when == "FIRST_COMPLETED" and waiter.pending < total:
                    break
                if return_when == "FIRST_EXCEPTION" and waiter.failed:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.park(waiter)

    @contextlib.contextmanager
    def _watching(
        self, waiter: Waiter, pending: list[Future[Any]], timeout: float | None
    ) -> Iterator[float | None]:
        """Register ``waiter`` on unfinished futures (and a timer) for the time of a wait."""
        for fut in pending:
            fut._waiters.append(waiter)
        deadline = self._start_wait(waiter, timeout)
        if deadline is not None:
            self.deadline_waits += 1
            self.offer(pending)
        try:
            yield deadline
        finally:
            if deadline is not None:
                self.deadline_waits -= 1
                self.end_offer(pending)
            waiter.active = False
            for fut in pending:
                if not fut.done():
                    fut._waiters.remove(waiter)

    def iter_completed(
        self, futures: Iterable[Future[Any]], timeout: float | None
    ) -> Iterator[Future[Any]]:
        """Yield futures as they finish (failed and cancelled ones included)."""
        futures = list(dict.fromkeys(futures))
        pending = []
        for fut in futures:
            if fut.done():
                yield fut
            else:
                pending.append(fut)
        if not pending:
            return
        waiter = Waiter(greenlet.getcurrent(), pending=len(pending), collect=True)
        finished = waiter.finished
        assert finished is not None
        with self._watching(waiter, pending, timeout) as deadline:
            yielded = 0
            while yielded < len(pending):
                while finished:
                    yielded += 1
                    yield finished.popleft()
                if yielded == len(pending):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{len(pending) - yielded} of {len(futures)} futures unfinished "
                        f"after {timeout} seconds"
                    )
                waiter.glet = greenlet.getcurrent()  # the consumer may resume us elsewhere
                self.park(waiter)

    def wait_constant(self, name: str, timeout: float | None) -> bool:
        """Park until the shared constant ``name`` is known; return whether it is."""
        if name in self.constants:
            return True
        waiter = Waiter(greenlet.getcurrent())
        deadline = self._start_wait(waiter, timeout)
        try:
            while name not in self.constants:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self.constant_waiters.append(waiter)
                self.park(waiter)
            return True
        finally:
            waiter.active = False

    def constant_arrived(self) -> None:
        """Wake everything waiting for a shared constant."""
        waiters, self.constant_waiters = self.constant_waiters, []
        for waiter in waiters:
            self.wake(waiter)

    def set_constant(self, name: str, value: Any) -> None:
        """Define a shared constant (serial mode: only in this process)."""
        if name in self.constants:
            raise SharedConstantError(
                f"shared constant {name!r} is already set; constants cannot change"
            )
        self.constants[name] = value
        self.constant_arrived()


__all__ = ["Waiter", "Waiting"]
