"""The broker's side of the direct path (scoop._direct): the notes that keep its record true.

:class:`DirectNotes` is a part of :class:`scoop._broker.Broker` (a mixin, for the size of the
module). A task sent straight from its submitter to a worker of the same machine never passes
the broker; three notes, riding on RESULTS messages, tell it what happened (``Status.GIVEN``
from the submitter, ``Status.TAKEN`` and ``Status.DELIVERED`` from the worker), so that it never
takes a busy worker for an idle one, a lost worker's tasks run again, and a cancellation finds
them. The two streams (the submitter's and the worker's) may cross: see docs/architecture.md,
"The direct path".
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Sequence

from scoop._protocol import Codec, Entry, Kind, LostStatus, Status, worker_of
from scoop.errors import ProtocolError

#: Most ids kept of tasks whose worker said it took them before their submitter's note came (see
#: DirectNotes.settled_early); past that the oldest are forgotten.
SETTLED_EARLY_KEPT = 4096


class DirectNotes:
    """Notes on the direct path; mixed into the broker, whose state it uses."""

    # The broker's state this part reads and changes (see scoop._broker.Broker).
    codec: Codec
    workers: dict[int, Hashable]
    hungry: dict[int, int]
    holder: dict[int, int]
    #: Tasks sent directly that their worker said it took (TAKEN) before their submitter's
    #: note (GIVEN) came, and that worker: the note then changes nothing.
    settled_early: dict[int, int]
    #: Tasks sent directly to each worker (GIVEN) that it has not said it took yet: until it
    #: does, its word that it is idle predates them, and it is not taken for idle.
    coming: dict[int, set[int]]

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        raise NotImplementedError

    def _drop(self, peer: Hashable, reason: str) -> None:
        raise NotImplementedError

    def _took_directly(self, sender: int, entries: list[Entry]) -> None:
        """Worker ``sender`` took these tasks, sent to it directly (TAKEN notes): it is busy."""
        coming = self.coming.get(sender)
        for entry in entries:
            if entry.status != Status.TAKEN:
                continue
            self.holder[entry.id] = sender
            self.hungry.pop(sender, None)
            if coming is not None and entry.id in coming:
                coming.discard(entry.id)
            else:  # before its submitter's GIVEN: that note must change nothing
                self._settled_early(entry.id, sender)
        if coming is not None and not coming:
            del self.coming[sender]

    def _direct_note(self, sender: int, entry: Entry) -> None:
        """A note on a task that travelled on the direct path (scoop._direct)."""
        if entry.status == Status.TAKEN:
            return  # see _took_directly
        if entry.status == Status.DELIVERED:  # its result went straight to the submitter
            self.holder.pop(entry.id, None)
            return
        # GIVEN: the submitter sent its task straight to a worker, named in the payload.
        try:
            if entry.status != Status.GIVEN or worker_of(entry.id) != sender:
                raise ProtocolError(f"note {entry.status} on task {entry.id:#x} from {sender}")
            self.codec.verify(entry)
            (target,) = struct.unpack("<I", bytes(entry.frames[0]))
        except (IndexError, struct.error, ProtocolError) as exc:
            self._drop(self.workers.get(sender), f"malformed note on the direct path: {exc}")
            return
        if self.settled_early.pop(entry.id, None) == target:
            return  # its worker took it, and may be idle again already: its own word counts
        if target not in self.workers:  # lost, or left, before the note came: run it again
            payload: list[bytes] = []
            lost = Entry(entry.id, LostStatus.RERUN, self.codec.digest(payload), list(payload))
            self._send(sender, Kind.LOST, 0, [lost])
            return
        # Busy with it from now: its word that it is idle, until it says it took the task, is
        # older than the task (the broker must not give it more work meanwhile).
        self.holder[entry.id] = target  # a record from before (handed back unstarted) is stale
        self.coming.setdefault(target, set()).add(entry.id)
        self.hungry.pop(target, None)

    def _settled_early(self, task_id: int, worker: int) -> None:
        early = self.settled_early
        early[task_id] = worker
        if len(early) > SETTLED_EARLY_KEPT:
            del early[next(iter(early))]


__all__ = ["SETTLED_EARLY_KEPT", "DirectNotes"]
