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
    Pull0 <--------- tcp://worker:port <--dial-- Push0 (one per worker, made when first used)

A worker dials the broker's Pull0, listens on an ephemeral port of the interface it uses to
reach the broker, and sends a HELLO naming that port (again on each connection nng re-dials).
The broker notes it, and on its first send to that peer dials a Push0 to that port at the
address the worker's connection comes from (never to a host a HELLO names: it is not
authenticated). Core sends only to a worker that authenticated itself, so a stranger's HELLO
costs the broker no outgoing connection. The peer value the broker sees is an
:class:`NngPeer` (this broker's token and the pipe id of the worker's connection). When that
connection goes, nng's pipe-removed callback marks the peer gone and ``send`` to it raises
PeerUnreachable. The broker must be able to open TCP connections to the workers' hosts (on one
machine: loopback).

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
* ``nng_close`` does not linger: queued messages are lost. ``close`` waits (at most
  :data:`LINGER_S`) until the transmitted-message counters of its outgoing pipes cover every
  message it sent: a worker's to the broker (its last results), a broker's to each worker (the
  SHUTDOWN that ends a run). It stops waiting for a connection as soon as that connection is
  gone (a pipe-removed callback records it): nothing can go out on it any more, and nng drops a
  removed pipe's counters, so waiting would only ever end at the time limit (a worker whose
  broker had closed first used to take the full 2 s to close). Between checks it waits on an
  event those callbacks set, with pauses growing from 0.5 ms to 2 ms: each check takes a
  snapshot of all of nng's statistics.
* ``SockAddr.port`` of pynng is in network byte order.
* Every pynng exception is mapped to scoop.errors at this boundary (``_mapped_errors``).

Waiting and waking
------------------
``recv`` blocks in ``nng_recvmsg`` (the GIL released) in slices of at most
:data:`_WAIT_SLICE_MS`, so that signals (Ctrl-C) are handled between slices. A worker's
``wakeup``, from any thread, sends a private one-frame message (kind ``_WAKE``) through an
inproc Push0 dialed to an extra inproc listener of the worker's own Pull0; ``recv`` swallows
it and returns ``None``. nng sockets are thread-safe, so this needs no lock with ``recv``; a
flag coalesces a burst (one wake message at a time), and a lock orders ``wakeup`` against
``close``. The message never leaves the process: the tcp listener only takes DATA and HELLO
from outside, and a wake message from outside could do no more than end a wait early.

Why not the alternatives: polling the socket's ``NNG_OPT_RECVFD`` together with a wake pipe,
then receiving without blocking, made every wait cost a pollable raise and clear in nng and a
``poll`` in Python: a receive in a stream of messages went from 30 to 43 us. Cancelling an aio
that recv waits on (``nng_aio_cancel``) was tried and, under load, now and then handed ``recv``
an empty message (seen in 2 of 9 runs of the API suite at ``-n 4`` with three runs at once):
the plain blocking receive has no such history.

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
#: How long the broker still delivers what a connection that said HELLO sent, once it went
#: without ever being answered (a stranger, or a worker gone before its WELCOME).
GONE_HELLO_KEPT_S = 60.0
#: How long a send waits when nng's send buffer is full before giving up, in milliseconds.
SEND_TIMEOUT_MS = 5000
#: Messages nng buffers per sending socket (nng's maximum).
SEND_BUFFER = 8192
#: Longest single wait inside nng, so that signals (Ctrl-C) are handled between waits.
_WAIT_SLICE_MS = 1000
#: First and longest pause between two checks of the transmitted-message counters in close().
_LINGER_FIRST_PAUSE_S = 0.0005
_LINGER_MAX_PAUSE_S = 0.002

_DATA = 0
_HELLO = 1
_WAKE = 2  # a worker's wakeup(), from its own inproc Push0 (never on the network)
#: What a worker's recv takes from a wake message: return None at once.
_WOKEN: list[Frame] = []
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


