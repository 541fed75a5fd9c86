"""A host's agent as the launcher sees it, whatever started it (ssh, srun, qrsh, ...).

The agent (:mod:`scoop_launch._agent`) speaks lines: JSON lines in on its standard input, its
own ``SCOOP-AGENT {...}`` lines out on its standard output, mixed with its workers' output, and
the workers' error output on its standard error. What carries those three streams differs: an
ssh channel (:mod:`scoop_launch._ssh`), the pipes of a local command that starts it on the host
(``srun``, ``qrsh -inherit``, ``blaunch``, ``mpiexec``) or two TCP connections the agent opens
back to the launcher (``pbsdsh``, which forwards no standard input); see
:mod:`scoop_launch._starters`. This module holds what is the same for all of them: reading up
to the ready line, copying output whole lines at a time, and the agent's own lines.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, BinaryIO

from scoop_launch._agent import READY_PREFIX
from scoop_launch._options import RemoteHostError

#: How long an agent gets to check its host and answer.
AGENT_READY_TIMEOUT = 60.0
#: How long a command that ended its output gets to report its exit status.
AGENT_EXIT_TIMEOUT = 10.0


class AgentLink(ABC):
    """The agent on one host and the streams that reach it."""

    #: How the agent is reached, for messages ("ssh", "srun", ...).
    via = "?"

    def __init__(self, host: str, indices: list[int]) -> None:
        self.host = host
        #: The indices of the workers it runs.
        self.indices = indices
        self.name = f"the workers on host {host}"
        #: The port on the host's loopback forwarded to the broker (ssh ``--tunnel`` only).
        self.tunnel_port: int | None = None
        # What came before the agent's ready line, and right behind it: the user sees it first.
        self._early_stdout = b""
        self._pumps: list[threading.Thread] = []
        self._send_lock = threading.Lock()  # lines come from the main and the broker threads
        #: The exit status the agent's last line gave (``agent_exit``), where its link has none.
        self.reported_status: int | None = None

    # -- what each kind of link provides

    @abstractmethod
    def _send(self, data: bytes) -> None:
        """Write to the agent's standard input (errors are ignored by the caller)."""

    @abstractmethod
    def _recv(self, size: int, timeout: float | None = None) -> bytes:
        """Read the agent's standard output; b"" at its end; TimeoutError after ``timeout``."""

    @abstractmethod
    def _recv_err(self, size: int) -> bytes:
        """Read the agent's standard error; b"" at its end."""

    @abstractmethod
    def stop(self) -> None:
        """Close the agent's standard input: it stops its workers and exits."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the link (the agent, if still there, sees its end and stops its workers)."""

    @abstractmethod
    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the agent (or the command that carries it) to end."""

    @abstractmethod
    def exit_status(self) -> int | None:
        """The agent's exit status once it ended (-1: the link broke), else None."""

    @abstractmethod
    def _failure_cause(self, status: int, errors: str) -> str | None:
        """Why the agent did not start, read from its exit status and output (None: unknown)."""

    def open_tunnel(self, target: Callable[[], tuple[str, int]]) -> int:
        """Forward a port on the host's loopback to ``target()`` here (ssh only)."""
        raise RemoteHostError(f"host {self.host}: --tunnel needs ssh, not {self.via}")

    def _error_output(self) -> bytes:
        """The agent's error output, read to its end (to explain why it did not start)."""
        return _drain(self._recv_err)

    # -- shared behaviour

    def send_line(self, message: dict[str, Any]) -> None:
        """Send one JSON line to the agent (its stdin stays open: closing it stops the agent)."""
        with self._send_lock, contextlib.suppress(Exception):
            self._send(json.dumps(message).encode() + b"\n")

    def wait(self) -> int:
        """Wait for the agent to exit; return its status (-1 if the link broke)."""
        while not self.wait_exit(3600):
            pass
        for thread in self._pumps:
            thread.join(timeout=5)
        status = self.exit_status()
        return -1 if status is None else status

    def wait_ready(self) -> None:
        """Read up to the agent's ready line; raise RemoteHostError with the cause if not ok.

        What comes before it (a --prolog or a shell start-up file that prints) is not an error:
        it reaches the user's output with the workers' output.
        """
        prefix = READY_PREFIX.encode()
        deadline = time.monotonic() + AGENT_READY_TIMEOUT
        received = b""
        try:
            while True:
                at = received.find(prefix)
                if at >= 0 and b"\n" in received[at:]:
                    line, _, after = received[at:].partition(b"\n")
                    self._early_stdout = received[:at] + after
                    reply = json.loads(line[len(prefix) :])
                    if reply.get("ok"):
                        return
                    raise RemoteHostError(f"host {self.host}: {reply.get('error')}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                chunk = self._recv(4096, remaining)
                if not chunk:
                    break  # the agent, or what starts it, ended without a ready line
                received += chunk
        except TimeoutError:
            raise RemoteHostError(
                f"host {self.host}: the agent did not answer within {AGENT_READY_TIMEOUT} s"
            ) from None
        ended = self.wait_exit(AGENT_EXIT_TIMEOUT)
        status = self.exit_status() if ended else None
        output = received.decode(errors="replace").strip()
        errors = (output + "\n" + self._error_output().decode(errors="replace")).strip()
        status = -1 if status is None else status
        cause = self._failure_cause(status, errors) or f"the agent exited with status {status}"
        detail = errors.splitlines()[-1] if errors else ""
        raise RemoteHostError(f"host {self.host}: {cause}" + (f": {detail}" if detail else ""))

    def pump_output(
        self,
        stdout: BinaryIO,
        stderr: BinaryIO,
        on_agent_line: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Copy the workers' output to the launcher's own streams, whole lines at a time.

        The agent's own lines on stdout (``SCOOP-AGENT {...}``: a worker ended) go to
        ``on_agent_line`` instead.
        """
        for read, target, first, divert in (
            (self._recv, stdout, self._early_stdout, on_agent_line),
            (self._recv_err, stderr, b"", None),
        ):
            thread = threading.Thread(
                target=copy_lines, args=(read, target, first, divert), daemon=True
            )
            thread.start()
            self._pumps.append(thread)

    def wait_output(self, timeout: float) -> None:
        """Wait until everything the agent wrote has been read (it has exited)."""
        for thread in self._pumps:
            thread.join(timeout=timeout)


#: Output streams are shared by the threads that copy each host's output: one write at a time.
_OUTPUT_LOCK = threading.Lock()
#: A partial line longer than this is written without waiting for its end.
_MAX_HELD_LINE = 65536
_AGENT_LINE = READY_PREFIX.encode()


def copy_lines(
    read: Callable[[int], bytes],
    target: BinaryIO,
    first: bytes = b"",
    divert: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Copy ``read`` to ``target`` until end of stream, writing whole lines only.

    Each worker writes whole lines (``scoop._run``); the link splits them anywhere, and one
    thread per host writes to the same terminal: holding a partial line until its end keeps
    lines of different hosts from mixing. With ``divert``, the agent's own lines are decoded
    and given to it instead of written.
    """
    held = b""
    with contextlib.suppress(Exception):
        chunk = first
        while True:
            data = held + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) > _MAX_HELD_LINE:
                cut = len(data)
            held = data[cut:]
            lines = data[:cut]
            if divert is not None and _AGENT_LINE in lines:
                lines = _divert_agent_lines(lines, divert)
            if lines:
                write_lines(target, lines)
            chunk = read(65536)
            if not chunk:
                break
    if held:  # the last line had no end
        with contextlib.suppress(Exception):
            write_lines(target, held)


def _divert_agent_lines(lines: bytes, divert: Callable[[dict[str, Any]], None]) -> bytes:
    """Give the agent's own lines to ``divert``; return the others."""
    kept = []
    for line in lines.splitlines(keepends=True):
        if line.startswith(_AGENT_LINE):
            with contextlib.suppress(ValueError):
                message = json.loads(line[len(_AGENT_LINE) :])
                if isinstance(message, dict):
                    divert(message)
                    continue
        kept.append(line)
    return b"".join(kept)


def write_lines(target: BinaryIO, lines: bytes) -> None:
    """Write whole lines, in writes of at most PIPE_BUF bytes (4096 on Linux) cut at line ends.

    Local workers write to the same pipe or terminal, and only a write that small is never split
    by another process's write.
    """
    with _OUTPUT_LOCK:
        start = 0
        while start < len(lines):
            end = lines.rfind(b"\n", start, start + select.PIPE_BUF) + 1
            if end <= start:  # one line longer than PIPE_BUF: it cannot be kept whole
                end = lines.find(b"\n", start) + 1 or len(lines)
            target.write(lines[start:end])
            target.flush()
            start = end


def tcp_keepalive(sock: Any, seconds: float) -> None:
    """Make a TCP connection to a host that vanished (no FIN, no RST) fail within ``seconds``.

    Keep-alive probes cover an idle connection; TCP_USER_TIMEOUT bounds data left unacknowledged.
    Nothing is done for ``seconds`` <= 0, or for a socket that is not TCP (an ssh ProxyCommand).
    """
    if seconds <= 0:
        return
    interval = max(1, int(seconds / 3))
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))


def _drain(read: Callable[[int], bytes]) -> bytes:
    data = b""
    with contextlib.suppress(Exception):
        while chunk := read(65536):
            data += chunk
    return data


__all__ = [
    "AGENT_EXIT_TIMEOUT",
    "AGENT_READY_TIMEOUT",
    "AgentLink",
    "copy_lines",
    "tcp_keepalive",
    "write_lines",
]
