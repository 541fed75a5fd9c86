"""pyzmq sockets behind the SCOOP transport interface.

Every pyzmq error is mapped to scoop.errors at this boundary (see ``_mapped_errors``).

Waking a worker's ``recv``: zmq sockets are not thread-safe, so ``wakeup`` (called from any
thread) never touches the DEALER socket. Each worker endpoint has a non-blocking socketpair
whose read end ``recv`` polls together with the DEALER in one ``zmq_poll``; ``wakeup`` writes
one byte to it, then no more until a ``recv`` has returned ``None`` for it (a flag coalesces a
burst; a lock keeps it from writing once ``close`` has closed the pair). ``recv`` returns a
message whenever one is waiting; only when none is does it drain the pair and return ``None``.
The poll list is built once, and ``zmq_poll`` on it costs less than the ``Socket.poll`` (which
builds a ``Poller`` per call) used before, so the latency-critical path got no slower.
"""

from __future__ import annotations

import contextlib
import errno
import socket as _socket
import threading
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import zmq

from scoop.errors import (
    AddressInUse,
    InvalidAddress,
    PeerUnreachable,
    TransportClosed,
    TransportError,
)
from scoop.transport import BindOptions, ConnectOptions, Frame

#: Frames at least this large are received without a copy (as memoryviews).
ZERO_COPY_MIN_BYTES = 64 * 1024
#: How long close() lets queued messages go out, in milliseconds (see _close_socket).
LINGER_MS = 2000

_context_lock = threading.Lock()
_context: zmq.Context[zmq.Socket[bytes]] | None = None
#: The sockets open in ``_context``: the last to close ends it.
_open_sockets = 0


def _new_socket(kind: int) -> zmq.Socket[bytes]:
    """A socket of the process's one context (a fresh one after fork: not fork-safe)."""
    global _context, _open_sockets
    with _context_lock:
        if _context is None or _context.closed:
            _context = zmq.Context()
            _open_sockets = 0
        socket = _context.socket(kind)
        _open_sockets += 1
        return socket


def _close_socket(socket: zmq.Socket[bytes], linger_ms: int) -> None:
    """Close ``socket``; the last one ends the context, which sends what is queued first.

    libzmq sends from its own I/O thread. Unless the context is ended, a process that exits
    takes what that thread had not sent yet with it (pyzmq leaves contexts alone at exit), and
    a large frame sent without a copy may be freed under it (libzmq aborts: "Bad address"): the
    broker's last word to the workers, that the run is over, was lost so under load. Ending it
    waits up to ``linger_ms`` for peers that do not take what is queued.
    """
    global _context, _open_sockets
    ending = None
    with _context_lock:
        socket.close(linger=linger_ms)
        if socket.context is _context:
            _open_sockets -= 1
            if _open_sockets <= 0:
                ending, _context = _context, None
    if ending is not None:
        ending.term()  # outside the lock: a new endpoint meanwhile gets a new context


@contextlib.contextmanager
def _mapped_errors(what: str) -> Iterator[None]:
    try:
        yield
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{what}: address already in use") from exc
        if exc.errno in (errno.EINVAL, errno.EPROTONOSUPPORT, errno.ENODEV, zmq.EPROTONOSUPPORT):
            raise InvalidAddress(f"{what}: {exc}") from exc
        if exc.errno == errno.EHOSTUNREACH:
            raise PeerUnreachable(f"{what}: peer unknown or gone") from exc
        if exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
            raise TransportClosed(f"{what}: the endpoint is closed") from exc
        raise TransportError(f"{what}: {exc}") from exc


def _check_port(port: object, what: str) -> None:
    # libzmq reads "tcp://host:-1" as port 65535 and accepts "tcp://host:99999" in connect.
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidAddress(f"{what}: the port must be an integer in 0..65535, not {port!r}")


def _check_connect_address(address: str) -> None:
    if not address.startswith("tcp://"):
        raise InvalidAddress(f"the zmq transport serves tcp:// addresses, not {address!r}")
    _, sep, port = address.rpartition(":")
    if sep and port.isdigit():
        _check_port(int(port), f"connect {address}")


def _tcp_url(host: str, port: int | str) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"tcp://{host}:{port}"


def _frames(parts: list[zmq.Frame]) -> list[Frame]:
    return [part.buffer if len(part) >= ZERO_COPY_MIN_BYTES else part.bytes for part in parts]


def _outgoing(frames: Sequence[Frame]) -> list[Frame]:
    # send_multipart(copy=False) only references a large buffer until the I/O thread sends it,
    # so a sender mutating its bytearray or NumPy array after send() would change (and break the
    # authentication of) the message in flight. Copy writable buffers; bytes, read-only views and
    # frames we received (zmq owns them, nobody writes them) still go without a copy.
    out: list[Frame] = []
    for frame in frames:
        if isinstance(frame, bytes) or (
            isinstance(frame, memoryview) and (frame.readonly or isinstance(frame.obj, zmq.Frame))
        ):
            out.append(frame)
        else:
            out.append(bytes(frame))
    return out


