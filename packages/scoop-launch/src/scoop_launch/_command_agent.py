"""Agents started by a command of this machine: ``srun``, ``qrsh -inherit``, ``blaunch``, ...

:class:`CommandAgent` talks to the agent through the command's pipes: these tools carry
standard input, output and error between this machine and the remote task, as ssh does.
``pbsdsh`` carries no standard input, so :class:`ConnectBackAgent` lets the agent open two TCP
connections back to the launcher (:class:`AgentListener`), one for its input and output and one
for its error output. The agent proves it is ours with a ticket it reads from a file only the
user can read (under ``~/.scoop/runs``, shared by the nodes like the home directory); the
run's secret is sent only once it did.

Ending: closing the agent's standard input stops it and its workers; if the command is still
there after that, SIGTERM reaches it (srun forwards it to the task and ends the job step,
which kills whatever the step started).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import threading
from pathlib import Path

from scoop_launch._agentlink import AgentLink
from scoop_launch._options import SshOptions
from scoop_launch._starters import remote_shell_failure, start_argv

#: How long the command gets to end after the agent's input closed, before SIGTERM.
STOP_WAIT_SECONDS = 3.0
#: How long a connection back gets to present its ticket.
TICKET_TIMEOUT = 10.0


class CommandAgent(AgentLink):
    """An agent started by a local command whose pipes carry its standard streams."""

    def __init__(
        self,
        starter: str,
        host: str,
        indices: list[int],
        options: SshOptions,
        agent_args: tuple[str, ...] = (),
        *,
        pipe_stdin: bool = True,
    ) -> None:
        super().__init__(host, indices)
        self.via = starter
        self.options = options
        self.argv = start_argv(starter, host, options, agent_args)
        try:
            # A session of its own: a Ctrl-C on the terminal is the launcher's to act on.
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if pipe_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            from scoop_launch._options import RemoteHostError

            raise RemoteHostError(f"host {host}: cannot run {self.argv[0]}: {exc}") from exc

    def _send(self, data: bytes) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.write(data)
        stdin.flush()

    def _recv(self, size: int, timeout: float | None = None) -> bytes:
        stdout = self.popen.stdout
        assert stdout is not None
        return _read(stdout.fileno(), size, timeout)

    def _recv_err(self, size: int) -> bytes:
        stderr = self.popen.stderr
        assert stderr is not None
        return os.read(stderr.fileno(), size)

    def _failure_cause(self, status: int, errors: str) -> str | None:
        cause = remote_shell_failure(status, errors, self.options)
        if cause is None and status != -1 and errors:
            return f"{self.via} failed (status {status})"
        return cause

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the command to end."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def exit_status(self) -> int | None:
        """The command's exit status (-1 if killed by a signal), None while it runs."""
        code = self.popen.poll()
        if code is None:
            return None
        return -1 if code < 0 else code

    def stop(self) -> None:
        """Close the agent's stdin: it stops its workers and exits."""
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def close(self) -> None:
        """Make sure the command ended: SIGTERM if it is still there, then SIGKILL.

        To the command's own process only: srun forks a helper that cancels the job step when
        srun dies, and killing both at once (the process group) would leave the step running.
        """
        self.stop()
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if self.wait_exit(STOP_WAIT_SECONDS if signum == signal.SIGKILL else 0.0):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.popen.pid, signum)
        self.wait_exit(STOP_WAIT_SECONDS)


