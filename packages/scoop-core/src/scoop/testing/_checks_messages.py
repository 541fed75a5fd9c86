"""Conformance checks: messages, their frames and order, and receive timeouts (scoop.testing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

import pytest

from scoop.testing._harness import (
    CheckSettings,
    Harness,
    _as_bytes,
)
from scoop.transport import (
    Frame,
)


class MessageChecks(CheckSettings):
    """Messages: round trips, order per peer, many peers, large and empty frames, timeouts."""

    # -- messages ----------------------------------------------------------------------------

    def test_round_trip(self, harness: Harness) -> None:
        """A worker's message reaches the broker, whose reply reaches the worker."""
        broker, (worker,) = harness.network(1)
        worker.send([b"ping", b"data"])
        peer, frames = harness.broker_recv(broker)
        assert frames == [b"ping", b"data"]
        broker.send(peer, [b"pong"])
        assert harness.worker_recv(worker) == [b"pong"]

    def test_a_message_of_no_frame_is_refused(self, harness: Harness) -> None:
        """``send([])`` raises ValueError on both sides (a caller's bug), and nothing is sent."""
        broker, (worker,) = harness.network(1)
        peer = harness.introduce(broker, worker, b"hello")
        with pytest.raises(ValueError):
            worker.raw.send([])
        with pytest.raises(ValueError):
            broker.raw.send(peer, [])
        worker.send([b"after"])
        assert harness.broker_recv(broker) == (peer, [b"after"])
        broker.send(peer, [b"and back"])
        assert harness.worker_recv(worker) == [b"and back"]

    def test_peer_is_stable(self, harness: Harness) -> None:
        """Every message of one worker comes with an equal peer value."""
        broker, (worker,) = harness.network(1)
        first = harness.introduce(broker, worker, b"one")
        second = harness.introduce(broker, worker, b"two")
        assert first == second and hash(first) == hash(second)

    def test_order_per_peer(self, harness: Harness) -> None:
        """Messages arrive in the order sent, per peer, in both directions."""
        count = 500
        broker, workers = harness.network(2)
        for number in range(count):
            for index, worker in enumerate(workers):
                worker.send([b"%d" % index, b"%d" % number])
        received: dict[int, list[int]] = {0: [], 1: []}
        peers: dict[int, Hashable] = {}
        for _ in range(2 * count):
            peer, (tag, count_tag) = harness.broker_recv(broker)
            peers.setdefault(int(tag), peer)
            assert peers[int(tag)] == peer, "one worker's messages came with two peers"
            received[int(tag)].append(int(count_tag))
        for index in (0, 1):
            assert received[index] == list(range(count)), f"worker {index}'s order was lost"
        for number in range(count):
            for index in (0, 1):
                broker.send(peers[index], [b"%d" % number])
        for worker in workers:
            got = [int(harness.worker_recv(worker)[0]) for _ in range(count)]
            assert got == list(range(count)), "the broker's messages to a worker lost order"
        assert all(worker.recv(0) is None for worker in workers)

    def test_many_peers(self, harness: Harness) -> None:
        """Eight workers each get their own replies and nobody else's."""
        broker, workers = harness.network(8)
        for index, worker in enumerate(workers):
            worker.send([b"%d" % index])
        peers: dict[int, Hashable] = {}
        for _ in workers:
            peer, (tag,) = harness.broker_recv(broker)
            peers[int(tag)] = peer
        assert sorted(peers) == list(range(8))
        assert len(set(peers.values())) == 8, "two workers came with the same peer value"
        for round_ in range(3):
            for index, peer in peers.items():
                broker.send(peer, [b"%d" % index, b"%d" % round_])
        for index, worker in enumerate(workers):
            for round_ in range(3):
                assert harness.worker_recv(worker) == [b"%d" % index, b"%d" % round_]
            assert worker.recv(0) is None, f"worker {index} got a message meant for another"

    def test_large_multiframe_message(self, harness: Harness) -> None:
        """A large frame among small ones, as bytes, bytearray and memoryview, arrives intact."""
        broker, (worker,) = harness.network(1)
        large = bytearray(self.large_frame_size)
        for offset in range(0, len(large), 4096):
            large[offset : offset + 8] = offset.to_bytes(8, "little")
        large[-1] = 0xA5
        frames: list[Frame] = [
            b"header",
            memoryview(large),
            b"",
            bytearray(b"small bytearray"),
            memoryview(b"small memoryview"),
            bytes(range(256)) * 300,
        ]
        expected = _as_bytes(frames)
        worker.send(frames)
        peer, got = harness.broker_recv(broker)
        assert len(got) == len(expected), f"sent {len(expected)} frames, got {len(got)}"
        for index, (frame, want) in enumerate(zip(got, expected, strict=True)):
            assert frame == want, f"frame {index} changed on the way (length {len(frame)})"
        assert broker.recv(0) is None, "one message arrived as two"
        broker.send(peer, frames)
        got = harness.worker_recv(worker)
        assert got == expected, "the broker's large message changed on the way"

    def test_received_frames_can_be_sent_on(self, harness: Harness) -> None:
        """Frames as ``recv`` returns them (bytes or memoryview) are valid input to ``send``."""
        broker, (worker,) = harness.network(1)
        payload = [b"a", bytes(200_000), b"z"]
        worker.send(payload)
        result = broker.recv(harness.deadline)
        assert result is not None, "the broker got no message"
        peer, frames = result
        broker.send(peer, frames)
        assert harness.worker_recv(worker) == payload

    def test_sender_may_reuse_buffers(self, harness: Harness) -> None:
        """Once ``send`` returns, changing the buffers sent does not change the message."""
        broker, (worker,) = harness.network(1)
        size = 4 * 1024 * 1024
        first, second = bytearray(b"w" * size), bytearray(b"v" * size)
        for _ in range(5):  # a transport that shares the buffer loses this race nearly always
            worker.send([first, memoryview(second), b"end"])
            first[:4] = second[-4:] = b"XXXX"  # at once, before the message can have gone
            peer, frames = harness.broker_recv(broker)
            first[:4], second[-4:] = b"wwww", b"vvvv"
            assert frames[0][:4] == b"wwww" and frames[1][-4:] == b"vvvv", (
                "a buffer changed after the worker's send changed the message"
            )
            broker.send(peer, [memoryview(first), b"end"])
            first[:4] = b"ZZZZ"
            got = harness.worker_recv(worker)
            first[:4] = b"wwww"
            assert got[0][:4] == b"wwww", "a buffer changed after the broker's send changed it"

    def test_empty_frames(self, harness: Harness) -> None:
        """Empty frames are delivered as frames, alone or among others."""
        broker, (worker,) = harness.network(1)
        messages = [[b""], [b"", b""], [b"a", b"", b"b"], [b"", b"x", b""]]
        for message in messages:
            worker.send(message)
        peer: Hashable = None
        for message in messages:
            peer, frames = harness.broker_recv(broker)
            assert frames == message
        for message in messages:
            broker.send(peer, message)
        for message in messages:
            assert harness.worker_recv(worker) == message

    # -- timeouts ----------------------------------------------------------------------------

    def _assert_times_out(self, what: str, recv: Callable[[float], object], timeout: float) -> None:
        start = time.monotonic()
        result = recv(timeout)
        elapsed = time.monotonic() - start
        assert result is None, f"{what}({timeout}) returned {result!r} with nothing sent"
        assert elapsed >= timeout * 0.75, f"{what}({timeout}) returned after {elapsed:.3f} s"
        assert elapsed <= timeout + self.timeout_slack, (
            f"{what}({timeout}) returned after {elapsed:.3f} s"
        )

    def test_recv_timeout(self, harness: Harness) -> None:
        """``recv(timeout)`` returns None after about ``timeout`` s; ``recv(0)`` polls."""
        broker, (worker,) = harness.network(1)
        self._assert_times_out("BrokerEndpoint.recv", broker.recv, 0.2)
        self._assert_times_out("WorkerEndpoint.recv", worker.recv, 0.2)
        self._assert_times_out("BrokerEndpoint.recv", broker.recv, 0)
        self._assert_times_out("WorkerEndpoint.recv", worker.recv, 0)
        # recv(0) returns a message once it is there.
        worker.send([b"poll me"])
        deadline = time.monotonic() + harness.deadline
        result = broker.recv(0)
        while result is None and time.monotonic() < deadline:
            result = broker.recv(0)
        assert result is not None, "recv(0) never returned the message sent"
        assert _as_bytes(result[1]) == [b"poll me"]
        broker.send(result[0], [b"back"])
        frames = worker.recv(0)
        while frames is None and time.monotonic() < deadline:
            frames = worker.recv(0)
        assert frames is not None and _as_bytes(frames) == [b"back"]

    def test_recv_none_returns_waiting_message(self, harness: Harness) -> None:
        """``recv(None)`` returns a message that is on its way."""
        broker, (worker, nudger) = harness.network(2)
        got: list[tuple[Hashable, list[Frame]] | None] = []
        worker.send([b"wait for me"])
        thread = threading.Thread(target=lambda: got.append(broker.recv(None)), daemon=True)
        thread.start()
        thread.join(harness.deadline)
        if thread.is_alive():  # unblock the thread before failing, so cleanup can close
            nudger.send([b"nudge"])
            thread.join(harness.deadline)
            pytest.fail("BrokerEndpoint.recv(None) did not return a message sent before")
        result = got[0] if got else None
        assert result is not None, "BrokerEndpoint.recv(None) returned None"
        assert _as_bytes(result[1]) == [b"wait for me"]


__all__ = ["MessageChecks"]
