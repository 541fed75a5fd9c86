"""pynng sockets behind the SCOOP transport interface.

Design
------
nng has no ROUTER socket. Its only many-peer socket that can address one peer, polyamorous
Pair1, is deprecated and *drops* a message whenever the chosen pipe's two-message send queue is
full (nng ``pair1_poly.c``: "Try a non-blocking send. If this fails we just discard the
message"; nanomsg/nng#1274, #995, #878, codypiersall/pynng#41), which breaks the rule that a
transport never drops a message silently. So this transport uses only reliable, back-pressured
one-way sockets::

    worker                                   broker
    Push0 --dial--> tcp://host:port ------> Pull0 (listens; every message carries its pipe)
    Pull0 <--------- tcp://worker:port <--dial-- Push0 (one per worker, made on its HELLO)

A worker dials the broker's Pull0, listens on an ephemeral port of the interface it uses to
reach the broker, and sends a HELLO naming that port. The broker, on the HELLO, dials a Push0 to
that port at the address the worker's connection comes from (never to a host a HELLO names: it
is not authenticated). The peer value the broker sees is an :class:`NngPeer` (this broker's
token and the pipe id of the worker's connection). When that connection goes, nng's
pipe-removed callback marks the peer gone and ``send`` to it raises PeerUnreachable. The broker
must be able to open TCP connections to the workers' hosts (on one machine: loopback).

nng messages are single-part: a message is one nng_msg whose body is a small header (kind byte,
frame count, frame lengths) then the frames. Sending copies each frame once, straight into the
nng_msg (so the caller may reuse its buffers at once); receiving returns small frames as bytes
and frames of at least :data:`ZERO_COPY_MIN_BYTES` as memoryviews of the nng_msg itself, which
is freed when the last view goes.

Pitfalls handled here
---------------------
* ``recv_max_size`` defaults to 1 MiB and larger messages are dropped silently: set to 0.
* Push0's send buffer defaults to 0 messages: set to its maximum, and a send that still finds
  it full waits at most :data:`SEND_TIMEOUT_MS`, then raises.
* ``nng_close`` does not linger: queued messages are lost. A worker's ``close`` waits (at most
  :data:`LINGER_S`) until its pipe's transmitted-message counter covers every message it sent.
* ``SockAddr.port`` of pynng is in network byte order.
* Every pynng exception is mapped to scoop.errors at this boundary (``_mapped_errors``).

Fork safety
-----------
nng is not fork-safe (its threads do not survive fork). SCOOP's launcher starts workers and the
broker with fork+exec (``subprocess``) and creates no nng socket itself, so this never bites.
Should an endpoint be used in a child forked after it was created, every call raises
TransportError instead of hanging or corrupting nng's state (``close`` then only marks it
closed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket as _socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

import pynng
from pynng import ffi, lib

from scoop.errors import (
    AddressInUse,
    InvalidAddress,
    PeerUnreachable,
    TransportClosed,
    TransportError,
)
from scoop.transport import BindOptions, ConnectOptions, Frame

__all__ = ["NngBrokerEndpoint", "NngPeer", "NngWorkerEndpoint", "bind", "connect"]

_T = TypeVar("_T")

#: Frames at least this large are received without a copy (as memoryviews of the nng message).
ZERO_COPY_MIN_BYTES = 64 * 1024
#: How long a worker's close() lets queued messages go out, in seconds.
LINGER_S = 2.0
#: How long a send waits when nng's send buffer is full before giving up, in milliseconds.
SEND_TIMEOUT_MS = 5000
#: Messages nng buffers per sending socket (nng's maximum).
SEND_BUFFER = 8192
#: Longest single wait inside nng, so that signals (Ctrl-C) are handled between waits.
_WAIT_SLICE_MS = 1000

_DATA = 0
_HELLO = 1
_HEAD = struct.Struct("<BI")  # kind, number of frames; then one <Q length per frame


@contextlib.contextmanager
def _mapped_errors(what: str, closed: bool = False) -> Iterator[None]:
    try:
        yield
    except pynng.AddressInUse as exc:
        raise AddressInUse(f"{what}: address already in use") from exc
    except (pynng.AddressInvalid, pynng.NotSupported, pynng.InvalidOperation) as exc:
        raise InvalidAddress(f"{what}: {exc}") from exc
    except (
        pynng.ConnectionRefused,
        pynng.ConnectionReset,
        pynng.ConnectionAborted,
        pynng.DestinationUnreachable,
    ) as exc:
        raise PeerUnreachable(f"{what}: {exc}") from exc
    except pynng.Closed as exc:
        if closed:
            raise TransportClosed(f"{what}: the endpoint is closed") from exc
        raise TransportError(f"{what}: the nng socket was closed under us") from exc
    except pynng.NNGException as exc:
        raise TransportError(f"{what}: {exc}") from exc
    except UnicodeError as exc:  # pynng encodes addresses as UTF-8 (lone surrogates fail)
        raise InvalidAddress(f"{what}: {exc}") from exc


def _check_port(port: object, what: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidAddress(f"{what}: the port must be an integer in 0..65535, not {port!r}")
    return port


def _tcp_url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"tcp://{host}:{port}"


def _split_address(address: str) -> tuple[str, int]:
    """Return (host, port) of a ``tcp://host:port`` address; raise InvalidAddress."""
    if not isinstance(address, str) or not address.startswith("tcp://"):
        raise InvalidAddress(f"the nng transport serves tcp:// addresses, not {address!r}")
    host, sep, port = address[len("tcp://") :].rpartition(":")
    if not sep or not host or not port.isdigit() or "\x00" in address:
        raise InvalidAddress(f"{address!r} is not of the form tcp://host:port")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidAddress(f"{address!r}: unbalanced brackets around the IPv6 host")
        host = host[1:-1]
    return host, _check_port(int(port), f"connect {address}")


