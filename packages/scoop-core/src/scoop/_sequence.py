"""Numbered streams of messages: what a receiver accepts, what a sender keeps.

Each direction of each connection is a stream (see scoop._protocol): its sender numbers its
messages and keeps them until they are acknowledged (:class:`Outbox`), its receiver accepts only
the next number (:class:`SequenceCheck`). Used by a worker's communication thread for its one
stream to the broker, and by the broker for one stream per worker (scoop._streams).
"""

from __future__ import annotations

from collections import deque

from scoop._protocol import Message
from scoop.transport import Frame


class SequenceCheck:
    """Accepts from each sender only the next message of its stream (see the module docstring).

    Transports deliver each stream in order, so a number at or below the last one accepted is a
    message sent again (sent twice after a reconnection, or captured on the network and
    replayed, which must not run a task twice), and a number further on comes after a message
    lost with a broken connection: its sender sends both again, in order.
    """

    def __init__(self) -> None:
        self._last: dict[int, int] = {}

    def accept(self, message: Message) -> bool:
        """Record and accept ``message`` if it is the next of its stream; else return False."""
        if message.seq != self._last.get(message.sender, 0) + 1:
            return False
        self._last[message.sender] = message.seq
        return True

    def explain(self, message: Message) -> str:
        """Why :meth:`accept` refused ``message``, for the log."""
        last = self._last.get(message.sender, 0)
        if message.seq <= last:
            return f"{message.kind.name} number {message.seq} came again (sent twice, or replayed)"
        return f"{message.kind.name} number {message.seq} came after {last}: one went missing"

    def last(self, sender: int) -> int:
        """The number of the last message accepted from ``sender`` (0: none)."""
        return self._last.get(sender, 0)


#: The slowest rate at which a message is assumed to travel, in bytes per second: what is kept
#: gets this much longer before it is sent again. A large message cannot be acknowledged before
#: it arrived, and 512 MiB through a loaded machine takes seconds: sent again because of its own
#: transfer, it would arrive twice and take twice the memory in the receiver.
SLOWEST_TRANSFER_BYTES_PER_S = 20_000_000


class Outbox:
    """The stream of messages to one peer: numbers them, keeps them until acknowledged.

    ``resend_after``: when the oldest unacknowledged message is older than this many seconds
    (plus the time what is kept takes at :data:`SLOWEST_TRANSFER_BYTES_PER_S`), everything kept
    is sent again (the receiver drops what it already has).
    """

    def __init__(self, resend_after: float) -> None:
        self.resend_after = resend_after
        self.next_seq = 1
        self._kept: deque[tuple[int, list[Frame], int]] = deque()
        self._kept_bytes = 0
        self._oldest_since = 0.0

    def number(self) -> int:
        """The number of the next message of the stream."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def keep(self, seq: int, frames: list[Frame], now: float) -> None:
        """Keep a message sent (or that could not be sent) until it is acknowledged."""
        if not self._kept:
            self._oldest_since = now
        size = sum(map(len, frames))  # our frames are bytes or byte views: len is their size
        self._kept.append((seq, frames, size))
        self._kept_bytes += size

    def acknowledged(self, ack: int, now: float) -> None:
        """The peer accepted every message up to number ``ack``."""
        kept = self._kept
        if kept and kept[0][0] <= ack:
            while kept and kept[0][0] <= ack:
                self._kept_bytes -= kept.popleft()[2]
            self._oldest_since = now

    def overdue(self, now: float) -> bool:
        """Whether what is kept waited too long for an acknowledgement."""
        if not self._kept:
            return False
        patience = self.resend_after + self._kept_bytes / SLOWEST_TRANSFER_BYTES_PER_S
        return now - self._oldest_since > patience

    def to_resend(self, now: float) -> list[list[Frame]]:
        """Everything kept, in order, to send again now."""
        self._oldest_since = now
        return [frames for _, frames, _ in self._kept]

    def __len__(self) -> int:
        return len(self._kept)
