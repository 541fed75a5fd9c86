"""Agents started by a command of this machine: ``srun``, ``qrsh -inherit``, ``blaunch``, ...

:class:`CommandAgent` talks to the agent through the command's pipes: these tools carry
standard input, output and error between this machine and the remote task, as ssh does.
``pbsdsh`` carries no standard input, so :class:`ConnectBackAgent` lets the agent open two TCP
connections back to the launcher (:class:`AgentListener`), one for its input and output and one
for its error output. The agent proves it is ours with a ticket it reads from a file only the
user can read (under ``~/.scoop/runs``, shared by the nodes like the home directory); the
run's configuration and secret are sent only once it did. pbsdsh exits with 0 whatever its task
did, so there the agent's last line says its exit status.

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
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from scoop_launch._agentlink import AGENT_EXIT_TIMEOUT, AgentLink, copy_lines, tcp_keepalive
from scoop_launch._options import RemoteHostError, SshOptions
from scoop_launch._starters import remote_shell_failure, start_argv

#: How long the command gets between SIGTERM and SIGKILL when it outlives the agent's input.
STOP_WAIT_SECONDS = 3.0
#: How long a connection back gets to present its ticket.
TICKET_TIMEOUT = 10.0
#: How much of the command's error output is kept to explain a failed start.
ERROR_TAIL = 8192


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
        env: Mapping[str, str] | None = None,
        pipe_stdin: bool = True,
    ) -> None:
        super().__init__(host, indices)
        self.via = starter
        self.options = options
        self.argv = start_argv(starter, host, options, agent_args, env)
        self._error_tail = b""
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
            raise RemoteHostError(f"host {host}: cannot run {self.argv[0]}: {exc}") from exc
        # Read from the start, so that a chatty start (a prolog, the tool's messages) cannot
        # fill the pipe and stall the agent before its ready line; the tail explains a failure.
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self) -> None:
        stderr = self.popen.stderr
        assert stderr is not None

        def read(size: int) -> bytes:
            chunk = os.read(stderr.fileno(), size)
            self._error_tail = (self._error_tail + chunk)[-ERROR_TAIL:]
            return chunk

        copy_lines(read, sys.stderr.buffer)

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
        return b""  # copied to this process's stderr from the start (_read_stderr)

    def _error_output(self) -> bytes:
        self._stderr_reader.join(timeout=AGENT_EXIT_TIMEOUT)
        return self._error_tail

    def _failure_cause(self, status: int, errors: str) -> str | None:
        cause = remote_shell_failure(status, errors, self.options)
        if cause is None and status not in (-1, 0):
            return f"the agent, started with {self.via}, exited with status {status}"
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
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._streams: dict[str, socket.socket] = {}
        self._connected = threading.Condition()
        self._closed = False
        #: What was sent before the agent connected (its configuration): sent once it does.
        self._pending = b""
        self._listener = listener
        listener.expect(host, self)
        agent_args = (
            *("--connect", listener.address),
            *("--ticket-file", str(listener.ticket_file)),
            *("--host", host),
        )
        super().__init__(starter, host, indices, options, agent_args, env=env, pipe_stdin=False)
        # The command may end without the agent ever connecting: whoever waits must know.
        threading.Thread(target=self._watch_command, daemon=True).start()

    def _watch_command(self) -> None:
        self.popen.wait()
        with self._connected:
            self._connected.notify_all()

    @property
    def complete(self) -> bool:
        """Whether both of the agent's connections came."""
        return len(self._streams) == 2

    def attach(self, stream: str, connection: socket.socket) -> bool:
        """Take a connection of the agent's (``io`` or ``err``); False if it cannot be used."""
        with self._connected:
            if self._closed or stream in self._streams:
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
                lambda: name in self._streams or self.popen.poll() is not None or self._closed,
                timeout,
            )
            return self._streams.get(name)

    def _send(self, data: bytes) -> None:
        with self._connected:
            connection = self._streams.get("io")
            if connection is None:
                if not self._closed:
                    self._pending += data
                return
        connection.sendall(data)

    def _recv(self, size: int, timeout: float | None = None) -> bytes:
        connection = self._stream("io", timeout)
        if connection is None:
            if self.popen.poll() is not None or self._closed:
                return super()._recv(size, timeout)  # the command's own output says why
            raise TimeoutError
        return _read(connection.fileno(), size, timeout)

    def _recv_err(self, size: int) -> bytes:
        connection = self._stream("err", None)
        return connection.recv(size) if connection is not None else b""

    def _failure_cause(self, status: int, errors: str) -> str | None:
        if "io" not in self._streams:
            return (
                f"the agent started with {self.via} never connected back to "
                f"{self._listener.address} (can {self.host} reach this machine, and does it "
                f"share {self._listener.ticket_file.parent}?)"
            )
        return super()._failure_cause(status, errors)

    def exit_status(self) -> int | None:
        """The agent's own exit status, as its last line said (pbsdsh's is always 0)."""
        if self.popen.poll() is None:
            return None
        return self.reported_status if self.reported_status is not None else -1

    def stop(self) -> None:
        """End the agent's input: it stops its workers and exits."""
        with self._connected:
            connection = self._streams.get("io")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Refuse a late connection, close those that came, make sure the command ended."""
        with self._connected:
            self._closed = True
            self._pending = b""  # the configuration (the secret) goes to nobody now
            self._connected.notify_all()
        super().close()
        for connection in list(self._streams.values()):
            with contextlib.suppress(OSError):
                connection.close()


class AgentListener:
    """Where agents that cannot get standard input connect back to the launcher."""

    def __init__(
        self, bind_host: str, advertised_host: str, ticket_dir: Path, silence_timeout: float
    ) -> None:
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._socket = socket.create_server((bind_host, 0), family=family, backlog=64)
        self.silence_timeout = silence_timeout
        self.ticket = secrets.token_hex(32)
        self.ticket_file = ticket_dir / f"agent-ticket-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(self.ticket_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self.ticket)
        except OSError:
            self._socket.close()
            raise
        port = self._socket.getsockname()[1]
        host = f"[{advertised_host}]" if ":" in advertised_host else advertised_host
        #: ``host:port`` as agents reach it.
        self.address = f"{host}:{port}"
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
            connection.settimeout(None)  # before it is used: blocking from here on
        except (OSError, ValueError, KeyError, TypeError):
            connection.close()
            return
        with self._lock:
            agent = self._expected.get(host)
        if (
            agent is None
            or stream not in ("io", "err")
            or not hmac.compare_digest(ticket.encode(), self.ticket.encode())
        ):
            connection.close()
            return
        tcp_keepalive(connection, self.silence_timeout)
        if not agent.attach(stream, connection):
            connection.close()
            return
        with self._lock:
            every_agent_came = all(a.complete for a in self._expected.values())
        if every_agent_came:  # the ticket has done its work
            with contextlib.suppress(OSError):
                self.ticket_file.unlink()

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
