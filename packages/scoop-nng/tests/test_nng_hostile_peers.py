"""Other nng programs on the ports of the nng transport: their messages are dropped, not raised.

Plain TCP garbage is refused by nng's own handshake (the conformance kit checks that). These
tests go one step further: a real nng Push0 socket, which passes the handshake, sends messages
that are not in the transport's framing, to the broker's port and to the port a worker listens on
for the broker.
"""

from __future__ import annotations

import pynng
import pytest

from scoop.transport import BindOptions, ConnectOptions
from scoop_nng._transport import bind, connect

NOT_OUR_FRAMING = [b"", b"x", b"\xff" * 64, b"\x01\x02\x00\x00\x00" + b"\xff" * 16]


@pytest.fixture
def pair():
    broker = bind(BindOptions())
    worker = connect(ConnectOptions(address=broker.address))
    try:
        worker.send([b"hello"])
        received = broker.recv(5.0)
        assert received is not None
        yield broker, worker, received[0]
    finally:
        worker.close()
        broker.close()


@pytest.fixture
def stranger():
    # Kept open until the test ends: nng drops what a closed socket had queued.
    with pynng.Push0(send_timeout=5000) as socket:
        yield socket


def _send_from(stranger, url: str, payloads: list[bytes]) -> None:
    stranger.dial(url, block=True)
    for payload in payloads:
        stranger.send(payload)


@pytest.mark.timeout(60)
def test_broker_drops_messages_not_in_its_framing(pair, stranger) -> None:
    broker, worker, peer = pair
    _send_from(stranger, broker.address, NOT_OUR_FRAMING)
    worker.send([b"after the stranger"])
    received = broker.recv(5.0)
    assert received is not None and received[0] == peer
    assert [bytes(f) for f in received[1]] == [b"after the stranger"]
    assert broker.recv(0.2) is None  # whatever of the stranger's was still queued is dropped


@pytest.mark.timeout(60)
def test_worker_drops_messages_not_in_its_framing(pair, stranger) -> None:
    broker, worker, peer = pair
    (listener,) = worker._recv_socket.listeners  # the port the broker dials back to
    _send_from(stranger, listener.url, NOT_OUR_FRAMING)
    assert worker.recv(0.2) is None
    broker.send(peer, [b"from the broker"])
    frames = worker.recv(5.0)
    assert frames is not None and [bytes(f) for f in frames] == [b"from the broker"]
