"""The nng transport's broker endpoint: Pull0 in, one Push0 per worker, dialled back.

See scoop_nng._transport for the design: why one-way sockets, how a worker's HELLO names the
port the broker dials back, how ``recv`` is woken, how ``close`` lingers.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

import pynng
from pynng import lib

from scoop.errors import (
    InvalidAddress,
    PeerUnreachable,
    TransportError,
)
from scoop.transport import BindOptions, Frame
from scoop_nng._endpoints import _Endpoint
from scoop_nng._wire import (
    _DATA,
    _HELLO,
    GONE_HELLO_KEPT_S,
    LINGER_S,
    SEND_BUFFER,
    SEND_TIMEOUT_MS,
    _check_port,
    _decode,
    _encode,
    _linger,
    _mapped_errors,
    _port_of,
    _remote_host,
    _tcp_url,
)


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