def _transmitted() -> dict[int, int] | None:
    """Messages nng has written per socket id, over the socket's current pipes; None: no stats.

    A removed pipe's counters go with it: callers stop counting on a connection once it is gone.
    """
    stats_p = ffi.new("nng_stat **")
    if lib.nng_stats_get(stats_p) != 0:
        return None
    totals: dict[int, int] = {}
    try:
        node = lib.nng_stat_child(stats_p[0])
        while node != ffi.NULL:
            if ffi.string(lib.nng_stat_name(node)) == b"pipe":
                owner = lib.nng_stat_find(node, b"socket")
                sent = lib.nng_stat_find(node, b"tx_msgs")
                if ffi.NULL not in (owner, sent):
                    sock_id = lib.nng_stat_value(owner)
                    totals[sock_id] = totals.get(sock_id, 0) + lib.nng_stat_value(sent)
            node = lib.nng_stat_next(node)
    finally:
        lib.nng_stats_free(stats_p[0])
    return totals


def _linger(
    pending: Callable[[dict[int, int]], bool], changed: threading.Event, deadline: float
) -> None:
    """Wait until ``pending(transmitted)`` is false, or ``deadline`` (a monotonic time) passes.

    ``changed`` is set by the pipe-removed callbacks, after they recorded what went: it ends a
    pause early, so that ``pending`` can stop counting on that connection at once. It is only a
    signal (cleared here); ``pending`` reads the record.
    """
    pause = _LINGER_FIRST_PAUSE_S
    with contextlib.suppress(Exception):  # closing must not fail on a statistics problem
        while True:
            transmitted = _transmitted()
            if transmitted is None or not pending(transmitted):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            changed.wait(min(pause, remaining))
            changed.clear()
            pause = min(pause * 2, _LINGER_MAX_PAUSE_S)


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

        ``take`` owns the message; what it returns None for is dropped (a worker's ``take``
        answers a wake message with ``_WOKEN``, which ends the wait).
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
        self.out_id = int(lib.nng_socket_id(out.socket))
        self.gone = False
        self.sent = 0  # messages queued to the worker, for close() to see them go out
        self.out_lost = False  # the connection to the worker broke: its counters went with it


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
        #: Connections that said HELLO, by pipe id: where to dial back (host, port), on the
        #: first send to them. Core sends only to a worker that authenticated itself, so a
        #: stranger's HELLO costs no outgoing connection.
        self._pending: dict[int, tuple[str, int]] = {}
        #: Those of them whose connection went, and when: what they sent before may still be
        #: queued (and is delivered); forgotten after GONE_HELLO_KEPT_S.
        self._pending_gone: dict[int, float] = {}
        self._gone: set[int] = set()
        self._gone_lock = threading.Lock()
        self._pipe_removed = threading.Event()  # wakes close()'s linger when a worker goes
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
        self._pipe_removed.set()

    def _on_out_pipe_removed(self, state: _PeerState) -> None:
        # Runs on an nng thread. nng re-dials the worker, and what was queued waits for the new
        # connection; but close() can no longer count what went out, so it stops waiting.
        state.out_lost = True
        self._pipe_removed.set()

    @property
    def address(self) -> str:
        """The address workers connect to, with the real port."""
        return self._address

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Return ``(peer, frames)`` of the next message, or ``None`` after ``timeout`` s."""
        return self._recv_until(timeout, self._take)

    def _take(self, msg: Any) -> tuple[Hashable, list[Frame]] | None:
        if self._gone:  # forget connections that went, strangers' included
            self._reap()
        pipe = lib.nng_msg_get_pipe(msg)
        pipe_id = int(lib.nng_pipe_id(pipe))
        decoded = _decode(msg)
        if decoded is not None and decoded[0] == _HELLO:
            self._welcome(pipe, pipe_id, decoded[1])
        elif (
            decoded is not None
            and decoded[0] == _DATA
            and (
                pipe_id in self._peers or pipe_id in self._pending or pipe_id in self._pending_gone
            )
        ):
            return NngPeer(self._token, pipe_id), decoded[1]
        return None  # anything else is not from a SCOOP nng worker (core counts what it gets)

    def _welcome(self, pipe: Any, pipe_id: int, frames: list[Frame]) -> None:
        # The HELLO is not authenticated (core authenticates what follows): dial back only to
        # the address the connection came from, never to a host the sender names, so that a
        # stranger cannot make the broker open connections elsewhere; once per pipe; and only
        # when core first sends to it (_dial_back), that is once it proved itself.
        if pipe_id in self._peers or pipe_id in self._pending:
            return
        try:
            port = _check_port(int(bytes(frames[1])), "hello")
        except (IndexError, ValueError, UnicodeError, InvalidAddress):
            return
        host = _remote_host(pipe)
        if host is None:
            return
        self._pending[pipe_id] = (host, port)

    def _dial_back(self, pipe_id: int) -> _PeerState | None:
        """Open the connection to a worker that said HELLO on ``pipe_id`` (first send to it)."""
        where = self._pending.pop(pipe_id, None)
        if where is None:
            return None
        host, port = where
        out = pynng.Push0(send_buffer_size=SEND_BUFFER, send_timeout=SEND_TIMEOUT_MS)
        state = _PeerState(out)
        out.add_post_pipe_remove_cb(lambda _pipe: self._on_out_pipe_removed(state))
        try:
            with _mapped_errors("dial the worker"):
                out.dial(_tcp_url(host, port), block=False)
        except TransportError:
            out.close()
            return None
        self._peers[pipe_id] = state
        return state

    def _untransmitted(self, transmitted: dict[int, int]) -> bool:
        """True while a worker that is still there has not been written all it was sent."""
        if self._gone:
            self._reap()
        return any(
            not state.gone and not state.out_lost and transmitted.get(state.out_id, 0) < state.sent
            for state in self._peers.values()
        )

    def _reap(self) -> None:
        with self._gone_lock:
            gone, self._gone = self._gone, set()
        now = time.monotonic()
        if self._pending_gone:
            expired = now - GONE_HELLO_KEPT_S
            for pipe_id in [p for p, when in self._pending_gone.items() if when < expired]:
                del self._pending_gone[pipe_id]
        for pipe_id in gone:
            if self._pending.pop(pipe_id, None) is not None:
                self._pending_gone[pipe_id] = now
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
        state = self._peers.get(peer.pipe) or self._dial_back(peer.pipe)
        if state is None or state.gone:
            raise PeerUnreachable(f"the worker {peer!r} is gone")
        self._send_msg(state.out, _encode(_DATA, frames), "send")
        state.sent += 1

    def close(self) -> None:
        """Close the endpoint, first letting queued messages go out (up to LINGER_S).

        Later calls raise TransportClosed. Closing twice is allowed.
        """
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # never touch nng in a forked child
        # nng_close drops what is still queued (the SHUTDOWN that ends a run): wait until nng
        # has written every message to each worker that is still there. The incoming socket
        # stays open meanwhile: its pipe-removed callback is how a worker's leaving is seen.
        _linger(self._untransmitted, self._pipe_removed, time.monotonic() + LINGER_S)
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
        self._wake_lock = threading.Lock()  # orders wakeup() against close()
        self._wake_pending = False  # a wakeup() came that no recv has returned None for yet
        # Set by the outgoing socket's pipe-removed callback: the broker's connection is gone
        # (stays set), and close()'s linger is to look again (cleared by it).
        self._broker_lost = threading.Event()
        self._pipe_removed = threading.Event()
        out = pynng.Push0(send_buffer_size=SEND_BUFFER, send_timeout=SEND_TIMEOUT_MS)
        back = pynng.Pull0(recv_max_size=0)
        self._pipes = 0
        #: Set when nng re-dialed the broker: the next send says HELLO on the new connection
        #: first, so that the broker dials back to this worker again.
        self._hello_again = False
        try:
            out.add_post_pipe_remove_cb(self._on_pipe_removed)
            out.add_post_pipe_connect_cb(self._on_pipe_added)
            with _mapped_errors(f"connect {options.address}"):
                out.dial(options.address, block=True)
                listener = back.listen(_tcp_url(local_host, 0))
                back_port = _port_of(listener.local_address)
            self._out, self._recv_socket = out, back
            self._hello: list[Frame] = [local_host.encode(), b"%d" % back_port]
            self._send_msg(out, _encode(_HELLO, [local_host.encode(), b"%d" % back_port]), "hello")
            self._sent += 1
            # wakeup()'s way into a blocked recv: a private message on an inproc pipe into the
            # worker's own Pull0, which recv swallows and answers with None.
            wake_url = f"inproc://scoop-wake-{uuid.uuid4().hex}"
            back.listen(wake_url)
            self._waker = pynng.Push0(send_buffer_size=2)
            self._waker.dial(wake_url, block=True)
        except BaseException:
            out.close()
            back.close()
            raise

    def _on_pipe_removed(self, _pipe: Any) -> None:
        # Runs on an nng thread: only record the fact.
        self._broker_lost.set()
        self._pipe_removed.set()

    def _on_pipe_added(self, _pipe: Any) -> None:
        # Runs on an nng thread. After the first connection, nng re-dialed a lost one.
        self._pipes += 1
        if self._pipes > 1:
            self._broker_lost.clear()
            self._hello_again = True

    def send(self, frames: Sequence[Frame]) -> None:
        """Queue one message of ``frames`` to the broker."""
        self._check_usable()
        if not frames:
            raise ValueError("a message needs at least one frame")
        if self._hello_again:
            self._hello_again = False
            self._send_msg(self._out, _encode(_HELLO, self._hello), "hello")
            self._sent += 1
        self._send_msg(self._out, _encode(_DATA, frames), "send")
        self._sent += 1

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Return the frames of the next message, or ``None`` after ``timeout`` seconds."""
        frames = self._recv_until(timeout, self._take)
        return None if frames is _WOKEN else frames

    def _take(self, msg: Any) -> list[Frame] | None:
        decoded = _decode(msg)
        if decoded is None:
            return None  # not in our framing: someone else dialed our port
        kind, frames = decoded
        if kind == _WAKE:
            self._wake_pending = False  # before returning: a later wakeup() sends anew
            return _WOKEN
        return frames if kind == _DATA else None

    def wakeup(self) -> None:
        """Make a ``recv`` in progress (or else the next one) return promptly; any thread."""
        if self._wake_pending:
            return  # coalesced: the recv to return early has not yet returned
        with self._wake_lock:
            if self._closed or self._wake_pending:
                return
            self._wake_pending = True
            msg = _encode(_WAKE, [b""])
            # nng sockets are thread-safe; never blocks (room for two, and at most one queued).
            if lib.nng_sendmsg(self._waker.socket, msg, lib.NNG_FLAG_NONBLOCK) != 0:
                lib.nng_msg_free(msg)

    def _untransmitted(self, transmitted: dict[int, int]) -> bool:
        """True while the broker is there and nng has not written all this endpoint sent."""
        sock_id = int(lib.nng_socket_id(self._out.socket))
        return not self._broker_lost.is_set() and transmitted.get(sock_id, 0) < self._sent

    def close(self) -> None:
        """Close the connection, first letting queued messages go out (up to LINGER_S)."""
        with self._wake_lock:  # a wakeup() after this sees the flag
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self._pid:
            return  # never touch nng in a forked child
        # nng_close drops what is still queued: wait until nng has written every message, or
        # the broker's connection is gone (then nothing more can go, and the counters are gone).
        _linger(self._untransmitted, self._pipe_removed, time.monotonic() + LINGER_S)
        self._out.close()
        self._waker.close()  # no wakeup() sends any more: it saw _closed set under the lock
        self._recv_socket.close()


def bind(options: BindOptions) -> NngBrokerEndpoint:
    """Bind a broker endpoint."""
    return NngBrokerEndpoint(options)


def connect(options: ConnectOptions) -> NngWorkerEndpoint:
    """Connect a worker endpoint."""
    return NngWorkerEndpoint(options)
