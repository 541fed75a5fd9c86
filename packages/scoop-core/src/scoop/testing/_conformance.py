"""The transport conformance kit: the rules of :mod:`scoop.transport`, as pytest tests.

Use it from a test module of your transport's package::

    from scoop.testing import TransportConformance
    from my_transport._plugin import scoop_transports

    class TestMyTransport(TransportConformance):
        transport_info = scoop_transports()[0]

pytest then runs every ``test_*`` method below against your transport. Each method takes the
``harness`` fixture, a :class:`Harness` that opens endpoints for one check and closes all of them
afterwards, pass or fail. Every endpoint the harness hands out is wrapped so that any exception
that is not a :class:`~scoop.errors.ScoopError` (a native ``zmq.ZMQError``, ``OSError``...) fails
the check with a message naming the call, and every ``recv`` result is checked for shape.

Checks wait on messages with ``recv`` timeouts and on their helper threads with bounded joins,
never with sleeps, and give up after :attr:`TransportConformance.message_deadline` seconds.
Without pytest's runner, :func:`run_conformance` runs the same checks and returns a
:class:`ConformanceReport`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import pytest

from scoop.errors import (
    AddressInUse,
    InvalidAddress,
    PeerUnreachable,
    ScoopError,
    TransportClosed,
    TransportError,
)
from scoop.transport import (
    API_VERSION,
    BindOptions,
    BrokerEndpoint,
    ConnectOptions,
    Frame,
    TransportInfo,
    WorkerEndpoint,
)

__all__ = ["CheckResult", "ConformanceReport", "Harness", "TransportConformance", "run_conformance"]

_T = TypeVar("_T")
#: Peers that connect and send without being answered, in the check that they cost nothing.
STRANGERS = 20
#: How long that check watches for connections opened in the background: an observation
#: window for something that must not happen, not a wait for something to happen.
STRANGER_SETTLE_S = 0.5
_FRAME_TYPES = (bytes, bytearray, memoryview)


def _connections_besides(port: int) -> int:
    """TCP connections of this process (Linux) that do not involve ``port`` at either end.

    Connections of workers to a broker bound on ``port`` involve it at both ends (the worker's
    remote port, the broker's local one); a connection the broker opens towards a worker does
    not.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            next(handle)  # the header
            for line in handle:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
                # 01 ESTABLISHED, 02 SYN_SENT, 03 SYN_RECV
                if inode in inodes and state in ("01", "02", "03") and port not in ports:
                    count += 1
    return count


def _as_bytes(frames: Sequence[Frame]) -> list[bytes]:
    return [bytes(frame) for frame in frames]


def _guard(what: str, call: Callable[[], _T]) -> _T:
    """Run ``call``; turn an exception that is not a ScoopError into a failed check."""
    try:
        return call()
    except ScoopError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__module__}.{type(exc).__qualname__}: {exc!r}; a "
            "transport maps native errors to scoop.errors classes at its boundary"
        ) from exc


@contextlib.contextmanager
def _raises(error: type[ScoopError], what: str) -> Iterator[None]:
    """Like ``pytest.raises``, with a failure message naming what was tried."""
    try:
        yield
    except error:
        return
    pytest.fail(f"{what} did not raise {error.__module__}.{error.__qualname__}")


def _check_frames(what: str, frames: object) -> list[Frame]:
    assert isinstance(frames, list), f"{what} returned frames as {type(frames)!r}, not a list"
    for frame in frames:
        assert isinstance(frame, _FRAME_TYPES), f"{what} returned a frame of type {type(frame)!r}"
    return frames


