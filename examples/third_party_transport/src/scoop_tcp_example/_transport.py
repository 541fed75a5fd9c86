"""Plain TCP sockets of the standard library behind the SCOOP transport interface.

Wire format of one message (all integers big-endian)::

    !Q   length of the body
    body !I frame count N (at least 1), N x !Q frame lengths, then the N frames back to back

Threads: every endpoint owns one I/O thread that does all the socket work. It accepts workers
(broker), reads and parses messages into an inbox queue, and writes the output that ``send``
queued. ``send`` only queues and wakes the thread through a socketpair, so it never blocks;
``recv(timeout)`` waits on the inbox with the caller's timeout. A worker's ``wakeup()`` (any
thread) puts a wake marker in that inbox, at most one until a ``recv`` takes it and returns
``None``; messages queued before the marker are returned first.

Choices the interface leaves to a transport:

* ``connect`` connects at once: with no broker listening it raises ``PeerUnreachable``.
* A peer is a :class:`TcpPeer`, one per accepted connection, equal only to itself; it is known
  from the moment the broker accepts the connection until the connection ends.
* A worker whose broker went away gets no more messages (``recv`` returns ``None``, as with
  zmq); its ``send`` raises ``PeerUnreachable``.
* ``close`` sends what was queued (waiting up to :data:`LINGER_SECONDS`), then closes the
  connection in order (half-close, wait for the other side's end) so that no data is reset away;
  a thread blocked in ``recv`` on the endpoint raises ``TransportClosed``.
* A connection that sends bytes which are not messages of this format is closed and logged.

Every native error (``OSError``, ``socket.gaierror``...) is mapped to :mod:`scoop.errors` here.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import logging
import queue
import selectors
import socket
import struct
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from typing import Generic, TypeVar, cast
from urllib.parse import urlsplit

from scoop.errors import (
    AddressInUse,
    InvalidAddress,
    PeerUnreachable,
    TransportClosed,
    TransportError,
)
from scoop.transport import BindOptions, ConnectOptions, Frame

__all__ = ["TcpBrokerEndpoint", "TcpPeer", "TcpWorkerEndpoint", "bind", "connect"]

logger = logging.getLogger("scoop_tcp_example")

#: How long ``close`` lets queued messages go out, in seconds.
LINGER_SECONDS = 2.0
#: Default time limit of ``connect``, in seconds (``ConnectOptions.extra["connect_timeout"]``).
CONNECT_TIMEOUT = 10.0
#: Received frames at least this large are returned as read-only memoryviews, without a copy.
ZERO_COPY_MIN_BYTES = 64 * 1024
#: Bytes read per ``recv`` system call.
READ_CHUNK = 256 * 1024
#: Largest body accepted: a sanity bound against a stream that is not ours.
MAX_BODY = 1 << 40
#: Buffers handed to one ``sendmsg`` call.
IOV_MAX = 512

_LENGTH = struct.Struct("!Q")
_COUNT = struct.Struct("!I")
_LISTENER = "listener"
_WAKE = "wake"

_T = TypeVar("_T")


class _Received(bytearray):
    """The body of a received message; the frames handed out are read-only views of it."""

    __slots__ = ()


class _Garbage(Exception):
    """A connection sent bytes that are not messages of this transport."""


class _Closed:
    """Inbox sentinel: the endpoint was closed."""


class _Woken:
    """Inbox sentinel: ``wakeup()`` was called."""


class _Failure:
    """Inbox sentinel: the I/O thread failed with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_CLOSED = _Closed()
_WOKEN = _Woken()


class TcpPeer:
    """The opaque peer value of one accepted connection: equal only to itself."""

    __slots__ = ("number", "remote")
    _numbers = itertools.count(1)

    def __init__(self, remote: str) -> None:
        self.number = next(TcpPeer._numbers)
        self.remote = remote

    def __repr__(self) -> str:
        return f"<tcp-example peer {self.number} from {self.remote}>"


