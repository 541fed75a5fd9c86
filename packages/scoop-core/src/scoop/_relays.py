"""What the broker relays besides tasks and results: shared constants, cancellations, progress.

:class:`Relays` is a part of :class:`scoop._broker.Broker` (a mixin, for the size of the
module). A shared constant goes to every other worker and is kept for those that join later
(the first definition wins); a cancellation reaches the worker holding the task; the workers'
counts (``--progress``) become the launcher's progress line.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Hashable, Sequence

from scoop._protocol import Codec, Entry, Kind, Message, worker_of
from scoop.errors import ProtocolError


class Relays:
    """Constants, cancellations and progress counts; mixed into the broker, whose state it uses."""

    # The broker's state this part reads and changes (see scoop._broker.Broker).
    codec: Codec
    workers: dict[int, Hashable]
    queue: deque[Entry]
    holder: dict[int, int]
    constants: dict[int, Entry]
    progress: dict[int, tuple[int, int, int]]
    on_progress: Callable[[dict[str, int]], None] | None
    _last_progress: dict[str, int]

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        raise NotImplementedError

    def _drop(self, peer: Hashable, reason: str) -> None:
        raise NotImplementedError

    def _progress_of(self, sender: int, entries: list[Entry]) -> None:
        try:
            self.codec.verify(entries[0])
            counts = json.loads(bytes(entries[0].frames[0]))
            self.progress[sender] = (
                int(counts["started"]),
                int(counts["ended"]),
                int(counts["queued"]),
            )
        except (IndexError, ValueError, KeyError, TypeError, ProtocolError) as exc:
            self._drop(self.workers.get(sender), f"malformed PROGRESS: {exc}")

    def _report_progress(self) -> None:
        """The run's totals, for the launcher's progress line (when they changed)."""
        if not self.progress:
            return  # no worker has counted anything yet
        live = {i: c for i, c in self.progress.items() if i in self.workers}
        totals = {
            "done": sum(ended for _, ended, _ in self.progress.values()),
            "running": sum(started - ended for started, ended, _ in live.values()),
            "queued": sum(queued for _, _, queued in live.values()) + len(self.queue),
            "busy": sum(1 for started, ended, _ in live.values() if started > ended),
            "workers": len(self.workers),
        }
        if totals != self._last_progress and self.on_progress is not None:
            self._last_progress = totals
            self.on_progress(totals)

    def _cancel(self, sender: int, entries: list[Entry]) -> None:
        """Drop tasks their submitter cancelled: from the queue, and at the worker holding them.

        Best effort: a task already running finishes (its submitter drops the result).
        """
        ids = {entry.id for entry in entries if worker_of(entry.id) == sender}  # its own only
        if not ids:
            return
        if self.queue:
            self.queue = deque(entry for entry in self.queue if entry.id not in ids)
        by_holder: dict[int, list[Entry]] = {}
        no_payload = self.codec.digest([])
        for task_id in ids:
            holder = self.holder.pop(task_id, None)
            if holder is not None:
                by_holder.setdefault(holder, []).append(Entry(task_id, 0, no_payload, []))
        for holder, held in by_holder.items():
            self._send(holder, Kind.CANCEL, 0, held)

    def _constant(self, sender: int, message: Message) -> None:
        for entry in message.entries:
            if entry.id in self.constants:
                continue  # first definition wins; the worker that set it twice was told
            self.constants[entry.id] = entry
            for index in list(self.workers):
                if index != sender:
                    self._send(index, Kind.CONST, 0, [entry])


__all__ = ["Relays"]