class CheckedBroker:
    """A broker endpoint whose calls are checked for native errors and result shapes."""

    def __init__(self, endpoint: BrokerEndpoint) -> None:
        self.raw = endpoint

    @property
    def address(self) -> str:
        """The wrapped endpoint's address."""
        address = _guard("BrokerEndpoint.address", lambda: self.raw.address)
        assert isinstance(address, str), f"BrokerEndpoint.address is {address!r}, not a str"
        return address

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Call the endpoint's ``recv`` and check what it returns."""
        result = _guard("BrokerEndpoint.recv", lambda: self.raw.recv(timeout))
        if result is None:
            return None
        assert isinstance(result, tuple), f"BrokerEndpoint.recv returned {type(result)!r}"
        assert len(result) == 2, "BrokerEndpoint.recv returned a tuple that is not (peer, frames)"
        peer, frames = result
        hash(peer)  # the peer must be hashable: the broker keys its tables with it
        return peer, _check_frames("BrokerEndpoint.recv", frames)

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        """Call the endpoint's ``send``."""
        _guard("BrokerEndpoint.send", lambda: self.raw.send(peer, frames))

    def close(self) -> None:
        """Call the endpoint's ``close``."""
        _guard("BrokerEndpoint.close", self.raw.close)


class CheckedWorker:
    """A worker endpoint whose calls are checked for native errors and result shapes."""

    def __init__(self, endpoint: WorkerEndpoint) -> None:
        self.raw = endpoint

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Call the endpoint's ``recv`` and check what it returns."""
        result = _guard("WorkerEndpoint.recv", lambda: self.raw.recv(timeout))
        return None if result is None else _check_frames("WorkerEndpoint.recv", result)

    def send(self, frames: Sequence[Frame]) -> None:
        """Call the endpoint's ``send``."""
        _guard("WorkerEndpoint.send", lambda: self.raw.send(frames))

    def close(self) -> None:
        """Call the endpoint's ``close``."""
        _guard("WorkerEndpoint.close", self.raw.close)

    def wakeup(self) -> None:
        """Call the endpoint's ``wakeup`` (from any thread); it must return None, never raise."""
        wakeup = getattr(self.raw, "wakeup", None)
        assert callable(wakeup), "the worker endpoint has no wakeup() method"
        try:
            result = wakeup()
        except BaseException as exc:
            raise AssertionError(
                f"WorkerEndpoint.wakeup raised {type(exc).__module__}.{type(exc).__qualname__}: "
                f"{exc!r}; wakeup never raises (not even after close)"
            ) from exc
        assert result is None, f"WorkerEndpoint.wakeup returned {result!r}"


class Harness:
    """Opens the endpoints of one check and closes every one of them at the end."""

    def __init__(
        self,
        info: TransportInfo,
        bind_options: BindOptions,
        connect_options: Callable[[str], ConnectOptions],
        deadline: float,
    ) -> None:
        self.info = info
        self.bind_options = bind_options
        self.connect_options = connect_options
        #: Seconds to wait for a message that should come before the check fails.
        self.deadline = deadline
        self._opened: list[CheckedBroker | CheckedWorker] = []

    def bind(self, options: BindOptions | None = None) -> CheckedBroker:
        """Bind a broker endpoint (with the suite's bind options unless ``options``)."""
        opts = self.bind_options if options is None else options
        broker = CheckedBroker(_guard(f"bind({opts!r})", lambda: self.info.bind(opts)))
        self._opened.append(broker)
        return broker

    def connect(self, address: str) -> CheckedWorker:
        """Connect a worker endpoint to ``address``."""
        opts = self.connect_options(address)
        worker = CheckedWorker(_guard(f"connect({opts!r})", lambda: self.info.connect(opts)))
        self._opened.append(worker)
        return worker

    def network(self, workers: int) -> tuple[CheckedBroker, list[CheckedWorker]]:
        """Bind a broker and connect ``workers`` workers to it."""
        broker = self.bind()
        return broker, [self.connect(broker.address) for _ in range(workers)]

    def broker_recv(self, broker: CheckedBroker) -> tuple[Hashable, list[bytes]]:
        """Return the next message the broker gets, as bytes; fail after the deadline."""
        result = broker.recv(self.deadline)
        assert result is not None, f"the broker got no message within {self.deadline} s"
        return result[0], _as_bytes(result[1])

    def worker_recv(self, worker: CheckedWorker) -> list[bytes]:
        """Return the next message the worker gets, as bytes; fail after the deadline."""
        frames = worker.recv(self.deadline)
        assert frames is not None, f"the worker got no message within {self.deadline} s"
        return _as_bytes(frames)

    def introduce(self, broker: CheckedBroker, worker: CheckedWorker, tag: bytes) -> Hashable:
        """Have ``worker`` send ``[tag]`` and return the peer the broker sees it as."""
        worker.send([tag])
        peer, frames = self.broker_recv(broker)
        assert frames == [tag], f"the broker got {frames!r}, expected {[tag]!r}"
        return peer

    def close_all(self) -> None:
        """Close every endpoint opened, newest first, ignoring scoop errors."""
        while self._opened:
            endpoint = self._opened.pop()
            with contextlib.suppress(ScoopError):
                endpoint.raw.close()


