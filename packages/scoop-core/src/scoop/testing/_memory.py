"""An in-memory reference transport: broker and workers in the threads of one process.

It follows every rule of :mod:`scoop.transport` and passes the conformance kit, so that core's
own tests can run a broker and workers in threads without sockets, and so that a transport author
has a small, readable implementation to compare theirs with.

Shape::

    _registry: name -> _MemoryBroker            (one lock, _LOCK, guards all the state below)
    _waiting:  name -> [_MemoryWorker, ...]     (workers connected to a name nobody bound yet)

    worker.send(frames) --> broker inbox: deque of (peer, frames)  --> broker.recv()
    broker.send(peer, frames) --> that worker's inbox: deque of frames --> worker.recv()

Semantics, chosen to mirror the zmq transport where it makes sense:

* Addresses are ``memory://<host>:<port>``. ``bind`` builds the name from
  :class:`~scoop.transport.BindOptions`; port 0 picks a fresh port number that no endpoint uses,
  and :attr:`~scoop.transport.BrokerEndpoint.address` reports it. Binding a name that is bound
  raises :class:`~scoop.errors.AddressInUse`; a port outside 0..65535, an empty host or a host
  with characters that do not belong in a URL raise :class:`~scoop.errors.InvalidAddress`.
* ``connect`` to a name that no broker has bound yet is allowed, as with zmq: the worker's
  messages wait, in order, and are delivered when a broker binds that name. When the broker
  closes, its workers go back to waiting for the next broker bound to the same name.
* Frames are copied to ``bytes`` when sent (``bytes`` frames are passed as they are, being
  immutable), so a sender may reuse its buffers at once. A message has at least one frame;
  sending none raises ``ValueError``.
* A worker becomes known to the broker with its first message. Its ``peer`` is a
  :class:`MemoryPeer`. Once the worker is closed, the broker's ``send`` to it raises
  :class:`~scoop.errors.PeerUnreachable` at once; messages it sent before closing are still
  delivered (like zmq's linger).
* ``close`` wakes a thread blocked in ``recv`` on the same endpoint, which then raises
  :class:`~scoop.errors.TransportClosed`; later calls raise it too. Closing twice is allowed.
* A worker's ``wakeup`` sets a flag and notifies the endpoint's condition: the ``recv`` waiting
  on it (or the next one) finds no message and the flag, clears it and returns ``None``. A
  ``recv`` that finds a message returns it and leaves the flag for the next ``recv``.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

from scoop.errors import AddressInUse, InvalidAddress, PeerUnreachable, TransportClosed
from scoop.transport import API_VERSION, BindOptions, ConnectOptions, Frame, TransportInfo

__all__ = [
    "SCHEME",
    "MemoryBrokerEndpoint",
    "MemoryPeer",
    "MemoryWorkerEndpoint",
    "bind",
    "connect",
    "memory_transport",
]

#: URL scheme of the memory transport's addresses.
SCHEME = "memory"
_PREFIX = f"{SCHEME}://"
#: Port numbers handed out for port 0, cycling like an operating system's ephemeral range.
_EPHEMERAL_PORTS = range(32768, 65536)
#: A host as it may appear in an address: no URL delimiters, no white space.
_HOST_RE = re.compile(r"[^\s\x00-\x1f/?#@\[\]]+")

# One lock guards the registry and every endpoint's state; each endpoint has its own condition
# on it, so that a message wakes only the endpoint it is for.
_LOCK = threading.Lock()
_registry: dict[str, MemoryBrokerEndpoint] = {}
_waiting: dict[str, list[MemoryWorkerEndpoint]] = {}
_next_port = itertools.cycle(_EPHEMERAL_PORTS)
_peer_ids = itertools.count(1)


class MemoryPeer:
    """The opaque ``peer`` value under which a broker sees one memory worker."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    def __repr__(self) -> str:
        return f"MemoryPeer({self.number})"


def _name_of(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal, written as in a tcp:// URL
    return f"{host}:{port}"


def _copy(frames: Sequence[Frame]) -> list[bytes]:
    message = [frame if type(frame) is bytes else bytes(frame) for frame in frames]
    if not message:
        raise ValueError("a message has at least one frame")
    return message


class _Endpoint:
    """What both sides share: a closed flag and an inbox with its condition on ``_LOCK``."""

    def __init__(self) -> None:
        self._closed = False
        self._condition = threading.Condition(_LOCK)
        self._inbox: deque[Any] = deque()
        self._woken = False  # a wakeup() came that no recv has returned None for yet

    def _take(self, timeout: float | None) -> Any:
        """Pop the next message, waiting at most ``timeout`` seconds; None on timeout."""
        with self._condition:
            self._check_open()
            deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
            while not self._inbox:
                if self._woken:
                    self._woken = False
                    return None
                if deadline is None:
                    self._condition.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._condition.wait(remaining)
                self._check_open()  # closed by another thread while we waited
            return self._inbox.popleft()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self!r}: the endpoint is closed")


