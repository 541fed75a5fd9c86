"""How the nng endpoints close: what was sent goes out, and a gone peer is not waited for."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from scoop.transport import BindOptions, ConnectOptions
from scoop_nng import _transport, _wire
from scoop_nng._transport import NngBrokerEndpoint, NngWorkerEndpoint

#: A close that waits for nobody takes milliseconds; LINGER_S is 2 s.
QUICK = 0.5
DEADLINE = 5.0


@pytest.fixture
def opened() -> Iterator[list[NngBrokerEndpoint | NngWorkerEndpoint]]:
    endpoints: list[NngBrokerEndpoint | NngWorkerEndpoint] = []
    yield endpoints
    for endpoint in reversed(endpoints):
        endpoint.close()


def _network(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> tuple[NngBrokerEndpoint, NngWorkerEndpoint, object]:
    broker = _transport.bind(BindOptions())
    opened.append(broker)
    worker = _transport.connect(ConnectOptions(broker.address))
    opened.append(worker)
    worker.send([b"hello"])
    received = broker.recv(DEADLINE)
    assert received is not None and [bytes(f) for f in received[1]] == [b"hello"]
    return broker, worker, received[0]


def _timed_close(endpoint: NngBrokerEndpoint | NngWorkerEndpoint) -> float:
    start = time.monotonic()
    endpoint.close()
    return time.monotonic() - start


def test_linger_is_the_limit_these_tests_stay_under() -> None:
    assert _wire.LINGER_S > 3 * QUICK


def test_worker_closes_at_once_when_its_broker_is_gone(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    """Its last messages cannot go anywhere: close must not wait LINGER_S for them."""
    broker, worker, peer = _network(opened)
    broker.send(peer, [b"shutdown"])
    assert worker.recv(DEADLINE) == [b"shutdown"]
    broker.close()
    # Wait (bounded) until the worker's nng noticed, so that the check is not a race with it.
    assert worker._broker_lost.wait(DEADLINE), "the worker never saw its broker's connection go"
    worker.send([b"a result nobody will read"])
    elapsed = _timed_close(worker)
    assert elapsed < QUICK, f"close took {elapsed:.3f} s with the broker gone"


@pytest.mark.parametrize("attempt", range(3))
def test_worker_closes_at_once_right_after_its_broker(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint], attempt: int
) -> None:
    """However the close races with nng noticing the broker go, it ends quickly."""
    broker, worker, _ = _network(opened)
    worker.send([b"last result"])
    broker.close()
    elapsed = _timed_close(worker)
    assert elapsed < QUICK, f"close took {elapsed:.3f} s with the broker gone"


def test_worker_stops_lingering_when_its_broker_goes(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    """A close waiting for messages to go ends as soon as the broker's connection does."""
    broker, worker, _ = _network(opened)
    for number in range(20):  # more than the connection holds: the broker does not read
        worker.send([b"%d" % number, bytes(2_000_000)])
    closing = threading.Thread(target=worker.close, name="test-close", daemon=True)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive(), "close did not wait for the queued messages to go"
    broker.close()
    gone = time.monotonic()
    closing.join(DEADLINE)
    assert not closing.is_alive()
    elapsed = time.monotonic() - gone
    assert elapsed < QUICK, f"close went on for {elapsed:.3f} s after the broker went"


def test_worker_close_delivers_everything_to_a_live_broker(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    broker, worker, peer = _network(opened)
    count = 2000
    for number in range(count):
        worker.send([b"%d" % number, bytes(1000)])
    worker.close()
    got = []
    for _ in range(count):
        received = broker.recv(DEADLINE)
        assert received is not None, f"the broker got {len(got)} of {count} messages"
        assert received[0] == peer
        got.append(int(bytes(received[1][0])))
    assert got == list(range(count))


def test_broker_close_delivers_what_it_sent(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    """The broker's last messages (the SHUTDOWN that ends a run) reach a worker that reads."""
    broker, worker, peer = _network(opened)
    got: list[bytes] = []

    def read() -> None:
        while (frames := worker.recv(DEADLINE)) is not None:
            got.append(bytes(frames[0]))
            if got[-1] == b"shutdown":
                return

    reader = threading.Thread(target=read, name="test-reader", daemon=True)
    reader.start()
    big = bytes(2_000_000)  # enough that nng has not written it all when close comes
    for number in range(20):
        broker.send(peer, [b"%d" % number, big])
    broker.send(peer, [b"shutdown"])
    broker.close()
    reader.join(DEADLINE * 2)
    assert not reader.is_alive()
    assert got == [b"%d" % number for number in range(20)] + [b"shutdown"]


def test_broker_closes_at_once_when_its_workers_are_gone(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    """What a worker that left did not read is not waited for."""
    broker, worker, peer = _network(opened)
    for number in range(20):  # more than the connection holds: the worker does not read
        broker.send(peer, [b"%d" % number, bytes(2_000_000)])
    worker.close()
    # The broker learns that the worker left through a pipe-removed callback: wait for it.
    deadline = time.monotonic() + DEADLINE
    while not broker._gone and time.monotonic() < deadline:
        assert broker.recv(0.01) is None
    assert broker._gone, "the broker never saw the worker's connection go"
    elapsed = _timed_close(broker)
    assert elapsed < QUICK, f"close took {elapsed:.3f} s with its only worker gone"


def test_wakeup_ends_the_wait_and_the_next_wait_works(
    opened: list[NngBrokerEndpoint | NngWorkerEndpoint],
) -> None:
    """After a wakeup ended a receive (its wake message swallowed), the next one gets the next
    message: wake messages never stand in for data, nor hold it back."""
    broker, worker, peer = _network(opened)
    results: list[object] = []
    for number in range(50):
        results.clear()
        thread = threading.Thread(target=lambda: results.append(worker.recv(DEADLINE)))
        thread.start()
        worker.wakeup()
        thread.join(DEADLINE)
        assert results == [None]
        broker.send(peer, [b"%d" % number])
        assert worker.recv(DEADLINE) == [b"%d" % number]