class TransportConformance:
    """Base class of a transport's conformance tests: subclass it in a ``Test*`` class.

    Set :attr:`transport_info` (or override the ``transport`` fixture), and adjust the other
    class attributes to your transport if the defaults do not fit.
    """

    #: The transport under test, as its plugin hook returns it.
    transport_info: ClassVar[TransportInfo | None] = None
    #: True for a transport that binds ports: port 0 must report the real port, and binding
    #: that exact address again must raise AddressInUse.
    network: ClassVar[bool] = True
    #: True when the broker's address is a TCP host and port that any TCP client can open (the
    #: check that stranger bytes there are dropped connects to it with a plain socket).
    listens_on_tcp: ClassVar[bool] = True
    #: How the suite binds its brokers.
    bind_options: ClassVar[BindOptions] = BindOptions()
    #: Addresses ``connect`` must refuse with InvalidAddress.
    invalid_addresses: ClassVar[tuple[str, ...]] = (
        "",
        "no scheme at all",
        "no-such-scheme://127.0.0.1:1",
    )
    #: Bind options ``bind`` must refuse with InvalidAddress.
    invalid_bind_options: ClassVar[tuple[BindOptions, ...]] = (
        BindOptions(port=-1),
        BindOptions(port=65536),
        BindOptions(host=""),
    )
    #: Odd input that must either work or raise a scoop error, never a native one.
    odd_addresses: ClassVar[tuple[str, ...]] = (
        "tcp://",
        "tcp://[::1",
        "tcp://127.0.0.1:not-a-port",
        "%%%",
        "://",
        "\x00",
    )
    odd_hosts: ClassVar[tuple[str, ...]] = ("bad host", "\x00", "[::1", "no.such.host.invalid")
    #: Size of the large frame sent by the large message check.
    large_frame_size: ClassVar[int] = 16 * 1024 * 1024
    #: Seconds to wait for a message that should come before failing.
    message_deadline: ClassVar[float] = 5.0
    #: How late ``recv(timeout)`` may return after its timeout, in seconds.
    timeout_slack: ClassVar[float] = 1.0
    #: How soon a ``recv`` must return after a ``wakeup()``, in seconds.
    wakeup_slack: ClassVar[float] = 1.0

    def connect_options(self, address: str) -> ConnectOptions:
        """Return the options the suite's workers connect with (override to add ``extra``)."""
        return ConnectOptions(address=address)

    @pytest.fixture
    def transport(self) -> TransportInfo:
        """Return the transport under test: :attr:`transport_info` unless overridden."""
        if self.transport_info is None:
            pytest.fail(f"{type(self).__name__}: set transport_info or override `transport`")
        return self.transport_info

    @pytest.fixture
    def harness(self, transport: TransportInfo) -> Iterator[Harness]:
        """Yield a :class:`Harness` for one check, and close its endpoints afterwards."""
        harness = self._harness(transport)
        try:
            yield harness
        finally:
            harness.close_all()

    def _harness(self, transport: TransportInfo) -> Harness:
        return Harness(transport, self.bind_options, self.connect_options, self.message_deadline)

    # -- the description -------------------------------------------------------------------

    def test_transport_info(self, harness: Harness) -> None:
        """The TransportInfo is well formed and implements this core's API version."""
        info = harness.info
        assert isinstance(info, TransportInfo)
        assert isinstance(info.name, str) and info.name, "name must be a non-empty str"
        assert info.schemes and all(isinstance(s, str) and s for s in info.schemes)
        assert info.api_version == API_VERSION, (
            f"api_version is {info.api_version}, this core implements {API_VERSION}"
        )
        assert callable(info.bind) and callable(info.connect)

    def test_endpoints_implement_the_protocols(self, harness: Harness) -> None:
        """Endpoints satisfy the BrokerEndpoint and WorkerEndpoint protocols."""
        broker, (worker,) = harness.network(1)
        assert isinstance(broker.raw, BrokerEndpoint)
        assert isinstance(worker.raw, WorkerEndpoint)

    # -- addresses ---------------------------------------------------------------------------

    def test_bind_reports_real_address(self, harness: Harness) -> None:
        """The address uses one of the transport's schemes and, with port 0, the real port."""
        broker = harness.bind(dataclasses.replace(harness.bind_options, port=0))
        address = broker.address
        scheme = urlsplit(address).scheme
        assert scheme in harness.info.schemes, (
            f"address {address!r} does not use one of the schemes {harness.info.schemes}"
        )
        if self.network:
            port = urlsplit(address).port
            assert port, f"bound with port 0, address {address!r} does not name the real port"

    def test_address_in_use(self, harness: Harness) -> None:
        """Binding the exact address of a bound endpoint raises AddressInUse."""
        if not self.network:
            pytest.skip("not a network transport")
        broker = harness.bind(dataclasses.replace(harness.bind_options, port=0))
        port = urlsplit(broker.address).port
        assert port, f"cannot read the port of {broker.address!r}"
        with _raises(AddressInUse, f"binding {broker.address!r} a second time"):
            harness.bind(dataclasses.replace(harness.bind_options, port=port))
        # The first endpoint still works.
        worker = harness.connect(broker.address)
        harness.introduce(broker, worker, b"still here")

    def test_stranger_bytes_on_the_port_are_dropped(self, harness: Harness) -> None:
        """Bytes from a plain TCP client on the broker's port never make ``recv`` raise.

        Anyone who reaches the port can send anything: a stray scanner, a wrong client, an
        attacker. The transport drops what is not its own protocol (or hands it to core as a
        message from a peer of its own, which core then drops); the broker's workers are served
        as before.
        """
        if not self.listens_on_tcp:
            pytest.skip("the broker does not listen on a TCP port")
        broker = harness.bind()
        worker = harness.connect(broker.address)
        kept = harness.introduce(broker, worker, b"before")
        parts = urlsplit(broker.address)
        assert parts.hostname and parts.port, f"cannot read host and port of {broker.address!r}"
        garbage = [
            b"GET / HTTP/1.0\r\n\r\n",
            b"\xff" * 64,  # a huge length in most length-prefixed framings
            b"\x00" * 64,
            bytes(range(256)) * 8,
        ]
        for payload in garbage:
            with socket.create_connection((parts.hostname, parts.port), timeout=5) as stranger:
                stranger.sendall(payload)
            broker.recv(0.05)  # whatever it returns, it must not raise
        worker.send([b"after"])
        deadline = time.monotonic() + harness.deadline
        while True:
            result = broker.recv(max(0.0, deadline - time.monotonic()))
            assert result is not None, "the broker's worker was not served after stranger bytes"
            peer, frames = result
            if peer == kept:
                assert _as_bytes(frames) == [b"after"]
                break
        broker.send(kept, [b"still served"])
        assert harness.worker_recv(worker) == [b"still served"]

    def test_a_peer_never_answered_costs_no_connection(self, harness: Harness) -> None:
        """Peers the broker receives from but never sends to make it open no connection.

        Anyone who reaches the port can connect and say what a worker says first; core answers
        only a worker that authenticated itself. Whatever a transport sets up to answer a peer
        (nng's broker dials back to each worker) must wait for that first answer, or a flood of
        unauthenticated handshakes makes the broker open as many connections.
        """
        if not self.listens_on_tcp or not os.path.isdir("/proc/self/net"):
            pytest.skip("reads this process's TCP connections in /proc (Linux, TCP transports)")
        broker = harness.bind()
        port = urlsplit(broker.address).port
        assert port, f"cannot read the port of {broker.address!r}"
        strangers = [harness.connect(broker.address) for _ in range(STRANGERS)]
        before = _connections_besides(port)
        for stranger in strangers:
            stranger.send([b"not authenticated"])
        received = 0
        deadline = time.monotonic() + harness.deadline
        while received < STRANGERS and time.monotonic() < deadline:
            if broker.recv(max(0.0, deadline - time.monotonic())) is not None:
                received += 1
        assert received == STRANGERS, f"the broker received {received} of {STRANGERS} messages"
        # Nothing may happen here, so watch a moment for what a transport does in the background.
        time.sleep(STRANGER_SETTLE_S)
        opened = _connections_besides(port) - before
        assert opened <= 0, (
            f"receiving from {STRANGERS} peers it never answered made the broker open {opened} "
            "connections: set up what answering needs on the first send to a peer"
        )

    def test_two_brokers_get_different_addresses(self, harness: Harness) -> None:
        """Two binds with port 0 get two addresses, each reaching its own broker."""
        first = harness.bind(dataclasses.replace(harness.bind_options, port=0))
        second = harness.bind(dataclasses.replace(harness.bind_options, port=0))
        assert first.address != second.address
        harness.introduce(first, harness.connect(first.address), b"first")
        harness.introduce(second, harness.connect(second.address), b"second")
        assert first.recv(0) is None and second.recv(0) is None

    def test_invalid_address(self, harness: Harness) -> None:
        """Malformed addresses and bind options raise InvalidAddress."""
        for address in self.invalid_addresses:
            with _raises(InvalidAddress, f"connect to {address!r}"):
                harness.connect(address)
        for options in self.invalid_bind_options:
            with _raises(InvalidAddress, f"bind with {options!r}"):
                harness.bind(options)

    def test_errors_are_scoop_errors(self, harness: Harness) -> None:
        """Odd addresses and hosts either work or raise a scoop error, never a native one."""
        for address in self.odd_addresses:
            with contextlib.suppress(ScoopError):
                harness.connect(address)
        for host in self.odd_hosts:
            with contextlib.suppress(ScoopError):
                harness.bind(dataclasses.replace(harness.bind_options, host=host, port=0))

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


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check run by :func:`run_conformance`."""

    #: The check's method name (``test_round_trip``...).
    name: str
    #: ``"passed"``, ``"failed"`` or ``"skipped"``.
    outcome: str
    #: The traceback of a failure, or the reason of a skip.
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ConformanceReport:
    """What :func:`run_conformance` found."""

    #: The name of the transport checked.
    transport: str
    #: One result per check, in the order run.
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(result.outcome != "failed" for result in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The failed checks."""
        return tuple(result for result in self.results if result.outcome == "failed")

    def __str__(self) -> str:
        counts = {o: sum(r.outcome == o for r in self.results) for o in ("passed", "failed")}
        lines = [
            f"transport {self.transport!r}: {counts['passed']} passed, "
            f"{counts['failed']} failed, "
            f"{len(self.results) - sum(counts.values())} skipped"
        ]
        lines += [f"FAILED {r.name}\n{r.detail}" for r in self.failures]
        return "\n".join(lines)


