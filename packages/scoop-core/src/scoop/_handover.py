"""Handing tasks away: a worker's queued tasks go to the broker, for other workers.

:class:`Handover` is a part of :class:`scoop._worker.WorkerScheduler` (a mixin, for the size of
the module). Tasks leave a worker's queue when

* the broker reports idle workers (DEMAND, or the demand a TASKS or RESULTS carries): the
  communication thread hands the oldest queued tasks away at once, even while a task runs
  (``_meet_demand``; the main thread does the same before it starts a task, ``offload``); the
  policy, how many go, is :mod:`scoop._balance`. Such a hand-out says how many tasks stay
  queued here (``_still_queued``): if it leaves workers idle, the broker answers with how many;
* a wait with a timeout begins on tasks still queued here (``offer``/``end_offer``);
* the worker leaves the run (``_hand_back``), or is a client that runs no task
  (``_give_all_queued``, every turn);
* the broker reports that the worker holding one of this worker's tasks was lost (LOST): the
  task is queued again here, from the payload its Future kept (``_queue_again``).

Where a wait with a timeout, or a client, hands tasks out and a worker of this machine said a
moment ago that it was idle, they go to it directly (scoop._direct) and the broker gets a note
(``Status.GIVEN``); a task whose worker was lost never goes directly again (``Future._direct``):
the broker must see it to count the workers it kills.

The queue is shared by both threads under ``queue_lock``; a queued Future changes state only
under it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from scoop import _balance
from scoop._comm import Communicator
from scoop._direct import MainWake
from scoop._future import PENDING, RUNNING, Future
from scoop._protocol import Codec, Entry, Kind, LostStatus, Message, queued_arg


def _payload_entry(fut: Future[Any]) -> Entry:
    """The entry that carries ``fut``'s call (its digest is set before it is sent)."""
    return Entry(fut.id, 0, b"", [fut._fn_frame, *fut._call_frames])


