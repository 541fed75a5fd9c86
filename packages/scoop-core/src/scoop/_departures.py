"""The broker's side of workers that go: lost (killed, stalled, cut off) or leaving on request.

:class:`Departures` is a part of :class:`scoop._broker.Broker` (a mixin, for the size of the
module): it acts on the launcher's reports and on silence (see :mod:`scoop._membership`), has
the tasks a departed worker held run again, gives up a task that killed too many workers, keeps
such a task from the root while another worker could take it, and tells everyone the new count
of workers (MEMBERS, which each worker publishes as ``scoop.SIZE``).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from queue import Empty, SimpleQueue
from typing import Any

from scoop._membership import Membership
from scoop._protocol import Codec, Entry, Kind, LostStatus, Message, worker_of
from scoop._streams import Streams
from scoop._trace import Recorder
from scoop.errors import ProtocolError
from scoop.transport import Frame

logger = logging.getLogger("scoop.broker")


class Departures:
    """Losing and leaving workers; mixed into the broker, whose state it uses."""

    # The broker's state this part reads and changes (see scoop._broker.Broker).
    codec: Codec
    size: int
    workers: dict[int, Hashable]
    queue: deque[Entry]
    hungry: dict[int, int]
    holder: dict[int, int]
    exit_code: int | None
    members: Membership
    streams: Streams
    reports: SimpleQueue[dict[str, Any]]
    on_lost: Callable[[int], None] | None
    say: Callable[[str], None]
    #: Workers that joined with an index past the launcher's count (``--add-workers``).
    joined_late: int
    supervisors: dict[int, Hashable]
    index_of: dict[Hashable, int]

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        raise NotImplementedError

    def _resend(self, index: int) -> None:
        raise NotImplementedError

    def _forget(self, index: int) -> None:
        raise NotImplementedError

    def _dispatch(self) -> None:
        raise NotImplementedError

    def tasks_held_by(self, index: int) -> list[int]:
        raise NotImplementedError

    trace: Recorder | None

    # -- counting ----------------------------------------------------------------------------

    def live_count(self) -> int:
        """Workers in the run now: those started (joined or not yet), less those gone."""
        return self.size + self.joined_late - len(self.members.lost)

    def _announce_size(self) -> None:
        count = self.live_count()
        for index in list(self.workers):
            self._send(index, Kind.MEMBERS, count)

    # -- reports and silence -----------------------------------------------------------------

    def _check_members(self, now: float) -> None:
        """Act on the launcher's reports, and lose the workers that stopped answering."""
        while True:
            try:
                report = self.reports.get_nowait()
            except Empty:
                break
            try:
                index = int(report["gone"])
                reason = str(report.get("reason", "its process ended"))
                running = int(report.get("running") or 0)
            except (KeyError, TypeError, ValueError):
                logger.warning("broker ignored a malformed report of the launcher: %r", report)
                continue
            self.lose(index, reason, running)
        for index in self.members.silent(now):
            timeout = self.members.heartbeat_timeout
            self.lose(index, f"nothing heard from it for {timeout:g} s: stopped, hung or cut off")
        for index in self.streams.overdue(now):
            self._resend(index)
        for index in self.streams.owing(now):
            self._send(index, Kind.HEARTBEAT)  # acknowledges what it sent

    def lose(self, index: int, reason: str, running: int = 0) -> None:
        """Take worker ``index`` for lost: have the tasks it held run again elsewhere.

        ``running`` is the task whose code it was running when it died (0 if unknown): that
        one is counted as having killed it, and given up after ``max_task_deaths`` such deaths.
        """
        if self._may_depart(index):
            self._depart(index, reason)
            rerun = self._rerun_tasks_of(index, reason, running)
            if self.trace is not None:
                self.trace.event(f"worker {index} lost ({reason})")
            self.say(
                f"scoop: {self.members.describe(index)} lost ({reason}); "
                f"{rerun} task{'s' if rerun != 1 else ''} to run again"
            )
            supervisor = self.members.supervisor_of.get(index)
            if supervisor is not None:
                self._send(supervisor, Kind.STOP, index)
            elif self.on_lost is not None:
                self.on_lost(index)
            self._after_departure()

    def leave(self, index: int) -> None:
        """Worker ``index`` said BYE mid-run: it handed its queue back and runs nothing."""
        if self._may_depart(index):
            self._send(index, Kind.BYE)  # it may exit now
            self._depart(index, "left the run", left=True)
            # Tasks sent to it while its BYE was on the way: they run elsewhere.
            rerun = self._rerun_tasks_of(index, "it left", 0)
            more = f"; {rerun} task{'s' if rerun != 1 else ''} to run again" if rerun else ""
            self.say(f"scoop: {self.members.describe(index)} left the run{more}")
            self._after_departure()

    def _may_depart(self, index: int) -> bool:
        members = self.members
        if index == 0 or index in members.lost or self.exit_code is not None:
            return False  # the root is the launcher's business; at the end, exits are normal
        return 0 < index < self.size + self.joined_late or index in members.hosts

    def _depart(self, index: int, reason: str, *, left: bool = False) -> None:
        self.members.mark_lost(index, reason, left=left)
        self._forget(index)
        self.streams.close(index)
        # Tasks it submitted that nobody started yet: nobody waits for them any more.
        self.queue = deque(entry for entry in self.queue if worker_of(entry.id) != index)

    def _rerun_tasks_of(self, index: int, reason: str, running: int) -> int:
        """Send each submitter the tasks ``index`` held (LOST); return how many run again."""
        members = self.members
        lost: dict[int, list[Entry]] = {}
        rerun = 0
        for task_id in self.tasks_held_by(index):
            del self.holder[task_id]
            submitter = worker_of(task_id)
            if submitter not in self.workers or submitter == index:
                continue  # its submitter is gone too
            status, payload = LostStatus.RERUN, list[Frame]()
            if task_id == running:
                killed = members.task_killed(task_id, index, reason)
                if killed is None:
                    status = LostStatus.SUSPECT
                else:
                    text = f"its runs killed {len(killed)} workers: " + "; ".join(killed)
                    status, payload = LostStatus.GAVE_UP, [text.encode()]
            rerun += status != LostStatus.GAVE_UP
            entry = Entry(task_id, status, self.codec.digest(payload), payload)
            lost.setdefault(submitter, []).append(entry)
        for submitter, entries in lost.items():
            self._send(submitter, Kind.LOST, 0, entries)
        members.tasks_rerun += rerun
        return rerun

    def _after_departure(self) -> None:
        self._announce_size()
        members = self.members
        if not members.said_alone and self.live_count() == 1:
            members.said_alone = True
            self.say("scoop: no worker is left but the root; it goes on alone")
            self._dispatch()  # the tasks kept from the root until now

    # -- supervisors: launchers that added workers ---------------------------------------------

    def _supervisor_joined(self, index: int, peer: Hashable) -> None:
        self.supervisors[index] = peer  # its stream was opened by _hello
        self.index_of[peer] = index
        self._send(index, Kind.WELCOME)
        if self.exit_code is not None:
            self._send(index, Kind.SHUTDOWN, self.exit_code)
        logger.info("supervisor %d joined", index)

    def _from_supervisor(self, sender: int, message: Message) -> None:
        if message.kind != Kind.GONE:
            return  # its heartbeats, and nothing else it could say matters
        for entry in message.entries:
            if self.members.supervisor_of.get(entry.id) != sender:
                logger.warning("supervisor %d reported worker %d, not its own", sender, entry.id)
                continue
            try:
                self.codec.verify(entry)
                report = json.loads(bytes(entry.frames[0]))
                reason, running = str(report["reason"]), int(report["running"])
            except (IndexError, KeyError, TypeError, ValueError, ProtocolError) as exc:
                logger.warning(
                    "broker ignored a malformed report of supervisor %d: %s", sender, exc
                )
                continue
            self.lose(entry.id, reason, running)

    # -- the root and tasks that kill ---------------------------------------------------------

    def keeps_from_root(self) -> bool:
        """Whether tasks that killed a worker must not go to the root now (another could)."""
        return bool(self.members.deaths) and self.live_count() > 1

    def _take_innocent(self, count: int) -> list[Entry]:
        """Up to ``count`` queued tasks that never were running when a worker died.

        For the root: a task that kills its worker must not end the run while another worker
        could take it.
        """
        deaths = self.members.deaths
        taken: list[Entry] = []
        suspects: list[Entry] = []
        while self.queue and len(taken) < count:
            entry = self.queue.popleft()
            (suspects if entry.id in deaths else taken).append(entry)
        self.queue.extendleft(reversed(suspects))
        return taken


__all__ = ["Departures"]