def run_conformance(
    info: TransportInfo, *, only: Sequence[str] | None = None, **settings: Any
) -> ConformanceReport:
    """Run every conformance check on ``info`` without pytest's runner; return the report.

    ``settings`` override :class:`TransportConformance` class attributes (``network=False``,
    ``bind_options=BindOptions(host="::1")``...); ``only`` restricts the run to the checks named.
    pytest must be importable (the checks use its ``raises`` and ``skip``).
    """
    unknown = set(settings) - set(vars(TransportConformance))
    if unknown:
        raise TypeError(f"unknown conformance settings: {', '.join(sorted(unknown))}")
    suite_class = type("RunConformance", (TransportConformance,), {"transport_info": info})
    for key, value in settings.items():
        setattr(suite_class, key, value)
    suite = suite_class()
    names = [name for name in dir(TransportConformance) if name.startswith("test_")]
    if only is not None:
        names = [name for name in names if name in only]
    results: list[CheckResult] = []
    for name in names:
        harness = suite._harness(info)
        try:
            getattr(suite, name)(harness)
        except pytest.skip.Exception as exc:
            results.append(CheckResult(name, "skipped", str(exc)))
        except (Exception, pytest.fail.Exception):
            results.append(CheckResult(name, "failed", traceback.format_exc()))
        else:
            results.append(CheckResult(name, "passed"))
        finally:
            harness.close_all()
    return ConformanceReport(info.name, tuple(results))
