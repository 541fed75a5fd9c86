"""The broker's streams: one numbered, acknowledged stream of messages to each peer.

The broker sends on them (:class:`StreamSending`): results held for a submitter go first, and a
peer out of reach keeps what it should get until it comes back. Each message the broker sends a
worker (or a supervisor) carries the next number of that worker's stream and acknowledges the
worker's last message accepted; it is kept until the worker acknowledges it (see
:class:`scoop._sequence.Outbox`). The broker acknowledges a worker that sent something without
getting anything back within :data:`ACK_DELAY` with a HEARTBEAT of its own, so that the worker
can forget what it keeps; and it sends again what a worker left unacknowledged for
:data:`RESEND_AFTER`, or at once when the worker's connection came back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Hashable, Sequence

from scoop._protocol import BROKER_SENDER, Codec, Entry, Kind, Message
from scoop._sequence import Outbox, SequenceCheck
from scoop.errors import PeerUnreachable
from scoop.transport import BrokerEndpoint, Frame

logger = logging.getLogger("scoop")

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


#: Kinds whose ``arg`` tells the receiving worker how many workers are idle.
_TELLS_DEMAND = frozenset({Kind.TASKS, Kind.RESULTS, Kind.DEMAND})


class StreamSending:
    """The broker's sends on its streams (mixed into scoop._broker.Broker).

    First of the broker's bases: the other parts declare ``_send`` and use it.
    """

    endpoint: BrokerEndpoint
    streams: Streams
    workers: dict[int, Hashable]
    supervisors: dict[int, Hashable]
    hungry: dict[int, int]
    uninformed: dict[int, None]
    results_out: dict[int, list[Entry]]
    told_to_stop: set[int]
    _held_for: int

    def _forget(self, index: int) -> None:
        raise NotImplementedError

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        """Send the next message of the stream to worker (or supervisor) ``index``.

        Results held for it go first, so that its stream keeps the order things happened in.
        """
        if self.results_out:
            held = self.results_out.pop(index, None)
            if held is not None:
                self._send_now(index, Kind.RESULTS, self._idle_but(index), held)
        self._send_now(index, kind, arg, entries)

    def _idle_but(self, index: int) -> int:
        """The number of idle workers other than ``index``."""
        return len(self.hungry) - (index in self.hungry)

    def _flush_results(self) -> None:
        """Send the results held for each submitter, one message each."""
        held, self.results_out = self.results_out, {}
        self._held_for = 0
        for origin, entries in held.items():
            self._send_now(origin, Kind.RESULTS, self._idle_but(origin), entries)

    def _send_now(
        self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()
    ) -> None:
        peer = self._peer_of(index)
        if peer is None:
            logger.debug("broker has no worker %d to send to", index)
            return
        if kind in _TELLS_DEMAND:  # their arg is the demand the worker will act on
            if arg:
                self.uninformed.pop(index, None)
            else:
                self.uninformed[index] = None
        frames = self.streams.encode(index, kind, arg, entries)
        try:
            self.endpoint.send(peer, frames)
        except PeerUnreachable as exc:
            if index in self.supervisors:
                del self.supervisors[index]
            elif index == 0 or index in self.told_to_stop:
                # A worker that has just left (the root after its SHUTDOWN).
                logger.info("broker lost worker %d: %s", index, exc)
                self._forget(index)
            else:
                # Its connection broke: what it should get is kept and goes out again when it
                # comes back; if it does not, it is lost (silence, or the launcher's report).
                logger.info("broker cannot reach worker %d for now: %s", index, exc)

    def _peer_of(self, index: int) -> Hashable | None:
        """Where to send to worker (or supervisor) ``index``; None if nowhere."""
        peer = self.workers.get(index)
        return peer if peer is not None else self.supervisors.get(index)

    def _resend(self, index: int) -> None:
        peer = self._peer_of(index)
        kept = self.streams.to_resend(index)
        if peer is None or not kept:
            return
        logger.info("broker sends %d unacknowledged messages to %d again", len(kept), index)
        with contextlib.suppress(PeerUnreachable):
            for frames in kept:
                self.endpoint.send(peer, frames)
