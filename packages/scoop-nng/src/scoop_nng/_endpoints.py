"""The nng transport's endpoints: what both share, and a worker's.

The broker's is in scoop_nng._broker_endpoint. See scoop_nng._transport for the design: why
one-way sockets, how a worker's HELLO names the port the broker dials back, how ``recv`` is
woken, how ``close`` lingers.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pynng
from pynng import ffi, lib

from scoop.errors import (
    PeerUnreachable,
    TransportClosed,
    TransportError,
)
from scoop.transport import ConnectOptions, Frame
from scoop_nng._wire import (
    _DATA,
    _HELLO,
    _T,
    _WAIT_SLICE_MS,
    _WAKE,
    _WOKEN,
    LINGER_S,
    SEND_BUFFER,
    SEND_TIMEOUT_MS,
    _decode,
    _encode,
    _linger,
    _local_host_towards,
    _mapped_errors,
    _port_of,
    _split_address,
    _tcp_url,
)


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
