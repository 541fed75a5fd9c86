"""The nng transport's wire and plumbing: message framing, addresses, errors, lingering.

One nng message carries one SCOOP message: a header (kind byte, frame count, frame lengths)
then the frames; frames of at least ZERO_COPY_MIN_BYTES come back as views of the nng message.
See scoop_nng._transport for the design and its pitfalls.
"""

from __future__ import annotations

import contextlib
import socket as _socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
from scoop.transport import Frame

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