@contextlib.contextmanager
def _mapped_errors(what: str) -> Iterator[None]:
    """Turn the socket module's errors into scoop.errors, the native one chained."""
    try:
        yield
    except socket.gaierror as exc:
        raise InvalidAddress(f"{what}: {exc.strerror}") from exc
    except (ValueError, OverflowError) as exc:  # embedded NUL, bad IDNA name, port overflow
        raise InvalidAddress(f"{what}: {exc}") from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{what}: address already in use") from exc
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL):
            raise InvalidAddress(f"{what}: {exc.strerror}") from exc
        if isinstance(exc, ConnectionError | TimeoutError) or exc.errno in (
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
        ):
            raise PeerUnreachable(f"{what}: {exc.strerror or exc}") from exc
        raise TransportError(f"{what}: {exc}") from exc


# -- framing ----------------------------------------------------------------------------------


def _encode(frames: Sequence[Frame]) -> list[bytes | memoryview]:
    """The buffers of one message: its header, then the frames.

    Writable buffers are copied, so that the sender may reuse them once ``send`` returns;
    ``bytes`` and frames this transport received (nobody writes them) go without a copy.
    """
    if not frames:
        raise ValueError("a message needs at least one frame")
    views: list[memoryview] = []
    for frame in frames:
        view = memoryview(frame)
        if not (view.c_contiguous and isinstance(view.obj, bytes | _Received)):
            view = memoryview(view.tobytes())
        elif view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        views.append(view)
    lengths = [view.nbytes for view in views]
    body = _COUNT.size + _LENGTH.size * len(views) + sum(lengths)
    header = struct.pack(f"!QI{len(views)}Q", body, len(views), *lengths)
    return [header, *views]


def _decode(body: _Received) -> list[Frame]:
    """Split a message body into its frames."""
    (count,) = _COUNT.unpack_from(body)
    start = _COUNT.size + _LENGTH.size * count
    if count < 1 or start > len(body):
        raise _Garbage(f"a message of {count} frames in {len(body)} bytes")
    lengths = struct.unpack_from(f"!{count}Q", body, _COUNT.size)
    if sum(lengths) != len(body) - start:
        raise _Garbage("frame lengths that do not add up to the message length")
    view = memoryview(body).toreadonly()
    frames: list[Frame] = []
    for length in lengths:
        frame = view[start : start + length]
        frames.append(frame if length >= ZERO_COPY_MIN_BYTES else frame.tobytes())
        start += length
    return frames


