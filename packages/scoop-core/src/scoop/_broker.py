"""The broker: routes task and result frames between workers; never unpickles a payload.

State it keeps, all keyed by ids from authenticated headers::

    workers   index -> transport peer          (learned from HELLO)
    queue     tasks spilled by busy workers and not yet given to anyone
    hungry    workers that asked for tasks and got none yet, in arrival order, with how many
              tasks each would take (hand-outs: scoop._dispatch)
    holder    task id -> index of the worker it was given to (until its result passes by), so
              that a worker's loss can be traced to the tasks it held
    constants shared constants, replayed to workers that join later
    members   who joined, when each was last heard, who was lost (scoop._membership)

A message that fails to decode or authenticate is dropped and counted, and the run goes on.

When a worker is lost (see :mod:`scoop._membership` for when), the broker sends each submitter of
a task the lost worker held a LOST message naming it: the submitter still has the task's payload
(its Future keeps the pickled call until the result is in) and queues it again. The broker keeps
no payload, only ids: the memory a rerun needs is the submitter's, which it holds anyway, and a
task whose submitter is gone is not worth running. The task keeps its id, and a result passes
only from the worker that holds the task now, so each result reaches its submitter once. A task
that was running when its worker died ``max_task_deaths`` times is given up instead (LOST with
status GAVE_UP), and its waiter gets a KilledWorkerError.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from scoop._departures import Departures
from scoop._directnotes import DirectNotes
from scoop._dispatch import Dispatch
from scoop._joins import Joins
from scoop._membership import Membership
from scoop._protocol import (
    IDLE_AFTER,
    PROGRESS_INTERVAL,
    Codec,
    Entry,
    Kind,
    Message,
    Status,
    appetite_of,
    drop_is_logged,
    local_versions,
    queued_of,
    worker_of,
)
from scoop._relays import Relays
from scoop._streams import Streams, StreamSending
from scoop._trace import Recorder
from scoop.errors import ProtocolError
from scoop.transport import BrokerEndpoint

logger = logging.getLogger("scoop.broker")

#: After the root ends the run, how long the broker waits for workers that have not joined yet.
LATE_JOIN_SECONDS = 3.0
#: Longest the broker waits on the network before it looks at the launcher's reports and checks
#: the workers' heartbeats.
TURN_SECONDS = 0.1
#: Most messages handled while results wait to share one message per submitter (they wait only
#: while more messages are already waiting to be handled: never for the network).
RESULTS_HOLD_MESSAGES = 64


def _to_stderr(line: str) -> None:
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


# Each part declares what it uses of the others as stubs: a part must come after the one that
# implements what it declares (Joins uses Departures' live_count, for one).
class Broker(StreamSending, Dispatch, Departures, Joins, Relays, DirectNotes):
    """Routes messages for one run."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        codec: Codec,
        transport: str,
        *,
        size: int = 0,
        parent_pid: int | None = None,
        on_ending: Callable[[int], None] | None = None,
        members: Membership | None = None,
        on_lost: Callable[[int], None] | None = None,
        say: Callable[[str], None] = _to_stderr,
    ) -> None:
        self.endpoint = endpoint
        #: Called once, with the exit code, before the workers are told the run is over.
        self.on_ending = on_ending
        self.members = members or Membership()
        #: Called with the index of a worker taken for lost (the launcher stops its process).
        self.on_lost = on_lost
        #: Writes a line for the user (a lost worker, the summary at the end).
        self.say = say
        #: Reports of the launcher (a worker's process ended: ``{"gone": index, "reason": ...,
        #: "running": task id}``), put here by another thread, read by the serve loop.
        self.reports: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.codec = codec
        self.versions = local_versions(transport)
        self.parent_pid = parent_pid
        self.workers: dict[int, Hashable] = {}
        self.index_of: dict[Hashable, int] = {}
        self.queue: deque[Entry] = deque()
        #: Idle workers, longest idle first, with how many tasks each would take (scoop._dispatch).
        self.hungry: dict[int, int] = {}
        #: Workers that may believe nobody is idle: the broker's last word on the demand to
        #: them was 0 (or nothing yet), or they handed tasks out since. Only they are sent
        #: DEMAND when a worker goes idle (the others already know that some worker is), so
        #: what a worker going idle costs does not grow with the number of workers.
        self.uninformed: dict[int, None] = {}
        self.holder: dict[int, int] = {}
        #: Tasks sent directly that their worker said it took (TAKEN) before their submitter's
        #: note (GIVEN) came: the note then changes nothing.
        self.settled_early: dict[int, int] = {}
        #: Tasks sent directly to each worker (GIVEN) that it has not said it took yet: until it
        #: does, its word that it is idle predates them, and it is not taken for idle.
        self.coming: dict[int, set[int]] = {}
        self.constants: dict[int, Entry] = {}
        #: Results on their way to each submitter, merged while more messages wait (a submitter
        #: whose tasks run on many workers gets one RESULTS for many of theirs).
        self.results_out: dict[int, list[Entry]] = {}
        self._held_for = 0
        self.dropped = 0
        self.streams = Streams(codec)
        self.size = size
        self.stopped = False
        self.exit_code: int | None = None
        self.told_to_stop: set[int] = set()
        self.joined_late = 0
        #: Launchers that added workers to the run (scoop._supervisor), by index.
        self.supervisors: dict[int, Hashable] = {}
        self._stop_deadline: float | None = None
        self._termination_code: int | None = None
        #: Its queue and hungry workers over time, when the run is traced (scoop._trace).
        self.trace: Recorder | None = None
        #: With --progress: each worker's last counts, and where the run's totals go.
        self.progress: dict[int, tuple[int, int, int]] = {}
        self.on_progress: Callable[[dict[str, int]], None] | None = None
        self._last_progress: dict[str, int] = {}
        self._next_progress = 0.0

    def request_termination(self, code: int) -> None:
        """Ask :meth:`serve` to end the run at once (safe to call from a signal handler).

        Only a flag is set: the handler may run while the endpoint is being used or closed, so
        the SHUTDOWN messages are sent by the serve loop itself, at its next turn.
        """
        self._termination_code = code

    def serve(self, until: Callable[[], bool] | None = None) -> None:
        """Route messages until the root ends the run (or ``until()`` becomes true)."""
        next_check = 0.0
        while not self.stopped and not (until is not None and until()):
            if self._termination_code is not None:
                self.shutdown(self._termination_code, wait_for_late_joiners=False)
                break
            now = time.monotonic()
            if self._stop_deadline is not None and now >= self._stop_deadline:
                missing = sorted(set(range(self.size)) - self.told_to_stop - set(self.members.lost))
                logger.warning("workers %s never joined; ending the run without them", missing)
                break
            if now >= next_check:  # at most every TURN_SECONDS, however busy the network is
                next_check = now + TURN_SECONDS
                self._check_members(now)
                if self.on_progress is not None and now >= self._next_progress:
                    self._next_progress = now + PROGRESS_INTERVAL
                    self._report_progress()
            received = self.endpoint.recv(0 if self.results_out else TURN_SECONDS)
            if received is None:
                if self.results_out:  # nothing more waiting: the held results go now
                    self._flush_results()
                    continue
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    logger.error("its launcher is gone; exiting")
                    self.shutdown(1)
                continue
            peer, frames = received
            try:
                self.handle(peer, frames)
            except Exception:  # one bad message must not end the run: log it and go on
                self.dropped += 1
                logger.exception("broker failed to handle a message from %r", peer)
            if self.results_out:
                self._held_for += 1
                if self._held_for >= RESULTS_HOLD_MESSAGES:
                    self._flush_results()
            if self.trace is not None:
                self.trace.counted(len(self.queue), len(self.hungry))
        self._flush_results()

    def handle(self, peer: Hashable, frames: list[Any]) -> None:
        """Decode, authenticate and act on one message; drop it if it is not ours."""
        try:
            message = self.codec.decode(frames)
        except ProtocolError as exc:
            self._drop(peer, str(exc))
            return
        if not self.streams.sequence.accept(message):
            # Sent twice after a reconnection, replayed, or after a gap: its sender sends again.
            logger.debug(
                "broker ignored from %d: %s",
                message.sender,
                self.streams.sequence.explain(message),
            )
            return
        sender = self.index_of.get(peer)
        if sender is None and message.kind != Kind.HELLO and self._is_member(message.sender):
            sender = message.sender  # authenticated, and next in its stream: the same worker
            self._rebind(sender, peer)
        if sender is not None:
            self.streams.received(sender, message)
        if message.kind == Kind.HELLO:
            self._hello(peer, message)
        elif sender is None:
            self._drop(peer, f"{message.kind.name} from a worker that never said HELLO")
        elif message.sender != sender:
            self._drop(peer, f"{message.kind.name} of worker {message.sender} from worker {sender}")
        elif sender in self.supervisors:
            self._from_supervisor(sender, message)
        elif sender in self.members.lost:
            # Taken for lost (its tasks run elsewhere now): what it still sends is not counted.
            logger.debug("broker ignored %s of lost worker %d", message.kind.name, sender)
        else:
            self.members.heard(sender, time.monotonic())
            self._act(sender, message)

    def _act(self, sender: int, message: Message) -> None:
        """Act on a message of a member."""
        if message.kind == Kind.TASKS:
            self.hungry.pop(sender, None)  # a worker that hands out tasks is not idle
            self.uninformed[sender] = None  # it spent (some of) the demand it knew of
            for entry in message.entries:
                self.holder.pop(entry.id, None)
            lost = self.members.lost
            if lost:  # tasks whose submitter is gone: nobody waits for them
                self.queue.extend(e for e in message.entries if worker_of(e.id) not in lost)
            else:
                self.queue.extend(message.entries)
            self._dispatch()  # first to the others: they were idle before the sender
            if message.arg & IDLE_AFTER:
                self._now_idle(sender, appetite_of(message.arg))
                self._announce_demand(sender)
            elif self.hungry and queued_of(message.arg):
                self._tell_demand_left(sender)
        elif message.kind == Kind.REQUEST:
            self._now_idle(sender, message.arg)
            self._announce_demand(sender)
        elif message.kind == Kind.RESULTS:
            self._took_directly(sender, message.entries)  # before its word that it is idle
            if message.arg & IDLE_AFTER:  # idle first: the results then carry the new demand
                self._now_idle(sender, appetite_of(message.arg))
                self._route_results(message)
                self._announce_demand(sender)
            else:
                self._route_results(message)
        elif message.kind == Kind.CONST:
            self._constant(sender, message)
        elif message.kind == Kind.CANCEL:
            self._cancel(sender, message.entries)
        elif message.kind == Kind.PROGRESS:
            self._progress_of(sender, message.entries)
        elif message.kind == Kind.SHUTDOWN:
            self._forget(sender)  # the root has left
            self.shutdown(message.arg, sender)
        elif message.kind == Kind.BYE:
            self.leave(sender)
        elif message.kind != Kind.HEARTBEAT:  # a heartbeat only says it is alive
            self._drop(self.workers.get(sender), f"unexpected {message.kind.name} message")

    def _drop(self, peer: Hashable, reason: str) -> None:
        """Count a bad message; log the first few, then only at powers of ten (no log flood)."""
        self.dropped += 1
        count = self.dropped
        if drop_is_logged(count):
            label = peer.hex()[:16] if isinstance(peer, bytes) else repr(peer)[:40]
            logger.warning(
                "broker dropped a message from peer %s (%d dropped so far): %s",
                label,
                count,
                reason,
            )

    def _route_results(self, message: Message) -> None:
        """Hold each result for the worker that submitted its task.

        They go when no other message waits (or after RESULTS_HOLD_MESSAGES), one RESULTS
        message per submitter, which carries the number of idle workers other than it.
        """
        by_origin = self.results_out
        holder = self.holder
        for entry in message.entries:
            if entry.status >= Status.DELIVERED:  # a note on the direct path, not a result
                self._direct_note(message.sender, entry)
                continue
            holder.pop(entry.id, None)
            by_origin.setdefault(worker_of(entry.id), []).append(entry)

    def _forget(self, index: int) -> None:
        # Stop sending to it, but keep its identity: messages it sent before it left (its
        # SHUTDOWN, its last results) may still be queued behind, and must be understood.
        self.workers.pop(index, None)
        self.hungry.pop(index, None)
        self.uninformed.pop(index, None)
        self.coming.pop(index, None)

    def tasks_held_by(self, index: int) -> list[int]:
        """Ids of the tasks the broker gave to worker ``index`` whose results it has not seen."""
        return [task_id for task_id, holder in self.holder.items() if holder == index]

    def shutdown(
        self, code: int, sender: int | None = None, *, wait_for_late_joiners: bool = True
    ) -> None:
        """Tell every worker the run is over; wait (a little) for those yet to join."""
        if self.exit_code is None:
            if self.on_ending is not None:
                self.on_ending(code)
            summary = self.members.summary()
            if summary:
                self.say(summary)
        self.exit_code = code
        if sender is not None:
            self.told_to_stop.add(sender)
        for index in list(self.workers):
            self._send(index, Kind.SHUTDOWN, code)
            self.told_to_stop.add(index)
        for index in list(self.supervisors):
            self._send(index, Kind.SHUTDOWN, code)
        if not wait_for_late_joiners:
            self.stopped = True
            return
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + LATE_JOIN_SECONDS
        self._stop_if_everyone_told()

    def _stop_if_everyone_told(self) -> None:
        if (self.told_to_stop | self.members.lost.keys()).issuperset(range(self.size)):
            self.stopped = True
