"""Conformance checks: what a transport says of itself, and its addresses (scoop.testing)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from urllib.parse import urlsplit

import pytest

from scoop.errors import (
    AddressInUse,
    InvalidAddress,
    ScoopError,
)
from scoop.testing._harness import (
    STRANGER_SETTLE_S,
    STRANGERS,
    CheckSettings,
    Harness,
    _as_bytes,
    _connections_besides,
    _raises,
)
from scoop.transport import (
    API_VERSION,
    BrokerEndpoint,
    TransportInfo,
    WorkerEndpoint,
)


class AddressChecks(CheckSettings):
    """The description and the addresses: binding, refusing, strangers on the port."""

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


__all__ = ["AddressChecks"]