def _port_of(addr: Any) -> int:
    # pynng's SockAddr.port is the raw sa_port, in network byte order.
    return int(_socket.ntohs(addr.port))


def _local_host_towards(host: str, port: int) -> str:
    """The local IP address this host uses to reach ``host:port`` (no packet is sent)."""
    try:
        infos = _socket.getaddrinfo(host, port, type=_socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with _socket.socket(family, _socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except (OSError, UnicodeError) as exc:
        raise PeerUnreachable(f"cannot find a route to {host}:{port}: {exc}") from exc


# -- messages ---------------------------------------------------------------------------------


def _as_bytes_view(frame: Frame) -> memoryview:
    view = memoryview(frame)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def _encode(kind: int, frames: Sequence[Frame]) -> Any:
    """Return a new nng_msg holding ``frames``; each frame is copied once, into the message."""
    if not frames:
        raise ValueError("a message needs at least one frame")
    views = [_as_bytes_view(frame) for frame in frames]
    lengths = [view.nbytes for view in views]
    head = _HEAD.pack(kind, len(views)) + struct.pack(f"<{len(views)}Q", *lengths)
    total = len(head) + sum(lengths)
    msg_p = ffi.new("nng_msg **")
    pynng.check_err(lib.nng_msg_alloc(msg_p, total))
    msg = msg_p[0]
    body = ffi.cast("char *", lib.nng_msg_body(msg))
    if total < ZERO_COPY_MIN_BYTES:
        ffi.memmove(body, b"".join([head, *views]), total)
    else:
        ffi.memmove(body, head, len(head))
        offset = len(head)
        for view, length in zip(views, lengths, strict=True):
            if length:
                ffi.memmove(body + offset, view, length)
            offset += length
    return msg


def _free_msg(msg: Any) -> None:
    lib.nng_msg_free(msg)


def _decode(msg: Any) -> tuple[int, list[Frame]] | None:
    """Split a received nng_msg into (kind, frames), or None if it is not in our framing.

    Takes ownership of ``msg``. Anyone who can reach a listening port can send any bytes (our
    sockets accept every SP peer of the right protocol), so a malformed message is dropped by
    the caller, never raised.
    """
    length = lib.nng_msg_len(msg)
    body = ffi.cast("char *", lib.nng_msg_body(msg))
    if length < ZERO_COPY_MIN_BYTES:
        data: bytes | memoryview = ffi.unpack(body, length)
        lib.nng_msg_free(msg)
    else:
        # The buffer keeps the gc'd pointer alive, which frees the nng_msg when collected.
        owner = ffi.gc(body, lambda _p, m=msg: _free_msg(m))
        data = memoryview(ffi.buffer(owner, length))
    try:
        kind, count = _HEAD.unpack_from(data, 0)
        lengths = struct.unpack_from(f"<{count}Q", data, _HEAD.size)
    except struct.error:
        return None
    offset = _HEAD.size + 8 * count
    if offset + sum(lengths) != length:
        return None
    frames: list[Frame] = []
    for size in lengths:
        part = data[offset : offset + size]
        frames.append(part if size >= ZERO_COPY_MIN_BYTES else bytes(part))
        offset += size
    return kind, frames


def _remote_host(pipe: Any) -> str | None:
    """The IP address at the other end of an nng pipe, or None if nng cannot tell."""
    address = ffi.new("nng_sockaddr []", 1)
    if lib.nng_pipe_get_addr(pipe, b"remote-address", address) != 0:
        return None
    family = address[0].s_family
    if family == lib.NNG_AF_INET:
        raw = struct.pack("I", address[0].s_in.sa_addr)  # stored in network byte order
        return _socket.inet_ntop(_socket.AF_INET, raw)
    if family == lib.NNG_AF_INET6:
        return _socket.inet_ntop(_socket.AF_INET6, bytes(address[0].s_in6.sa_addr))
    return None


# -- endpoints ---------------------------------------------------------------------------------


class _Endpoint:
    """What both sides share: the closed flag, the fork check, sending and receiving."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._closed = False
        self._recv_socket: Any = None
        self._recv_timeout_ms: int | None = None

    def _check_usable(self) -> None:
        if self._closed:
            raise TransportClosed("the endpoint is closed")
        if os.getpid() != self._pid:
            raise TransportError(
                "this nng endpoint was created in process "
                f"{self._pid} and cannot be used in the forked child {os.getpid()}: nng is not "
                "fork-safe; open a new endpoint in the child (SCOOP starts workers with "
                "fork+exec, so its own processes never do this)"
            )

    def _send_msg(self, sock: Any, msg: Any, what: str) -> None:
        rv = lib.nng_sendmsg(sock.socket, msg, lib.NNG_FLAG_NONBLOCK)
        if rv == lib.NNG_EAGAIN:  # send buffer full: wait a bounded time (GIL released)
            rv = lib.nng_sendmsg(sock.socket, msg, 0)
        if rv:
            lib.nng_msg_free(msg)  # nng owns the message only when the send succeeded
            if rv == lib.NNG_ETIMEDOUT:
                raise PeerUnreachable(
                    f"{what}: the peer has not read its messages for {SEND_TIMEOUT_MS} ms "
                    f"with {SEND_BUFFER} queued"
                )
            with _mapped_errors(what, closed=self._closed):
                pynng.check_err(rv)

    def _recv_until(self, timeout: float | None, take: Callable[[Any], _T | None]) -> _T | None:
        """Receive until ``take(nng_msg)`` returns a result, or None after ``timeout`` seconds.

        ``take`` owns the message; what it returns None for is dropped.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = self._recv_msg(remaining)
            if msg is None:
                return None
            result = take(msg)
            if result is not None:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _recv_msg(self, timeout: float | None) -> Any | None:
        """Return the next nng_msg, or None after ``timeout`` seconds."""
        self._check_usable()
        sock = self._recv_socket
        msg_p = ffi.new("nng_msg **")
        rv = lib.nng_recvmsg(sock.socket, msg_p, lib.NNG_FLAG_NONBLOCK)
        if rv == 0:
            return msg_p[0]
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while rv in (lib.NNG_EAGAIN, lib.NNG_ETIMEDOUT):
            if deadline is None:
                wait_ms = _WAIT_SLICE_MS
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait_ms = max(1, min(_WAIT_SLICE_MS, int(remaining * 1000 + 0.999)))
            if wait_ms != self._recv_timeout_ms:
                with _mapped_errors("recv", closed=self._closed):
                    sock.recv_timeout = wait_ms
                self._recv_timeout_ms = wait_ms
            rv = lib.nng_recvmsg(sock.socket, msg_p, 0)  # blocks, GIL released
            if rv == 0:
                return msg_p[0]
        with _mapped_errors("recv", closed=self._closed):
            pynng.check_err(rv)
        raise AssertionError("unreachable")  # pragma: no cover


def _data_frames(msg: Any) -> list[Frame] | None:
    """The frames of a DATA message; None for anything else (someone else dialed our port)."""
    decoded = _decode(msg)
    return decoded[1] if decoded is not None and decoded[0] == _DATA else None


@dataclasses.dataclass(frozen=True)
class NngPeer:
    """The peer value of one worker, as an :class:`NngBrokerEndpoint` reports it."""

    #: The token of the broker endpoint that saw the worker (peers of another broker differ).
    broker: str
    #: nng's id of the pipe the worker's messages come through.
    pipe: int


class _PeerState:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.gone = False


class NngBrokerEndpoint(_Endpoint):
    """The broker's side: a listening Pull0, and one dialing Push0 per worker."""

    def __init__(self, options: BindOptions) -> None:
        super().__init__()
        port = _check_port(options.port, f"bind {options.host!r}")
        host = options.host
        if not isinstance(host, str) or not host or "\x00" in host or " " in host:
            raise InvalidAddress(f"bind: {host!r} is not a host name or address")
        self._token = uuid.uuid4().hex
        self._peers: dict[int, _PeerState] = {}
        self._gone: set[int] = set()
        self._gone_lock = threading.Lock()
        front = pynng.Pull0(recv_max_size=0)
        front.add_post_pipe_remove_cb(self._on_pipe_removed)
        url = _tcp_url(host, port)
        try:
            with _mapped_errors(f"bind {url}"):
                listener = front.listen(url)
                real_port = _port_of(listener.local_address)
        except BaseException:
            front.close()
            raise
        self._recv_socket = front
        self._address = _tcp_url(host, real_port)

    def _on_pipe_removed(self, pipe: Any) -> None:
        # Runs on an nng thread: only record the fact.
        with self._gone_lock:
            self._gone.add(int(pipe.id))

    @property
    def address(self) -> str:
        """The address workers connect to, with the real port."""
        return self._address

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Return ``(peer, frames)`` of the next message, or ``None`` after ``timeout`` s."""
        return self._recv_until(timeout, self._take)

    def _take(self, msg: Any) -> tuple[Hashable, list[Frame]] | None:
        pipe = lib.nng_msg_get_pipe(msg)
        pipe_id = int(lib.nng_pipe_id(pipe))
        decoded = _decode(msg)
        if decoded is not None and decoded[0] == _HELLO:
            self._welcome(pipe, pipe_id, decoded[1])
        elif decoded is not None and decoded[0] == _DATA and pipe_id in self._peers:
            return NngPeer(self._token, pipe_id), decoded[1]
        return None  # anything else is not from a SCOOP nng worker (core counts what it gets)

    def _welcome(self, pipe: Any, pipe_id: int, frames: list[Frame]) -> None:
        # The HELLO is not authenticated (core authenticates what follows): dial back only to
        # the address the connection came from, never to a host the sender names, so that a
        # stranger cannot make the broker open connections elsewhere; and once per pipe.
        if pipe_id in self._peers:
            return
        try:
            port = _check_port(int(bytes(frames[1])), "hello")
        except (IndexError, ValueError, UnicodeError, InvalidAddress):
            return
        host = _remote_host(pipe)
        if host is None:
            return
        out = pynng.Push0(send_buffer_size=SEND_BUFFER, send_timeout=SEND_TIMEOUT_MS)
        try:
            with _mapped_errors("dial the worker"):
                out.dial(_tcp_url(host, port), block=False)
        except TransportError:
            out.close()
            return
        self._peers[pipe_id] = _PeerState(out)

    def _reap(self) -> None:
        with self._gone_lock:
            gone, self._gone = self._gone, set()
        for pipe_id in gone:
            state = self._peers.get(pipe_id)
            if state is not None and not state.gone:
                state.gone = True
                state.out.close()

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        """Queue one message to ``peer``; raise PeerUnreachable if it is unknown or gone."""
        self._check_usable()
        if not frames:
            raise ValueError("a message needs at least one frame")
        if not isinstance(peer, NngPeer) or peer.broker != self._token:
            raise PeerUnreachable(f"not a peer of this broker: {peer!r}")
        if self._gone:
            self._reap()
        state = self._peers.get(peer.pipe)
        if state is None or state.gone:
            raise PeerUnreachable(f"the worker {peer!r} is gone")
        self._send_msg(state.out, _encode(_DATA, frames), "send")

    def close(self) -> None:
        """Close the endpoint; later calls raise TransportClosed. Closing twice is allowed."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # never touch nng in a forked child
        self._recv_socket.close()
        for state in self._peers.values():
            state.out.close()
        self._peers.clear()


class NngWorkerEndpoint(_Endpoint):
    """A worker's side: a Push0 dialing the broker and a Pull0 the broker dials back."""

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__()
        host, port = _split_address(options.address)
        local_host = _local_host_towards(host, port)
        self._sent = 0
        out = pynng.Push0(send_buffer_size=SEND_BUFFER, send_timeout=SEND_TIMEOUT_MS)
        back = pynng.Pull0(recv_max_size=0)
        try:
            with _mapped_errors(f"connect {options.address}"):
                out.dial(options.address, block=True)
                listener = back.listen(_tcp_url(local_host, 0))
                back_port = _port_of(listener.local_address)
            self._out, self._recv_socket = out, back
            self._send_msg(out, _encode(_HELLO, [local_host.encode(), b"%d" % back_port]), "hello")
            self._sent += 1
        except BaseException:
            out.close()
            back.close()
            raise

    def send(self, frames: Sequence[Frame]) -> None:
        """Queue one message of ``frames`` to the broker."""
        self._check_usable()
        if not frames:
            raise ValueError("a message needs at least one frame")
        self._send_msg(self._out, _encode(_DATA, frames), "send")
        self._sent += 1

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Return the frames of the next message, or ``None`` after ``timeout`` seconds."""
        return self._recv_until(timeout, _data_frames)

    def _transmitted(self) -> int:
        """Messages nng has written on this endpoint's outgoing pipes (nng's pipe statistics)."""
        sock_id = int(lib.nng_socket_id(self._out.socket))
        stats_p = ffi.new("nng_stat **")
        if lib.nng_stats_get(stats_p) != 0:
            return self._sent  # no statistics: do not wait
        total = 0
        try:
            pipe = lib.nng_stat_child(stats_p[0])
            while pipe != ffi.NULL:
                if ffi.string(lib.nng_stat_name(pipe)) == b"pipe":
                    values: dict[bytes, int] = {}
                    child = lib.nng_stat_child(pipe)
                    while child != ffi.NULL:
                        values[ffi.string(lib.nng_stat_name(child))] = lib.nng_stat_value(child)
                        child = lib.nng_stat_next(child)
                    if values.get(b"socket") == sock_id:
                        total += values.get(b"tx_msgs", 0)
                pipe = lib.nng_stat_next(pipe)
        finally:
            lib.nng_stats_free(stats_p[0])
        return total

    def close(self) -> None:
        """Close the connection, first letting queued messages go out (up to LINGER_S)."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # never touch nng in a forked child
        # nng_close drops what is still queued: wait until nng has written every message.
        deadline = time.monotonic() + LINGER_S
        with contextlib.suppress(Exception):
            while self._transmitted() < self._sent and time.monotonic() < deadline:
                time.sleep(0.001)
        self._out.close()
        self._recv_socket.close()


def bind(options: BindOptions) -> NngBrokerEndpoint:
    """Bind a broker endpoint."""
    return NngBrokerEndpoint(options)


def connect(options: ConnectOptions) -> NngWorkerEndpoint:
    """Connect a worker endpoint."""
    return NngWorkerEndpoint(options)
