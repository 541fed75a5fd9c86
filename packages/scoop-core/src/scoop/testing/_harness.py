"""The conformance kit's harness: endpoints wrapped so that every call is checked, for one check.

Every endpoint the :class:`Harness` hands out is wrapped (:class:`CheckedBroker`,
:class:`CheckedWorker`) so that any exception that is not a :class:`~scoop.errors.ScoopError`
fails the check with a message naming the call, and every ``recv`` result is checked for shape;
the harness closes all of them after the check, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import ClassVar, TypeVar

import pytest

from scoop.errors import (
    ScoopError,
)
from scoop.transport import (
    BindOptions,
    BrokerEndpoint,
    ConnectOptions,
    Frame,
    TransportInfo,
    WorkerEndpoint,
)

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


class CheckSettings:
    """The settings of TransportConformance that its checks read (set there, or in a subclass)."""

    network: ClassVar[bool]
    listens_on_tcp: ClassVar[bool]
    bind_options: ClassVar[BindOptions]
    invalid_addresses: ClassVar[tuple[str, ...]]
    invalid_bind_options: ClassVar[tuple[BindOptions, ...]]
    odd_addresses: ClassVar[tuple[str, ...]]
    odd_hosts: ClassVar[tuple[str, ...]]
    large_frame_size: ClassVar[int]
    message_deadline: ClassVar[float]
    timeout_slack: ClassVar[float]
    wakeup_slack: ClassVar[float]


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


__all__ = ["CheckSettings", "CheckedBroker", "CheckedWorker", "Harness"]
