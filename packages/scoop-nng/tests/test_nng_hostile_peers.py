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


def _tcp_listeners(worker):
    """The worker's listeners others can reach (its inproc wake listener is not one)."""
    return [lis for lis in worker._recv_socket.listeners if lis.url.startswith("tcp://")]


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
    (listener,) = _tcp_listeners(worker)  # the port the broker dials back to
    _send_from(stranger, listener.url, NOT_OUR_FRAMING)
    assert worker.recv(0.2) is None
    broker.send(peer, [b"from the broker"])
    frames = worker.recv(5.0)
    assert frames is not None and [bytes(f) for f in frames] == [b"from the broker"]


def _framed(frames: list[bytes]) -> bytes:
    """The body of a transport DATA message, as a stranger who read our code would send it."""
    from scoop_nng._wire import _DATA, _encode, ffi, lib

    msg = _encode(_DATA, frames)
    try:
        return ffi.unpack(ffi.cast("char *", lib.nng_msg_body(msg)), lib.nng_msg_len(msg))
    finally:
        lib.nng_msg_free(msg)


@pytest.mark.timeout(60)
def test_worker_joins_despite_a_forged_message_waiting_for_it(stranger) -> None:
    import os
    import threading

    from scoop._broker import Broker
    from scoop._protocol import Codec, local_versions
    from scoop._worker import WorkerScheduler

    secret = os.urandom(32)
    broker_endpoint = bind(BindOptions())
    worker_endpoint = connect(ConnectOptions(address=broker_endpoint.address))
    broker = Broker(broker_endpoint, Codec(secret), "nng", size=1)
    serving = threading.Thread(target=broker.serve, daemon=True)
    try:
        # Well framed for the transport, but not a SCOOP message: it reaches the worker first.
        (listener,) = _tcp_listeners(worker_endpoint)
        _send_from(stranger, listener.url, [_framed([os.urandom(64)])])
        assert worker_endpoint.recv(5.0) is not None  # it did arrive; send one more for join
        stranger.send(_framed([os.urandom(64)]))
        serving.start()
        worker = WorkerScheduler(worker_endpoint, Codec(secret), 0, 1)
        worker.join(local_versions("nng"), timeout=10)
        assert worker.dropped == 1
    finally:
        broker.request_termination(0)
        serving.join(10)
        worker_endpoint.close()
        broker_endpoint.close()


@pytest.mark.timeout(60)
def test_broker_dials_back_only_to_the_address_a_hello_came_from(stranger) -> None:
    """A HELLO is not authenticated: the host it names is ignored, so that nobody can make the
    broker open connections to a third machine. Only its port is used, on the sender's address,
    and only once the broker answers that peer (core answers only authenticated workers)."""
    import threading

    from scoop_nng._wire import _DATA, _HELLO, _encode, ffi, lib

    def hello_body(host: bytes, port: int) -> bytes:
        return body(_HELLO, [host, b"%d" % port])

    def body(kind: int, frames: list[bytes]) -> bytes:
        msg = _encode(kind, frames)
        try:
            return ffi.unpack(ffi.cast("char *", lib.nng_msg_body(msg)), lib.nng_msg_len(msg))
        finally:
            lib.nng_msg_free(msg)

    def listener(host: str) -> tuple[pynng.Pull0, threading.Event, int]:
        sock = pynng.Pull0()
        dialed = threading.Event()
        sock.add_post_pipe_connect_cb(lambda _pipe: dialed.set())
        port = sock.listen(f"tcp://{host}:0").local_address.port
        import socket as _socket

        return sock, dialed, _socket.ntohs(port)

    broker = bind(BindOptions())
    third, third_dialed, third_port = listener("127.0.0.2")  # "another machine"
    own, own_dialed, own_port = listener("127.0.0.1")  # the sender's own address
    try:
        stranger.dial(broker.address, block=True)
        stranger.send(hello_body(b"127.0.0.2", third_port))
        assert broker.recv(0.5) is None
        assert not third_dialed.is_set()
        with pynng.Push0(send_timeout=5000) as honest:
            honest.dial(broker.address, block=True)
            honest.send(hello_body(b"ignored", own_port))
            honest.send(body(_DATA, [b"first words"]))
            received = broker.recv(5)
            assert received is not None, "the HELLO's connection was not served"
            assert not own_dialed.wait(0.2), "the broker dialed back before it answered"
            broker.send(received[0], [b"an answer"])
            assert own_dialed.wait(5), "the broker did not dial back to the sender's address"
        assert not third_dialed.is_set()
    finally:
        third.close()
        own.close()
        broker.close()
