"""A worker's side of the direct path (scoop._direct): what goes, and what came, directly.

:class:`DirectPeers` is a part of :class:`scoop._worker.WorkerScheduler` (a mixin, for the size
of the module):

* ``_hand_out``: own tasks a waiter with a timeout (or a client) hands out go one each to the
  workers of this machine that said a moment ago that they were idle, the rest to the broker;
* ``_result_directly``: a worker about to go idle sends its last result straight back;
* ``read_direct`` (main thread, after its sleep) and ``poll_direct`` (communication thread,
  while a long task runs) act on what came: tasks join the queue (the broker is told: TAKEN),
  results join the inbox, and a result's word that its worker is idle is remembered.

Notes for the broker ride on the next RESULTS message (``Communicator.add_result(note=True)``).
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from typing import Any

from scoop._comm import DIRECT_POLL_INTERVAL, Communicator
from scoop._direct import DIRECT_SPIN_SECONDS, DirectChannel, MainWake
from scoop._future import Future
from scoop._protocol import IDLE_AFTER, Entry, Kind, Message, Status, worker_of
from scoop.transport import Frame

#: How recent a worker's word that it is idle must be for a task to go to it directly: past
#: that, it may have been given work since, and the broker knows better who is idle.
IDLE_WORD_FRESH = 0.01


class DirectPeers:
    """The direct path of a worker; mixed into its scheduler, whose state it uses."""

    # The scheduler's state this part reads and changes (see scoop._worker.WorkerScheduler).
    comm: Communicator
    direct: DirectChannel | None
    #: Workers of this machine that said on the direct path that they were idle, and when.
    idle_peers: dict[int, float]
    #: Until when an answer on the direct path is expected soon (see DIRECT_SPIN_SECONDS).
    spin_until: float
    #: When the main thread last woke from its sleep for work (see poll_direct).
    awake_since: float
    wake_event: MainWake
    remote: dict[int, Future[Any]]
    local: deque[Any]
    ready: deque[Any]
    inbox: deque[Message]
    queue_lock: threading.Lock
    trace: Any
    requested: bool
    stopping: bool
    said_bye: bool
    leaving: bool
    held: deque[Future[Any]]
    #: Idle workers, as the broker last said (scoop._handover).
    demand: int

    def _meet_demand(self) -> None:
        raise NotImplementedError

    def _hand_out(self, entries: list[Entry]) -> None:
        """Hand own tasks out (main thread): directly to workers just idle here, or to the broker.

        One task per worker that said it was idle less than IDLE_WORD_FRESH ago, and only
        tasks that never lost a worker, go directly; the broker gets a note for each (it keeps
        track of who holds what, for losses and cancellations) and the rest, which it shares
        out among the idle workers.
        """
        direct = self.direct
        rest = entries
        if direct is not None and self.idle_peers:
            rest = []
            for entry in entries:
                fut = self.remote.get(entry.id)
                peer = self._idle_peer() if fut is not None and fut._direct else None
                if peer is None or not direct.send(peer, Kind.TASKS, 0, [entry]):
                    rest.append(entry)
                    continue
                if self.trace is not None:
                    self.trace.moved(-1)
                self.spin_until = time.perf_counter() + DIRECT_SPIN_SECONDS  # the result?
                self.comm.add_result((entry.id, Status.GIVEN, [struct.pack("<I", peer)]), note=True)
                # self.demand stays: it is the broker's word, which the broker corrects. Lowered
                # here, it could stay 0 for good while that worker is idle again (its notes
                # can reach the broker before this one, and it is then told nothing new).
        if rest:
            self.comm.post(Kind.TASKS, 0, rest)

    def _idle_peer(self) -> int | None:
        """The worker of this machine that last said it was idle, if it said so just now.

        Both threads change ``idle_peers``; popitem (the newest) and clear are each atomic.
        """
        peers = self.idle_peers
        try:
            index, since = peers.popitem()
        except KeyError:
            return None
        if time.monotonic() - since <= IDLE_WORD_FRESH:
            return index
        peers.clear()  # the others are older still: none is fresh
        return None

    def read_direct(self) -> bool:
        """Act on the messages waiting on the direct path (never blocks); True if tasks came."""
        direct = self.direct
        tasks = False
        if direct is not None:
            for message in direct.receive():
                tasks |= self._on_direct(message)
        return tasks

    @property
    def takes_turns(self) -> bool:
        """Whether the communication thread takes a turn (``poll_direct``) every 20 ms.

        That is DIRECT_POLL_INTERVAL, while workers are idle (the broker's demand) and the main
        thread is at work, or was woken and is about to be. Woken counts: the communication
        thread wakes it when tasks come, and looks at how long it may block before the main
        thread has started the first of them; it would then block for a whole turn (up to a
        second), and the tasks queued behind a long first one would wait for it. With no
        demand, what is queued or came directly has nowhere to go, and the broker's DEMAND wakes
        this thread when that changes: the turns of a worker at work would only wake it 50
        times a second for nothing (over DEAP's run, 1200 of each thread's 1800 wake-ups, and
        two thirds of its CPU).
        """
        if self.demand <= 0:
            return False
        wake = self.wake_event
        return wake.is_set() or not wake.sleeping

    def poll_direct(self) -> None:
        """The communication thread's look at the queue and the direct path, at each turn.

        Only once the main thread has been awake for DIRECT_POLL_INTERVAL (asleep, or just
        woken, it looks itself): a task sent here directly while this worker runs other tasks
        is then queued, and what is queued goes on to idle workers, as the broker's tasks
        would. So the tasks this worker asked for at once (its appetite, scoop._balance) do not
        wait behind the first when it turns out long.
        """
        if self.wake_event.sleeping or time.monotonic() - self.awake_since < DIRECT_POLL_INTERVAL:
            return
        if self.read_direct() or self.local:
            self._meet_demand()

    def _on_direct(self, message: Message) -> bool:
        """Act on one direct message; return whether it brought tasks."""
        sender = message.sender
        if message.kind == Kind.RESULTS:
            if message.arg & IDLE_AFTER:  # newest last (see _idle_peer)
                self.idle_peers.pop(sender, None)
                self.idle_peers[sender] = time.monotonic()
            self.inbox.append(message)
            self.wake_event.set()
            return False
        # Tasks of their sender only (its notes to the broker name them as its own).
        entries = [entry for entry in message.entries if worker_of(entry.id) == sender]
        if not entries or self.stopping or self.said_bye:
            return False  # the broker has them run again: the sender's note names this worker
        if self.trace is not None:
            self.trace.moved(len(entries))
        self.idle_peers.pop(sender, None)  # it hands out work: it is not idle
        with self.queue_lock:
            self.local.extend(reversed(entries))  # oldest runs first, as from the broker
            self.requested = False  # the broker takes this worker off its idle list
        # A word that it is idle not sent yet is older than these tasks: it would go after the
        # TAKEN notes, and the broker would count this busy worker idle. It asks again later.
        self.comm.withdraw_idle()
        for entry in entries:  # told before this worker's next word that it is idle
            self.comm.add_result((entry.id, Status.TAKEN, []), note=True)
        self.wake_event.set()
        return True

    def _result_directly(self, task_id: int, status: int, frames: list[Frame]) -> bool:
        """Send a result straight to its submitter if this worker is about to go idle.

        Only if the submitter is on this machine; the result says this worker is idle, and the
        broker gets a note (its record of the task). False: it goes through the broker.
        """
        direct = self.direct
        if direct is None or self.local or self.ready or self.inbox or self.held or self.leaving:
            return False  # not idle after it: it must not say so
        entry = Entry(task_id, status, b"", frames)
        if not direct.send(worker_of(task_id), Kind.RESULTS, IDLE_AFTER, [entry]):
            return False
        self.spin_until = time.perf_counter() + DIRECT_SPIN_SECONDS  # its next task, soon?
        self.comm.add_result((task_id, Status.DELIVERED, []), note=True)
        return True


__all__ = ["IDLE_WORD_FRESH", "DirectPeers"]
