"""Conformance checks: closing, lost peers, threads, and waking a receive (scoop.testing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from scoop.errors import (
    PeerUnreachable,
    TransportClosed,
    TransportError,
)
from scoop.testing._harness import (
    CheckedWorker,
    CheckSettings,
    Harness,
    _as_bytes,
    _raises,
)


class ClosingChecks(CheckSettings):
    """Closing and what it delivers, unknown and lost peers, threads, ``wakeup()``."""

    def _assert_times_out(self, what: str, recv: Callable[[float], object], timeout: float) -> None:
        # MessageChecks' (before this class in TransportConformance's bases).
        raise NotImplementedError

    # -- closing -----------------------------------------------------------------------------

    def test_close(self, harness: Harness) -> None:
        """After ``close``, send and recv raise TransportClosed; closing twice is allowed."""
        broker, (worker,) = harness.network(1)
        peer = harness.introduce(broker, worker, b"hello")
        worker.close()
        worker.close()
        with _raises(TransportClosed, "worker.send([b'late']) after close"):
            worker.send([b"late"])
        with _raises(TransportClosed, "worker.recv(0) after close"):
            worker.recv(0)
        with _raises(TransportClosed, "worker.recv(None) after close"):
            worker.recv(None)
        broker.close()
        broker.close()
        with _raises(TransportClosed, "broker.send(peer, [b'late']) after close"):
            broker.send(peer, [b"late"])
        with _raises(TransportClosed, "broker.recv(0) after close"):
            broker.recv(0)
        with _raises(TransportClosed, "broker.recv(None) after close"):
            broker.recv(None)

    def test_close_delivers_what_was_sent(self, harness: Harness) -> None:
        """Messages a worker sent before closing still reach the broker."""
        broker, (worker,) = harness.network(1)
        harness.introduce(broker, worker, b"hello")
        worker.send([b"last words"])
        worker.close()
        _, frames = harness.broker_recv(broker)
        assert frames == [b"last words"]

    def test_broker_close_delivers_what_was_sent(self, harness: Harness) -> None:
        """Messages the broker sent before closing still reach the worker (the run's SHUTDOWN)."""
        broker, (worker,) = harness.network(1)
        peer = harness.introduce(broker, worker, b"hello")
        for i in range(20):
            broker.send(peer, [b"before close %d" % i, bytes(64 * 1024)])
        broker.send(peer, [b"shutdown"])
        broker.close()
        for i in range(20):
            assert harness.worker_recv(worker)[0] == b"before close %d" % i
        assert harness.worker_recv(worker) == [b"shutdown"]

    def test_broker_closed_worker_keeps_its_errors_mapped(self, harness: Harness) -> None:
        """With its broker closed, a worker's send and recv work or raise a transport error."""
        broker, (worker,) = harness.network(1)
        harness.introduce(broker, worker, b"hello")
        broker.close()
        calls: list[Callable[[], object]] = [
            lambda: worker.send([b"anyone?"]),
            lambda: worker.recv(0.05),
        ]
        for call in calls:
            try:
                call()
            except TransportError as exc:
                assert not isinstance(exc, TransportClosed), (
                    "TransportClosed means this endpoint was closed, not its peer"
                )

    # -- peers -------------------------------------------------------------------------------

    def test_unknown_peer(self, harness: Harness) -> None:
        """Sending to a peer the broker never heard from raises PeerUnreachable."""
        broker, (worker,) = harness.network(1)
        harness.introduce(broker, worker, b"hello")
        for stranger in (b"never-seen-peer", "never-seen-peer", 123456789, (1, 2), None):
            with _raises(PeerUnreachable, f"send to the unknown peer {stranger!r}"):
                broker.send(stranger, [b"to nobody"])
        # A peer of another broker is a stranger here too.
        other, (other_worker,) = harness.network(1)
        foreign = harness.introduce(other, other_worker, b"elsewhere")
        with _raises(PeerUnreachable, "send to a peer of another broker"):
            broker.send(foreign, [b"wrong broker"])

    def test_peer_loss(self, harness: Harness) -> None:
        """A closed worker becomes unreachable; the broker keeps serving the others."""
        broker, (leaving, staying) = harness.network(2)
        gone = harness.introduce(broker, leaving, b"leaving")
        kept = harness.introduce(broker, staying, b"staying")
        leaving.close()
        deadline = time.monotonic() + harness.deadline
        while True:
            try:
                broker.send(gone, [b"are you there?"])
            except PeerUnreachable:
                break
            assert time.monotonic() < deadline, (
                f"sending to a closed worker did not raise PeerUnreachable in {harness.deadline} s"
            )
            assert broker.recv(0.01) is None  # wait a little, as the broker's loop would
        broker.send(kept, [b"still serving"])
        assert harness.worker_recv(staying) == [b"still serving"]
        assert harness.introduce(broker, staying, b"and back") == kept

    # -- threads -----------------------------------------------------------------------------

    def test_broker_in_another_thread(self, harness: Harness) -> None:
        """A broker served by another thread answers workers in this one."""
        broker, workers = harness.network(4)
        rounds = 50
        failures: list[BaseException] = []

        def serve() -> None:
            try:
                for _ in range(rounds * len(workers)):
                    peer, frames = harness.broker_recv(broker)
                    broker.send(peer, [b"echo", *frames])
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=serve, name="conformance-broker", daemon=True)
        thread.start()
        try:
            for number in range(rounds):
                for index, worker in enumerate(workers):
                    worker.send([b"%d:%d" % (index, number)])
                for index, worker in enumerate(workers):
                    assert harness.worker_recv(worker) == [b"echo", b"%d:%d" % (index, number)]
        finally:
            thread.join(harness.deadline * 2)
        assert not thread.is_alive(), "the broker thread did not finish"
        if failures:
            raise failures[0]

    # -- waking a worker's recv --------------------------------------------------------------

    def _assert_returns_promptly(self, what: str, worker: CheckedWorker) -> None:
        start = time.monotonic()
        frames = worker.recv(10)
        elapsed = time.monotonic() - start
        assert frames is None, f"{what}: recv(10) returned {frames!r} with nothing sent"
        assert elapsed <= self.wakeup_slack, (
            f"{what}: recv(10) returned after {elapsed:.3f} s, not at once"
        )

    def test_wakeup_ends_a_blocked_recv(self, harness: Harness) -> None:
        """``wakeup()`` from another thread makes a ``recv(10)`` blocked in this one return None."""
        broker, (worker,) = harness.network(1)
        peer = harness.introduce(broker, worker, b"hello")
        outcome: list[object] = []

        def wait() -> None:
            try:
                outcome.append(worker.recv(10))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=wait, name="conformance-recv", daemon=True)
        thread.start()
        # Nothing was sent: recv(10) must still be waiting (and so be blocked when woken).
        thread.join(0.2)
        assert thread.is_alive(), f"recv(10) returned {outcome!r} before any wakeup"
        start = time.monotonic()
        worker.wakeup()
        thread.join(self.wakeup_slack)
        elapsed = time.monotonic() - start
        if thread.is_alive():  # unblock the thread before failing, so cleanup can close
            broker.send(peer, [b"unblock"])
            thread.join(harness.deadline)
            pytest.fail(
                f"recv(10) in another thread was still blocked {elapsed:.3f} s after wakeup()"
            )
        assert outcome == [None], f"recv(10) woken by wakeup() gave {outcome[0]!r}, not None"
        # The endpoint works as before.
        broker.send(peer, [b"after the wakeup"])
        assert harness.worker_recv(worker) == [b"after the wakeup"]

    def test_wakeup_before_recv_and_coalescing(self, harness: Harness) -> None:
        """A wakeup before ``recv`` ends the next one at once; wakeups in a row end one only."""
        broker, (worker,) = harness.network(1)
        harness.introduce(broker, worker, b"hello")
        worker.wakeup()
        self._assert_returns_promptly("after one wakeup()", worker)
        # That wakeup is used up: the next recv waits for its whole timeout.
        self._assert_times_out("WorkerEndpoint.recv, its wakeup used up,", worker.recv, 0.2)
        for _ in range(5):
            worker.wakeup()
        self._assert_returns_promptly("after five wakeup() in a row", worker)
        self._assert_times_out("WorkerEndpoint.recv, five wakeups used up,", worker.recv, 0.2)

    def test_wakeup_loses_no_message(self, harness: Harness) -> None:
        """Messages waiting or arriving while another thread calls ``wakeup()`` all arrive."""
        broker, (worker,) = harness.network(1)
        peer = harness.introduce(broker, worker, b"hello")
        count, queued = 300, 100
        # The first messages are waiting before the wakeups start: recv must return each one.
        for number in range(queued):
            broker.send(peer, [b"%d" % number, b"x" * (number % 7)])
        done = threading.Event()
        failures: list[BaseException] = []

        def wake() -> None:
            try:
                while not done.is_set():
                    for _ in range(20):
                        worker.wakeup()
                    done.wait(0.0002)  # a short pause lets wakeups land at every moment
            except BaseException as exc:
                failures.append(exc)

        def send() -> None:  # the broker is used by this thread only, until it is joined
            try:
                for number in range(queued, count):
                    broker.send(peer, [b"%d" % number, b"x" * (number % 7)])
                    if number % 10 == 9:
                        done.wait(0.001)  # bursts, so that some messages find recv waiting
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=wake, name="conformance-waker", daemon=True),
            threading.Thread(target=send, name="conformance-sender", daemon=True),
        ]
        for thread in threads:
            thread.start()
        got: list[int] = []
        try:
            deadline = time.monotonic() + harness.deadline * 2
            while len(got) < count and time.monotonic() < deadline and not failures:
                frames = worker.recv(1.0)
                if frames is not None:
                    tag, padding = _as_bytes(frames)
                    assert padding == b"x" * (int(tag) % 7), "a message changed on the way"
                    got.append(int(tag))
        finally:
            done.set()
            for thread in threads:
                thread.join(harness.deadline)
        assert not any(thread.is_alive() for thread in threads), "a helper thread did not end"
        if failures:
            raise failures[0]
        missing = sorted(set(range(count)) - set(got))
        assert got == list(range(count)), (
            f"with wakeups racing, the worker got {len(got)} of {count} messages (missing: "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}; in order: {got == sorted(got)})"
        )

    def test_wakeup_after_close(self, harness: Harness) -> None:
        """``wakeup()`` during and after ``close`` does nothing; ``recv`` still raises."""
        broker, (worker,) = harness.network(1)
        harness.introduce(broker, worker, b"hello")
        closed = threading.Event()
        failures: list[BaseException] = []

        def wake() -> None:
            try:
                while True:  # until close has happened, and once more after
                    last = closed.is_set()
                    worker.wakeup()
                    if last:
                        return
                    closed.wait(0.0001)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=wake, name="conformance-waker", daemon=True)
        thread.start()
        worker.wakeup()  # pending when close comes: recv must still raise TransportClosed
        worker.close()
        closed.set()
        thread.join(harness.deadline)
        assert not thread.is_alive(), "wakeup() did not return after close"
        if failures:
            raise failures[0]
        worker.wakeup()
        worker.wakeup()
        with _raises(TransportClosed, "worker.recv(0) after wakeup() and close"):
            worker.recv(0)
        with _raises(TransportClosed, "worker.recv(10) after wakeup() and close"):
            worker.recv(10)


__all__ = ["ClosingChecks"]