class _Reader:
    """Parses the byte stream of one connection into messages."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._body: _Received | None = None
        self._size = 0

    @property
    def between_messages(self) -> bool:
        """True when no message is partly read."""
        return self._body is None and not self._head

    def feed(self, data: bytes, messages: list[list[Frame]]) -> None:
        """Append the messages completed by ``data`` to ``messages``; raise _Garbage if bad."""
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._body is None:
                take = min(_LENGTH.size - len(self._head), end - pos)
                self._head += view[pos : pos + take]
                pos += take
                if len(self._head) < _LENGTH.size:
                    return
                (size,) = _LENGTH.unpack(self._head)
                self._head.clear()
                if not _COUNT.size + _LENGTH.size <= size <= MAX_BODY:
                    raise _Garbage(f"a message body of {size} bytes")
                self._body, self._size = _Received(), size
            take = min(self._size - len(self._body), end - pos)
            self._body += view[pos : pos + take]
            pos += take
            if len(self._body) == self._size:
                body, self._body = self._body, None
                messages.append(_decode(body))


class _Connection:
    """One TCP connection: its socket, parser and queued output."""

    __slots__ = ("alive", "out", "peer", "reader", "sock", "writing")

    def __init__(self, sock: socket.socket, peer: TcpPeer | None) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = _Reader()
        #: Buffers waiting to be written (guarded by the endpoint's lock).
        self.out: collections.deque[bytes | memoryview] = collections.deque()
        #: True while the I/O thread watches the socket for writing (guarded by the lock).
        self.writing = False
        self.alive = True


def _prepare(sock: socket.socket) -> None:
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"tcp://{host}:{port}"


# -- the endpoint machinery shared by both sides ----------------------------------------------


class _Endpoint(Generic[_T]):
    """An I/O thread with a selector, an inbox of received items, and the closing logic."""

    def __init__(self, role: str) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._lock = threading.Lock()
        self._dirty: list[_Connection] = []  # connections with new output (guarded)
        self._wake_pending = False  # a wake byte is on its way (guarded)
        self._closed = False
        self._woken = False  # a _WOKEN marker is in the inbox (guarded)
        self._garbage_connections = 0  # connections closed for sending what is not ours
        self._inbox: queue.SimpleQueue[_T | _Closed | _Woken | _Failure] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"scoop-tcp-example-{role}", daemon=True
        )

    # -- called by the user's threads -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("the endpoint is closed")

    def _take(self, timeout: float | None) -> _T | None:
        self._check_open()
        try:
            if timeout is None:
                item = self._inbox.get()
            elif timeout <= 0:
                item = self._inbox.get_nowait()
            else:
                item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Woken):
            with self._lock:
                self._woken = False  # the next wakeup() puts a new marker
            return None
        if isinstance(item, _Closed):
            self._inbox.put(item)  # for any other thread waiting
            raise TransportClosed("the endpoint was closed while waiting")
        if isinstance(item, _Failure):
            self._inbox.put(item)
            raise TransportError(f"the I/O thread failed: {item.error!r}") from item.error
        return item

    def _queue(self, conn: _Connection, buffers: list[bytes | memoryview]) -> bool:
        """Queue output on ``conn`` (lock held); return True if the I/O thread needs waking."""
        conn.out.extend(buffers)
        if conn.writing:
            return False
        conn.writing = True
        self._dirty.append(conn)
        wake, self._wake_pending = not self._wake_pending, True
        return wake

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._wake_w.send(b"\0")

    def close(self) -> None:
        """Send what is queued (up to LINGER_SECONDS), then close. Closing twice is allowed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._inbox.put(_CLOSED)
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(LINGER_SECONDS + 1.0)

    # -- the I/O thread -------------------------------------------------------------------------

    def _connections(self) -> list[_Connection]:
        raise NotImplementedError

    def _accept(self) -> None:
        raise NotImplementedError

    def _deliver(self, conn: _Connection, frames: list[Frame]) -> None:
        raise NotImplementedError

    def _forget(self, conn: _Connection, reason: str) -> None:
        """Drop ``conn`` from the endpoint's tables (lock held)."""
        raise NotImplementedError

    def _teardown_extra(self) -> None:
        """Close what the subclass owns besides the connections."""

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, mask in self._selector.select():
                    if key.data == _WAKE:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif key.data == _LISTENER:
                        self._accept()
                    else:
                        conn = cast(_Connection, key.data)
                        if conn.alive and mask & selectors.EVENT_READ:
                            self._read(conn)
                        if conn.alive and mask & selectors.EVENT_WRITE:
                            self._writable(conn)
                self._watch_dirty()
            self._linger()
        except BaseException as exc:
            logger.exception("scoop-tcp-example: the I/O thread failed")
            self._inbox.put(_Failure(exc))
        finally:
            self._teardown()

    def _watch_dirty(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, []
            self._wake_pending = False
        for conn in dirty:
            if conn.alive:
                events = selectors.EVENT_READ | selectors.EVENT_WRITE
                self._selector.modify(conn.sock, events, conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(conn, f"connection broke: {exc}")
            return
        if not data:
            partly = "" if conn.reader.between_messages else " in the middle of a message"
            self._lose(conn, f"closed by the other side{partly}")
            return
        messages: list[list[Frame]] = []
        try:
            conn.reader.feed(data, messages)
        except _Garbage as exc:
            self._garbage_connections += 1
            count = self._garbage_connections
            if count <= 10 or str(count).rstrip("0") == "1":  # a flood must not flood the log
                logger.warning(
                    "scoop-tcp-example: closing a connection that sent %s (%d so far)", exc, count
                )
            self._lose(conn, f"sent {exc}")
        for frames in messages:
            self._deliver(conn, frames)

    def _send_some(self, conn: _Connection) -> bool:
        """Write what the socket takes of ``conn``'s output; False if the connection broke."""
        with self._lock:
            buffers = list(itertools.islice(conn.out, IOV_MAX))
        try:
            sent = conn.sock.sendmsg(buffers) if buffers else 0
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        with self._lock:
            while conn.out and len(conn.out[0]) <= sent:
                sent -= len(conn.out.popleft())
            if sent:
                conn.out[0] = memoryview(conn.out[0])[sent:]
            if not conn.out:
                conn.writing = False
        return True

    def _writable(self, conn: _Connection) -> None:
        if not self._send_some(conn):
            self._lose(conn, "connection broke while sending")
        elif not conn.writing:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _lose(self, conn: _Connection, reason: str) -> None:
        with self._lock:
            conn.alive = False
            conn.out.clear()
            self._forget(conn, reason)
        logger.debug("scoop-tcp-example: %r lost: %s", conn.peer, reason)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _linger(self) -> None:
        """Closing: write what is queued, half-close, wait for the other side to close."""
        deadline = time.monotonic() + LINGER_SECONDS
        self._watch_dirty()
        with selectors.DefaultSelector() as lingering:
            for conn in self._connections():
                if not conn.alive:
                    continue
                self._selector.unregister(conn.sock)
                if conn.out:
                    lingering.register(conn.sock, selectors.EVENT_WRITE, conn)
                else:
                    self._half_close(conn)
                    lingering.register(conn.sock, selectors.EVENT_READ, conn)
            while lingering.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.debug("scoop-tcp-example: close gave up after %s s", LINGER_SECONDS)
                    return
                for key, mask in lingering.select(remaining):
                    conn = cast(_Connection, key.data)
                    if mask & selectors.EVENT_WRITE:
                        done = not self._send_some(conn)
                        if not done and not conn.out:
                            self._half_close(conn)
                            lingering.modify(conn.sock, selectors.EVENT_READ, conn)
                    else:
                        try:
                            done = not conn.sock.recv(READ_CHUNK)  # discard; b"" is the end
                        except (BlockingIOError, InterruptedError):
                            done = False
                        except OSError:
                            done = True
                    if done:
                        lingering.unregister(conn.sock)
                        conn.sock.close()
                        conn.alive = False

    @staticmethod
    def _half_close(conn: _Connection) -> None:
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)

    def _teardown(self) -> None:
        with self._lock:
            self._closed = True
            conns = self._connections()
        for conn in conns:
            conn.alive = False
            conn.sock.close()
        self._teardown_extra()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


# -- the broker -------------------------------------------------------------------------------


def _listen(options: BindOptions) -> socket.socket:
    port, host = options.port, options.host
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidAddress(f"bind: the port must be an integer in 0..65535, not {port!r}")
    if not isinstance(host, str) or not host:
        raise InvalidAddress(f"bind: the host must be a non-empty string, not {host!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    with _mapped_errors(f"bind {host!r} port {port}"):
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    return sock


class TcpBrokerEndpoint(_Endpoint[tuple[Hashable, list[Frame]]]):
    """The broker's side: a listening socket and one connection per worker."""

    def __init__(self, options: BindOptions) -> None:
        listener = _listen(options)
        try:
            with _mapped_errors("bind"):
                super().__init__("broker")
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        host, port = listener.getsockname()[:2]
        self._address = _url(host, port)
        self._peers: dict[TcpPeer, _Connection] = {}  # guarded by the lock
        self._selector.register(listener, selectors.EVENT_READ, _LISTENER)
        self._thread.start()

    @property
    def address(self) -> str:
        """``tcp://host:port`` with the real port."""
        return self._address

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Return ``(peer, frames)`` of the next message, or None after ``timeout`` seconds."""
        return self._take(timeout)

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        """Queue a message to ``peer``; PeerUnreachable if it is unknown or gone."""
        self._check_open()
        buffers = _encode(frames)
        with self._lock:
            self._check_open()
            conn = self._peers.get(peer) if isinstance(peer, TcpPeer) else None
            if conn is None:
                raise PeerUnreachable(f"unknown or gone peer: {peer!r}")
            wake = self._queue(conn, buffers)
        if wake:
            self._wake()

    def _accept(self) -> None:
        while True:
            try:
                sock, remote = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("scoop-tcp-example: accept failed: %s", exc)
                return
            try:
                _prepare(sock)
            except OSError:
                sock.close()
                continue
            conn = _Connection(sock, TcpPeer(_url(*remote[:2])[len("tcp://") :]))
            with self._lock:
                self._peers[cast(TcpPeer, conn.peer)] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _deliver(self, conn: _Connection, frames: list[Frame]) -> None:
        self._inbox.put((conn.peer, frames))

    def _forget(self, conn: _Connection, reason: str) -> None:
        self._peers.pop(cast(TcpPeer, conn.peer), None)

    def _connections(self) -> list[_Connection]:
        return list(self._peers.values())

    def _teardown_extra(self) -> None:
        self._listener.close()


# -- the worker -------------------------------------------------------------------------------


def _parse_address(address: object) -> tuple[str, int]:
    if not isinstance(address, str):
        raise InvalidAddress(f"connect: the address must be a string, not {address!r}")
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidAddress(f"connect: malformed address {address!r}: {exc}") from exc
    if parts.scheme != "tcp":
        raise InvalidAddress(f"the tcp-example transport serves tcp:// addresses, not {address!r}")
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    if not host or not port or extra:
        raise InvalidAddress(f"connect: expected tcp://HOST:PORT, not {address!r}")
    return host, port


class TcpWorkerEndpoint(_Endpoint[list[Frame]]):
    """A worker's side: one connection to the broker."""

    def __init__(self, options: ConnectOptions) -> None:
        host, port = _parse_address(options.address)
        try:
            timeout = float(options.extra.get("connect_timeout", CONNECT_TIMEOUT))
        except ValueError as exc:
            raise InvalidAddress(f"connect: bad connect_timeout: {exc}") from exc
        with _mapped_errors(f"connect {options.address}"):
            sock = socket.create_connection((host, port), timeout=timeout)
            try:
                _prepare(sock)
                super().__init__("worker")
            except BaseException:
                sock.close()
                raise
        self._address = options.address
        self._conn = _Connection(sock, None)
        self._lost: str | None = None  # why the broker's connection ended (guarded)
        self._selector.register(sock, selectors.EVENT_READ, self._conn)
        self._thread.start()

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Return the frames of the next message, or None after ``timeout`` seconds."""
        return self._take(timeout)

    def wakeup(self) -> None:
        """Make a ``recv`` in progress (or else the next one) return promptly; any thread."""
        with self._lock:
            if self._closed or self._woken:
                return  # closed, or a marker is already waiting for a recv
            self._woken = True
            self._inbox.put(_WOKEN)

    def send(self, frames: Sequence[Frame]) -> None:
        """Queue a message to the broker; PeerUnreachable if the broker went away."""
        self._check_open()
        buffers = _encode(frames)
        with self._lock:
            self._check_open()
            if self._lost is not None:
                raise PeerUnreachable(f"the broker at {self._address} is gone: {self._lost}")
            wake = self._queue(self._conn, buffers)
        if wake:
            self._wake()

    def _accept(self) -> None:  # pragma: no cover - a worker has no listener
        raise AssertionError("a worker endpoint does not accept connections")

    def _deliver(self, conn: _Connection, frames: list[Frame]) -> None:
        self._inbox.put(frames)

    def _forget(self, conn: _Connection, reason: str) -> None:
        self._lost = reason

    def _connections(self) -> list[_Connection]:
        return [self._conn]


def bind(options: BindOptions) -> TcpBrokerEndpoint:
    """Bind a broker endpoint."""
    return TcpBrokerEndpoint(options)


def connect(options: ConnectOptions) -> TcpWorkerEndpoint:
    """Connect a worker endpoint."""
    return TcpWorkerEndpoint(options)