class Handover:
    """Tasks leaving a worker's queue; mixed into the worker's scheduler, whose state it uses."""

    # The scheduler's state this part reads and changes (see scoop._worker.WorkerScheduler).
    codec: Codec
    comm: Communicator
    size: int
    local: deque[Any]
    held: deque[Future[Any]]
    remote: dict[int, Future[Any]]
    inbox: deque[Message]
    queue_lock: threading.Lock
    wake_event: MainWake
    #: Sends own tasks out, directly or through the broker (scoop._directpeers.DirectPeers).
    _hand_out: Callable[[list[Entry]], None]
    demand: int
    requested: bool
    busy: bool
    ready: deque[Any]
    deadline_waits: int
    tasks_started: int
    tasks_ended: int
    #: Its recent time per task, whence how many tasks it asks for (scoop._balance).
    pace: _balance.Pace
    pace_since: float
    said_bye: bool
    runs_tasks: bool

    def flush(self) -> None:
        raise NotImplementedError

    def _queue_again(self, message: Message) -> None:
        """Own tasks whose worker was lost: queue them again (their Futures kept the payload).

        They go to the front of the queue, the end idle workers are given tasks from. Those
        that were running when their worker died go back to the broker at once (it keeps them
        from the root), and those given up (they killed too many workers) fail in the main
        thread (inbox).
        """
        given_up = False
        suspects: list[Entry] = []
        with self.queue_lock:
            for entry in message.entries:
                fut = self.remote.get(entry.id)
                if fut is None:
                    continue
                fut._direct = False  # from now on the broker sees where it goes
                if entry.status == LostStatus.SUSPECT:  # straight back to the broker
                    suspects.append(_payload_entry(fut))
                elif entry.status == LostStatus.RERUN:
                    del self.remote[entry.id]
                    fut._state = PENDING
                    (self.held if fut._offered else self.local).appendleft(fut)
                else:
                    given_up = True
        if suspects:
            self.comm.send_now(Kind.TASKS, 0, self._with_digests(suspects))
        if given_up:
            self.inbox.append(message)
        self.wake_event.set()
        self._meet_demand()

    def _meet_demand(self) -> None:
        """Hand queued tasks to idle workers at once (communication thread)."""
        if self.demand > 0 and self.comm.started:
            entries = self._take_surplus()
            if entries:
                self.comm.send_now(Kind.TASKS, self._still_queued(), entries)
                self.wake_event.set()  # the main thread asks again once it runs out

    def _give_all_queued(self) -> None:
        """Give every queued task to the broker (a worker leaving, or a client)."""
        with self.queue_lock:
            tasks = [*self.held, *self.local]
            self.held.clear()
            self.local.clear()
            entries = [entry for entry in map(self._as_entry, tasks) if entry is not None]
        if entries:
            self._hand_out(self._with_digests(entries))

    def _hand_back(self) -> None:
        """Leaving: give every queued task to the broker; say BYE once nothing runs here."""
        self._give_all_queued()
        if self.tasks_started == self.tasks_ended and not self.ready:
            self.flush()
            self.said_bye = True
            self.comm.post(Kind.BYE)

    def offload(self) -> None:
        # Before it starts a task the main thread keeps one; from within a running task (a map
        # chunk that gave items away, scoop._batch) it keeps none.
        keeps = 0 if self.busy else 1
        if self.demand > 0 and (self.held or len(self.local) > keeps or self.deadline_waits):
            entries = self._take_surplus()
            if entries:
                self.comm.post(Kind.TASKS, self._still_queued(), entries)
                self.comm.wait_sent()  # sent before this thread starts a task (and keeps the GIL)

    def _take_surplus(self) -> list[Entry]:
        """Take the held tasks, and the oldest queued ones the policy hands to idle workers."""
        with self.queue_lock:
            held, self.held = self.held, deque()
            # What it asked for, if it would otherwise have nothing to run next (scoop._balance).
            keeps = self.runs_tasks and not (self.busy or self.ready or self.deadline_waits)
            since = time.monotonic() - self.pace_since
            keep = _balance.kept(self.pace.appetite(), since) if keeps else 0
            count = _balance.handover_count(len(self.local), self.demand, keep=keep)
            if count == 0 and not held:
                return []
            local = self.local
            taken = [self._as_entry(task) for task in held]
            taken += [self._as_entry(local.popleft()) for _ in range(count)]
            entries = [e for e in taken if e is not None]  # cancelled ones are dropped
            if entries:
                self.demand = max(0, self.demand - len(entries))
                self._handed_away()
        return self._with_digests(entries)

    def _still_queued(self) -> int:
        """The ``arg`` of a hand-out of surplus: how many tasks stay queued here.

        The one the main thread starts next, if it has nothing else to run, is not counted. The
        demand this worker acted on may be less than the broker's (a worker told that some
        are idle is not told again as more go idle): with tasks left here, the broker answers
        with the number of workers this hand-out left idle, and it hands out more.
        """
        starts_next = self.runs_tasks and not (self.busy or self.ready)
        return queued_arg(len(self.local) - starts_next)

    def offer(self, futures: list[Future[Any]]) -> None:
        """A wait with a timeout begins: hand the broker the awaited tasks queued here.

        Tasks are not preempted, so one of them run here could hold the waiter past its
        timeout. They go to the broker, for an idle worker; one that comes back (this worker
        asked for work before anyone else) is held, not run, and handed out again as soon as a
        worker is idle (DEMAND), until the wait ends (:meth:`end_offer`).
        """
        if self.size < 2 or not self.comm.started:
            return
        with self.queue_lock:
            chosen = [f for f in futures if f._state == PENDING and not f._offered]
            if not chosen:
                return
            ids = {f.id for f in chosen}
            self.local = deque(t for t in self.local if not (isinstance(t, Future) and t.id in ids))
            entries = []
            for fut in chosen:
                fut._offered = True
                entry = self._as_entry(fut)
                if entry is not None:
                    entries.append(entry)
            if not entries:
                return
            self._handed_away()
        self._hand_out(self._with_digests(entries))

    def end_offer(self, futures: list[Future[Any]]) -> None:
        """The wait with a timeout on ``futures`` is over: held tasks may run here again."""
        if not any(f._offered for f in futures):
            return
        with self.queue_lock:
            for fut in futures:
                fut._offered = False
            if self.held:
                back = [t for t in self.held if not t._offered]
                self.held = deque(t for t in self.held if t._offered)
                self.local.extend(back)

    def _handed_away(self) -> None:
        # The broker takes a worker that hands out tasks off its list of idle workers: it must
        # ask again the next time it runs out.
        self.requested = False

    def _as_entry(self, task: Any) -> Entry | None:
        """A queued task as an entry to send (under queue_lock); None for a cancelled one."""
        if not isinstance(task, Future):
            return task  # type: ignore[no-any-return]
        if task._state != PENDING:
            return None
        task._state = RUNNING
        self.remote[task.id] = task
        return _payload_entry(task)

    def _with_digests(self, entries: list[Entry]) -> list[Entry]:
        seal = self.codec.seal
        for entry in entries:
            if not entry.digest:  # own tasks (a task from elsewhere, handed on, has its own)
                seal(entry, task=True)
        return entries


__all__ = ["Handover"]