class _Endpoint:
    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self._socket = socket
        self._closed = False
        self._poll_socket = [(socket, zmq.POLLIN)]  # built once: zmq_poll is cheaper than .poll

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("the endpoint is closed")

    def _poll(self, timeout: float | None) -> bool:
        self._check_open()
        with _mapped_errors("recv"):
            wait = -1 if timeout is None else max(0, int(timeout * 1000))
            return bool(zmq.zmq_poll(self._poll_socket, wait))

    def close(self) -> None:
        self._close(LINGER_MS)

    def _close(self, linger_ms: int) -> None:
        if not self._closed:
            self._closed = True
            _close_socket(self._socket, linger_ms)


class ZmqBrokerEndpoint(_Endpoint):
    """The broker's ROUTER socket."""

    def __init__(self, options: BindOptions) -> None:
        _check_port(options.port, f"bind {options.host}")
        socket = _new_socket(zmq.ROUTER)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown peers raise instead of dropping
        socket.setsockopt(zmq.SNDHWM, 0)  # never drop or block on a slow worker
        socket.setsockopt(zmq.RCVHWM, 0)
        if ":" in options.host:
            socket.setsockopt(zmq.IPV6, 1)
        url = _tcp_url(options.host, options.port or "*")
        try:
            with _mapped_errors(f"bind {url}"):
                socket.bind(url)
        except BaseException:
            _close_socket(socket, 0)
            raise
        super().__init__(socket)
        self._address = socket.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def address(self) -> str:
        return self._address

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        if not self._poll(timeout):
            return None
        with _mapped_errors("recv"):
            parts = self._socket.recv_multipart(copy=False)
        return parts[0].bytes, _frames(parts[1:])

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        self._check_open()
        if not frames:
            raise ValueError("a message needs at least one frame")
        if not isinstance(peer, bytes):
            raise PeerUnreachable(f"not a zmq peer: {peer!r}")
        with _mapped_errors("send"):
            self._socket.send_multipart([peer, *_outgoing(frames)], copy=False)


class ZmqWorkerEndpoint(_Endpoint):
    """A worker's DEALER socket."""

    def __init__(self, options: ConnectOptions) -> None:
        _check_connect_address(options.address)
        socket = _new_socket(zmq.DEALER)
        socket.setsockopt(zmq.SNDHWM, 0)
        socket.setsockopt(zmq.RCVHWM, 0)
        if "[" in options.address:
            socket.setsockopt(zmq.IPV6, 1)
        try:
            with _mapped_errors(f"connect {options.address}"):
                socket.connect(options.address)
        except BaseException:
            _close_socket(socket, 0)
            raise
        super().__init__(socket)

        # wakeup()'s channel: a byte on _wake_w makes _wake_r readable, which recv polls.
        # _wake_lock orders wakeup() against close(): no write on a closed (or reused) socket.
        try:
            self._wake_r, self._wake_w = _socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
        except OSError as exc:
            _close_socket(socket, 0)
            raise TransportError(f"connect {options.address}: cannot make a wake pair") from exc
        self._wake_lock = threading.Lock()
        self._wake_pending = False  # a byte is (or is about to be) on its way to _wake_r
        # zmq_poll takes plain file descriptors too (its stub only names sockets).
        self._poll_items: list[tuple[Any, int]] = [
            (socket, zmq.POLLIN),
            (self._wake_r.fileno(), zmq.POLLIN),
        ]

    def recv(self, timeout: float | None) -> list[Frame] | None:
        self._check_open()
        wait = -1 if timeout is None else max(0, int(timeout * 1000))
        with _mapped_errors("recv"):
            ready = zmq.zmq_poll(self._poll_items, wait)
            if ready and ready[0][0] is self._socket:  # items come back in the order polled
                return _frames(self._socket.recv_multipart(copy=False))
        if ready:  # only the wake pair: a wakeup() came, and no message
            # Drain, then clear: cleared first, a wakeup() landing in between would write a byte
            # the drain swallows, and leave the flag set with nothing to read: every later
            # wakeup() would be ignored (seen: results a whole IDLE_CHECK_INTERVAL late). One
            # that lands after the drain, before the clear, is not lost: this recv returns.
            with contextlib.suppress(OSError):
                self._wake_r.recv(64)
            self._wake_pending = False
        return None

    def send(self, frames: Sequence[Frame]) -> None:
        self._check_open()
        if not frames:
            raise ValueError("a message needs at least one frame")
        with _mapped_errors("send"):
            self._socket.send_multipart(_outgoing(frames), copy=False)

    def wakeup(self) -> None:
        """Make a ``recv`` in progress (or else the next one) return promptly; any thread."""
        if self._wake_pending or self._closed:
            return
        with self._wake_lock:
            if self._wake_pending or self._closed:
                return
            self._wake_pending = True
            with contextlib.suppress(OSError):  # full: a byte is there anyway
                self._wake_w.send(b"\0")

    def close_discarding(self) -> None:
        """Close without waiting for what is queued: the broker ended the run, nobody reads it."""
        self._close(0)

    def _close(self, linger_ms: int) -> None:
        with self._wake_lock:
            if self._closed:
                return
            self._closed = True
            self._wake_r.close()
            self._wake_w.close()
        # Outside the lock: ending the context may wait linger_ms, and wakeup() must never wait.
        _close_socket(self._socket, linger_ms)


def bind(options: BindOptions) -> ZmqBrokerEndpoint:
    """Bind a broker endpoint."""
    return ZmqBrokerEndpoint(options)


def connect(options: ConnectOptions) -> ZmqWorkerEndpoint:
    """Connect a worker endpoint."""
    return ZmqWorkerEndpoint(options)