class MemoryBrokerEndpoint(_Endpoint):
    """The broker's side of the memory transport. Create it with :func:`bind`."""

    _inbox: deque[tuple[MemoryPeer, list[bytes]]]

    def __init__(self, options: BindOptions) -> None:
        if not isinstance(options.port, int) or not 0 <= options.port <= 65535:
            raise InvalidAddress(f"port must be an integer in 0..65535, not {options.port!r}")
        if not isinstance(options.host, str) or not _HOST_RE.fullmatch(options.host):
            raise InvalidAddress(f"not a host the memory transport can bind: {options.host!r}")
        super().__init__()
        self._name = ""
        self._peers: dict[MemoryPeer, MemoryWorkerEndpoint] = {}
        with _LOCK:
            if options.port:
                name = _name_of(options.host, options.port)
                if name in _registry:
                    raise AddressInUse(f"bind {_PREFIX}{name}: address already in use")
            else:
                name = self._fresh_name(options.host)
            self._name = name
            _registry[name] = self
            for worker in _waiting.pop(name, []):
                worker._attach(self)

    @staticmethod
    def _fresh_name(host: str) -> str:
        for _ in _EPHEMERAL_PORTS:
            name = _name_of(host, next(_next_port))
            if name not in _registry and name not in _waiting:
                return name
        raise AddressInUse(f"bind {_PREFIX}{_name_of(host, 0)}: no free port left")

    @property
    def address(self) -> str:
        """The address workers connect to: ``memory://<host>:<port>``."""
        return _PREFIX + self._name

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Return ``(peer, frames)`` of the next message, or ``None`` after ``timeout`` seconds."""
        message: tuple[MemoryPeer, list[Frame]] | None = self._take(timeout)
        return message

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        """Deliver one message to ``peer``; PeerUnreachable if it is unknown or closed."""
        message = _copy(frames)
        with _LOCK:
            self._check_open()
            worker = self._peers.get(peer) if isinstance(peer, MemoryPeer) else None
            if worker is None:
                raise PeerUnreachable(
                    f"{self.address}: no worker {peer!r} ever sent to this broker"
                )
            if worker._closed:
                raise PeerUnreachable(f"{self.address}: worker {peer!r} is gone")
            worker._inbox.append(message)
            worker._condition.notify()

    def close(self) -> None:
        """Close the endpoint; its connected workers wait for the next broker of its name."""
        with _LOCK:
            if self._closed:
                return
            self._closed = True
            self._inbox.clear()
            if _registry.get(self._name) is self:
                del _registry[self._name]
            for worker in self._peers.values():
                if worker._broker is self:
                    worker._detach()
            self._peers.clear()
            self._condition.notify_all()

    def _deliver(
        self, peer: MemoryPeer, worker: MemoryWorkerEndpoint, message: list[bytes]
    ) -> None:
        # Called with _LOCK held.
        self._peers[peer] = worker
        self._inbox.append((peer, message))
        self._condition.notify()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryBrokerEndpoint {self.address} {state}>"


class MemoryWorkerEndpoint(_Endpoint):
    """A worker's side of the memory transport. Create it with :func:`connect`."""

    _inbox: deque[list[bytes]]

    def __init__(self, options: ConnectOptions) -> None:
        address = options.address
        if not isinstance(address, str) or not address.startswith(_PREFIX):
            raise InvalidAddress(
                f"the memory transport serves {_PREFIX} addresses, not {address!r}"
            )
        name = address[len(_PREFIX) :]
        if not name or any(c.isspace() or c in "/?#@" for c in name):
            raise InvalidAddress(f"not a memory address: {address!r}")
        super().__init__()
        self._name = name
        self._peer = MemoryPeer(next(_peer_ids))
        self._outbox: list[list[bytes]] = []  # sent while no broker is bound to the name
        self._broker: MemoryBrokerEndpoint | None = None
        with _LOCK:
            broker = _registry.get(name)
            if broker is not None:
                self._broker = broker
            else:
                _waiting.setdefault(name, []).append(self)

    @property
    def peer(self) -> MemoryPeer:
        """The value under which the broker sees this worker."""
        return self._peer

    def send(self, frames: Sequence[Frame]) -> None:
        """Deliver one message to the broker, or queue it until a broker binds the name."""
        message = _copy(frames)
        with _LOCK:
            self._check_open()
            if self._broker is None:
                self._outbox.append(message)
            else:
                self._broker._deliver(self._peer, self, message)

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Return the frames of the next message, or ``None`` after ``timeout`` seconds."""
        frames: list[Frame] | None = self._take(timeout)
        return frames

    def close(self) -> None:
        """Close the connection; messages already sent still reach the broker."""
        with _LOCK:
            if self._closed:
                return
            self._closed = True
            self._inbox.clear()
            self._outbox.clear()
            waiters = _waiting.get(self._name)
            if waiters and self in waiters:
                waiters.remove(self)
                if not waiters:
                    del _waiting[self._name]
            self._condition.notify_all()

    def wakeup(self) -> None:
        """Make a ``recv`` in progress (or else the next one) return promptly; any thread."""
        with _LOCK:
            if not self._closed:
                self._woken = True
                self._condition.notify_all()

    def _attach(self, broker: MemoryBrokerEndpoint) -> None:
        # Called with _LOCK held, when a broker binds the name this worker waits for.
        self._broker = broker
        for message in self._outbox:
            broker._deliver(self._peer, self, message)
        self._outbox.clear()

    def _detach(self) -> None:
        # Called with _LOCK held, when this worker's broker closes.
        self._broker = None
        if not self._closed:
            _waiting.setdefault(self._name, []).append(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryWorkerEndpoint {self._peer!r} to {_PREFIX}{self._name} {state}>"


def bind(options: BindOptions) -> MemoryBrokerEndpoint:
    """Bind a broker endpoint to ``memory://<host>:<port>`` (port 0: a free one)."""
    return MemoryBrokerEndpoint(options)


def connect(options: ConnectOptions) -> MemoryWorkerEndpoint:
    """Connect a worker endpoint to ``options.address`` (``memory://<host>:<port>``)."""
    return MemoryWorkerEndpoint(options)


def memory_transport() -> TransportInfo:
    """Return the description of the in-memory transport, as a plugin's hook would."""
    return TransportInfo(
        name="memory",
        schemes=(SCHEME,),
        api_version=API_VERSION,
        bind=bind,
        connect=connect,
        description="in-process queues between threads (scoop.testing, for tests)",
    )
