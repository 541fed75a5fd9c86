"""The broker's streams: one numbered, acknowledged stream of messages to each peer.

Each message the broker sends a worker (or a supervisor) carries the next number of that
worker's stream and acknowledges the worker's last message accepted; it is kept until the
worker acknowledges it (see :class:`scoop._protocol.Outbox`). The broker acknowledges a worker
that sent something without getting anything back within :data:`ACK_DELAY` with a HEARTBEAT of
its own, so that the worker can forget what it keeps; and it sends again what a worker left
unacknowledged for :data:`RESEND_AFTER`, or at once when the worker's connection came back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from scoop._protocol import BROKER_SENDER, Codec, Entry, Kind, Message
from scoop._sequence import Outbox, SequenceCheck
from scoop.transport import Frame

#: How long a worker's messages may wait for the broker's acknowledgement, in seconds.
ACK_DELAY = 0.5
#: After how long without an acknowledgement the broker sends a stream's messages again.
RESEND_AFTER = 5.0


class Streams:
    """The broker's outgoing streams and the numbers of the incoming ones."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        #: Checks every incoming stream (replays, and gaps left by a broken connection).
        self.sequence = SequenceCheck()
        self._outboxes: dict[int, Outbox] = {}
        self._acked: dict[int, int] = {}
        self._last_sent: dict[int, float] = {}

    def open(self, index: int) -> None:
        """Start the stream to a peer that joined."""
        self._outboxes[index] = Outbox(RESEND_AFTER)
        self._acked[index] = 0
        self._last_sent[index] = time.monotonic()

    def close(self, index: int) -> None:
        """Forget the stream to a peer that is gone (and what it kept)."""
        self._outboxes.pop(index, None)
        self._acked.pop(index, None)
        self._last_sent.pop(index, None)

    def encode(
        self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()
    ) -> list[Frame]:
        """The next message of the stream to ``index``, kept until acknowledged."""
        outbox = self._outboxes.get(index)
        ack = self.sequence.last(index)
        if outbox is None:  # not a member: nothing to keep
            return self.codec.encode_entries(kind, BROKER_SENDER, arg, entries, seq=1, ack=ack)
        seq = outbox.number()
        frames = self.codec.encode_entries(kind, BROKER_SENDER, arg, entries, seq=seq, ack=ack)
        now = time.monotonic()
        outbox.keep(seq, frames, now)
        self._acked[index] = ack
        self._last_sent[index] = now
        return frames

    def received(self, index: int, message: Message) -> None:
        """A message of ``index`` was accepted: what it acknowledges may be forgotten."""
        outbox = self._outboxes.get(index)
        if outbox is not None:
            outbox.acknowledged(message.ack, time.monotonic())

    def owing(self, now: float) -> list[int]:
        """Peers whose messages wait for an acknowledgement for ACK_DELAY already."""
        last = self.sequence.last
        limit = now - ACK_DELAY
        return [
            index
            for index, acked in self._acked.items()
            if last(index) > acked and self._last_sent[index] < limit
        ]

    def overdue(self, now: float) -> list[int]:
        """Peers whose stream waited for acknowledgement for RESEND_AFTER."""
        return [index for index, outbox in self._outboxes.items() if outbox.overdue(now)]

    def to_resend(self, index: int) -> list[list[Frame]]:
        """Everything kept for ``index``, to send again now."""
        outbox = self._outboxes.get(index)
        return outbox.to_resend(time.monotonic()) if outbox is not None else []


__all__ = ["ACK_DELAY", "RESEND_AFTER", "Streams"]