class ConnectBackAgent(CommandAgent):
    """An agent whose standard streams come back over TCP (its starter carries no stdin)."""

    def __init__(
        self,
        starter: str,
        host: str,
        indices: list[int],
        options: SshOptions,
        listener: AgentListener,
    ) -> None:
        self._streams: dict[str, socket.socket] = {}
        self._connected = threading.Condition()
        #: What was sent before the agent connected (its configuration): sent once it does.
        self._pending = b""
        listener.expect(host, self)
        agent_args = (
            *("--connect", listener.address),
            *("--ticket-file", str(listener.ticket_file)),
            *("--host", host),
        )
        super().__init__(starter, host, indices, options, agent_args, pipe_stdin=False)

    def attach(self, stream: str, connection: socket.socket) -> bool:
        """Take a connection of the agent's (``io`` or ``err``); False if it has one already."""
        with self._connected:
            if stream in self._streams:
                return False
            if stream == "io" and self._pending:
                try:
                    connection.sendall(self._pending)
                except OSError:
                    return False
                self._pending = b""
            self._streams[stream] = connection
            self._connected.notify_all()
            return True

    def _stream(self, name: str, timeout: float | None) -> socket.socket | None:
        # The agent connects once it runs; until then, or if the command ends first, nothing.
        with self._connected:
            self._connected.wait_for(
                lambda: name in self._streams or self.popen.poll() is not None, timeout
            )
            return self._streams.get(name)

    def _send(self, data: bytes) -> None:
        with self._connected:
            connection = self._streams.get("io")
            if connection is None:
                self._pending += data
                return
        connection.sendall(data)

    def _recv(self, size: int, timeout: float | None = None) -> bytes:
        connection = self._stream("io", timeout)
        if connection is None:
            if self.popen.poll() is not None:  # the command ended: its own output says why
                return super()._recv(size, timeout)
            raise TimeoutError
        return _read(connection.fileno(), size, timeout)

    def _recv_err(self, size: int) -> bytes:
        connection = self._stream("err", None)
        if connection is None:
            return super()._recv_err(size)
        return connection.recv(size)

    def stop(self) -> None:
        """End the agent's input: it stops its workers and exits."""
        connection = self._streams.get("io")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the connections, then make sure the command ended."""
        super().close()
        for connection in list(self._streams.values()):
            with contextlib.suppress(OSError):
                connection.close()


class AgentListener:
    """Where agents that cannot get standard input connect back to the launcher."""

    def __init__(self, bind_host: str, advertised_host: str, ticket_dir: Path) -> None:
        self.ticket = secrets.token_hex(32)
        self.ticket_file = ticket_dir / f"agent-ticket-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(self.ticket_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.ticket)
        self._socket = socket.create_server((bind_host, 0), backlog=64)
        port = self._socket.getsockname()[1]
        #: ``host:port`` as agents reach it.
        self.address = f"{advertised_host}:{port}"
        self._expected: dict[str, ConnectBackAgent] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def expect(self, host: str, agent: ConnectBackAgent) -> None:
        """Give the connections that name ``host`` to ``agent``."""
        with self._lock:
            self._expected[host] = agent

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._greet, args=(connection,), daemon=True).start()

    def _greet(self, connection: socket.socket) -> None:
        # The first line names the host and the stream and carries the ticket; anything else
        # (a port scan, a stranger) is dropped without a word.
        try:
            connection.settimeout(TICKET_TIMEOUT)
            line = b""
            while not line.endswith(b"\n") and len(line) < 4096:
                chunk = connection.recv(1)
                if not chunk:
                    break
                line += chunk
            hello = json.loads(line)
            ticket = str(hello["ticket"])
            stream, host = str(hello["stream"]), str(hello["host"])
        except (OSError, ValueError, KeyError, TypeError):
            connection.close()
            return
        with self._lock:
            agent = self._expected.get(host)
        if (
            agent is None
            or stream not in ("io", "err")
            or not hmac.compare_digest(ticket.encode(), self.ticket.encode())
            or not agent.attach(stream, connection)
        ):
            connection.close()
            return
        connection.settimeout(None)

    def close(self) -> None:
        """Stop listening and remove the ticket file."""
        with contextlib.suppress(OSError):
            self._socket.close()
        with contextlib.suppress(OSError):
            self.ticket_file.unlink()


def _read(fd: int, size: int, timeout: float | None) -> bytes:
    if timeout is not None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError
    return os.read(fd, size)


__all__ = ["AgentListener", "CommandAgent", "ConnectBackAgent"]
