"""Starting workers on other hosts over ssh (paramiko): one connection and one agent per host.

``~/.ssh/config`` (or ``--ssh-config``) gives HostName, User, Port, IdentityFile and
UserKnownHostsFile; keys and the ssh agent are used. Host keys are checked against known_hosts;
an unknown key is refused unless ``--ssh-accept-unknown-host-keys`` is given. Every failure to reach
a host is a RemoteHostError that names the host and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import paramiko

from scoop_launch._agent import READY_PREFIX
from scoop_launch._options import CONNECT_TIMEOUT, RemoteHostError, SshOptions

__all__ = ["Connections", "RemoteAgent", "RemoteHostError", "SshOptions", "connect", "resolve"]

#: How long an agent gets to check its host and answer.
AGENT_READY_TIMEOUT = 60.0
#: How long a remote command that ended its output gets to report its exit status.
AGENT_EXIT_TIMEOUT = 10.0
#: Exit statuses of the remote shell command before the agent runs (the agent's own are 0-3).
EXIT_BAD_PATH = 64
EXIT_PROLOG_FAILED = 65


def _load_ssh_config(path: str | None) -> paramiko.SSHConfig:
    candidate = path or os.path.expanduser("~/.ssh/config")
    if path is not None and not os.path.isfile(path):
        raise RemoteHostError(f"ssh config file {path!r} not found")
    if not os.path.isfile(candidate):
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(candidate)
    except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as exc:
        raise RemoteHostError(f"cannot read the ssh config file {candidate!r}: {exc}") from None


def resolve(host: str, options: SshOptions) -> dict[str, Any]:
    """The ssh settings for ``host``: hostname, port, user, identity files, known_hosts files."""
    entry = _load_ssh_config(options.ssh_config).lookup(host)
    known = entry.get("userknownhostsfile", "~/.ssh/known_hosts")
    try:
        port = int(entry.get("port", 22))
    except ValueError:
        raise RemoteHostError(
            f"host {host}: the ssh config gives Port {entry.get('port')!r}, not a number"
        ) from None
    return {
        "hostname": entry.get("hostname", host),
        "port": port,
        "user": entry.get("user"),
        "identityfile": [os.path.expanduser(p) for p in entry.get("identityfile", [])],
        "known_hosts": [os.path.expanduser(p) for p in known.split()],
    }


def connect(host: str, options: SshOptions) -> paramiko.SSHClient:
    """Open an authenticated ssh connection to ``host``, or raise RemoteHostError saying why."""
    settings = resolve(host, options)
    where = f"{settings['hostname']}:{settings['port']}"
    user = settings["user"] or os.environ.get("USER") or "root"
    client = paramiko.SSHClient()
    for path in settings["known_hosts"]:
        if os.path.isfile(path):
            try:
                client.load_system_host_keys(path)
            except (OSError, UnicodeDecodeError, paramiko.SSHException) as exc:
                raise RemoteHostError(f"cannot read known_hosts file {path!r}: {exc}") from None
    if options.accept_unknown_host_keys:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            settings["hostname"],
            port=settings["port"],
            username=user,
            key_filename=settings["identityfile"] or None,
            timeout=options.connect_timeout,
            banner_timeout=options.connect_timeout,
            auth_timeout=options.connect_timeout,
        )
    except socket.gaierror as exc:
        raise RemoteHostError(
            f"host {host}: cannot resolve {settings['hostname']!r} (DNS): {exc}"
        ) from exc
    except paramiko.BadHostKeyException as exc:
        raise RemoteHostError(
            f"host {host}: its host key does not match the one in known_hosts ({where}); if the "
            "host was reinstalled, update known_hosts, else someone may be in the middle"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise RemoteHostError(
            f"host {host}: authentication failed for {user}@{where}: {exc}"
        ) from exc
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        # paramiko wraps every socket error of every address here: tell them apart.
        codes = {getattr(error, "errno", None) for error in exc.errors.values()}
        if codes & {errno.EHOSTUNREACH, errno.ENETUNREACH}:
            raise RemoteHostError(
                f"host {host}: no route to {where} (host down or unreachable)"
            ) from exc
        if codes <= {errno.ECONNREFUSED}:
            raise RemoteHostError(
                f"host {host}: connection refused at {where} (no ssh server?)"
            ) from exc
        raise RemoteHostError(f"host {host}: cannot reach {where}: {exc}") from exc
    except paramiko.SSHException as exc:
        if "known_hosts" in str(exc):
            raise RemoteHostError(
                f"host {host}: its host key is unknown (not in known_hosts) at {where}; add it "
                "(ssh-keyscan) or pass --ssh-accept-unknown-host-keys"
            ) from exc
        if _refused_our_keys(client):
            # paramiko tries each key type on each key file and reports the last failure,
            # often "encountered RSA key, expected OPENSSH key": say what really happened.
            client.close()
            raise RemoteHostError(
                f"host {host}: authentication failed for {user}@{where}: no key offered was "
                f"accepted (keys: {', '.join(settings['identityfile']) or 'default'}, and the "
                f"ssh agent's); paramiko said: {exc}"
            ) from exc
        raise RemoteHostError(f"host {host}: ssh failed at {where}: {exc}") from exc
    except TimeoutError as exc:
        raise RemoteHostError(f"host {host}: timed out connecting to {where} (host down?)") from exc
    except OSError as exc:
        raise RemoteHostError(f"host {host}: cannot reach {where}: {exc}") from exc
    _detect_silence(client, options.silence_timeout)
    return client


def _detect_silence(client: paramiko.SSHClient, seconds: float) -> None:
    """Make a connection to a host that vanished (no FIN, no RST) fail within ``seconds``.

    ssh keep-alive messages keep data in flight, which TCP_USER_TIMEOUT bounds; TCP keep-alive
    probes cover an idle connection. The broken connection ends the agent's channel, and the
    launcher stops the run naming the host, instead of waiting forever for its workers.
    """
    transport = client.get_transport()
    if transport is None or seconds <= 0:
        return
    interval = max(1, int(seconds / 3))
    transport.set_keepalive(interval)
    sock = transport.sock
    with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (a ProxyCommand)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))


def _refused_our_keys(client: paramiko.SSHClient) -> bool:
    """True if the connection got as far as authentication and no key was accepted."""
    transport = client.get_transport()
    return transport is not None and transport.is_active() and not transport.is_authenticated()


def agent_command(options: SshOptions) -> str:
    """The shell command that starts the agent on a remote host (nothing secret in it)."""
    parts = [f"cd {shlex.quote(options.path)} || exit {EXIT_BAD_PATH};"]
    env = dict(options.extra_env)
    if options.pythonpath:
        parts.append(f"PYTHONPATH={shlex.quote(options.pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}};")
        parts.append("export PYTHONPATH;")
    if options.prolog:
        parts.append(f". {shlex.quote(options.prolog)} || exit {EXIT_PROLOG_FAILED};")
    parts.append("exec env")
    parts.extend(f"{k}={shlex.quote(v)}" for k, v in env.items())
    if options.nice is not None:
        parts.append(f"nice -n {int(options.nice)}")
    parts.append(f"{shlex.quote(options.python)} -m scoop_launch._agent")
    return " ".join(parts)


class RemoteAgent:
    """The agent on one remote host, seen from the launcher."""

    def __init__(
        self, host: str, client: paramiko.SSHClient, options: SshOptions, indices: list[int]
    ) -> None:
        self.host = host
        #: The indices of the workers it runs.
        self.indices = indices
        self.name = f"the workers on host {host}"
        self.client = client
        self.options = options
        transport = client.get_transport()
        assert transport is not None
        self.channel = transport.open_session()
        self.channel.exec_command(agent_command(options))
        # What the remote shell printed before the agent's ready line, and what came right
        # behind it: output the user sees first.
        self._early_stdout = b""
        self._pumps: list[threading.Thread] = []
        self.tunnel_port: int | None = None
        self._send_lock = threading.Lock()  # lines come from the main and the broker threads

    def send_line(self, message: dict[str, Any]) -> None:
        """Send one JSON line to the agent (its stdin stays open: closing it stops the agent)."""
        with self._send_lock, contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.sendall(json.dumps(message).encode() + b"\n")

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
                self.channel.settimeout(remaining)
                chunk = self.channel.recv(4096)
                if not chunk:
                    break  # the agent, or the shell before it, ended without a ready line
                received += chunk
        except TimeoutError:
            raise RemoteHostError(
                f"host {self.host}: the agent did not answer within {AGENT_READY_TIMEOUT} s"
            ) from None
        finally:
            self.channel.settimeout(None)
        ended = self.channel.status_event.wait(AGENT_EXIT_TIMEOUT)
        status = self.channel.recv_exit_status() if ended else -1
        output = received.decode(errors="replace").strip()
        errors = (output + "\n" + _drain(self.channel.recv_stderr).decode(errors="replace")).strip()
        if status == 127 or ("not found" in errors and self.options.python in errors):
            cause = f"no Python at {self.options.python!r} (--python-executable)"
        elif status == EXIT_BAD_PATH:
            cause = f"cannot use working directory {self.options.path!r} there (--path)"
        elif status == EXIT_PROLOG_FAILED:
            cause = f"the prolog {self.options.prolog!r} failed there (--prolog)"
        elif "No module named" in errors:
            cause = (
                f"scoop is not installed for {self.options.python!r} there "
                "(pip install scoop-core scoop-zmq scoop-launch)"
            )
        else:
            cause = f"the agent exited with status {status}"
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
            (self.channel.recv, stdout, self._early_stdout, on_agent_line),
            (self.channel.recv_stderr, stderr, b"", None),
        ):
            thread = threading.Thread(target=_copy, args=(read, target, first, divert), daemon=True)
            thread.start()
            self._pumps.append(thread)

    def wait_output(self, timeout: float) -> None:
        """Wait until everything the agent wrote has been read (it has exited)."""
        for thread in self._pumps:
            thread.join(timeout=timeout)

    def wait(self) -> int:
        """Wait for the agent to exit; return its status (-1 if the connection broke)."""
        status = int(self.channel.recv_exit_status())
        for thread in self._pumps:
            thread.join(timeout=5)
        return status

    def stop(self) -> None:
        """Close the agent's stdin: it stops its workers and exits."""
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.shutdown_write()

    def close(self) -> None:
        """Close the connection (the agent, if still there, sees EOF and stops its workers)."""
        with contextlib.suppress(Exception):
            self.channel.close()
        with contextlib.suppress(Exception):
            self.client.close()

    def open_tunnel(self, target: Callable[[], tuple[str, int]]) -> int:
        """Forward a port on the remote host's loopback to ``target()`` here; return the port."""
        transport = self.client.get_transport()
        assert transport is not None

        def handler(channel: paramiko.Channel, origin: Any, server: Any) -> None:
            try:
                local = socket.create_connection(target(), timeout=CONNECT_TIMEOUT)
            except OSError:
                channel.close()
                return
            local.settimeout(None)
            threading.Thread(target=_splice, args=(channel, local), daemon=True).start()

        try:
            port = transport.request_port_forward("127.0.0.1", 0, handler)
        except paramiko.SSHException as exc:
            raise RemoteHostError(
                f"host {self.host}: its ssh server refused the port forwarding --tunnel needs "
                f"({exc}; see AllowTcpForwarding in its sshd_config)"
            ) from exc
        self.tunnel_port = int(port)
        return self.tunnel_port


#: Output streams are shared by the threads that copy each host's output: one write at a time.
_OUTPUT_LOCK = threading.Lock()
#: A partial line longer than this is written without waiting for its end.
_MAX_HELD_LINE = 65536


def _copy(
    read: Callable[[int], bytes],
    target: BinaryIO,
    first: bytes = b"",
    divert: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Copy ``read`` to ``target`` until end of stream, writing whole lines only.

    Each worker writes whole lines (``scoop._run``); the channel splits them anywhere, and one
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
                _write_lines(target, lines)
            chunk = read(65536)
            if not chunk:
                break
    if held:  # the last line had no end
        with contextlib.suppress(Exception):
            _write_lines(target, held)


_AGENT_LINE = READY_PREFIX.encode()


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


def _write_lines(target: BinaryIO, lines: bytes) -> None:
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


def _drain(read: Callable[[int], bytes]) -> bytes:
    data = b""
    with contextlib.suppress(Exception):
        while chunk := read(65536):
            data += chunk
    return data


def _splice(channel: paramiko.Channel, local: socket.socket) -> None:
    def forward(
        read: Callable[[int], bytes], write: Callable[[bytes], Any], done: Callable[[], Any]
    ) -> None:
        with contextlib.suppress(Exception):
            while True:
                data = read(65536)
                if not data:
                    break
                write(data)
        with contextlib.suppress(Exception):
            done()

    back = threading.Thread(
        target=forward, args=(local.recv, channel.sendall, channel.shutdown_write), daemon=True
    )
    back.start()
    forward(channel.recv, local.sendall, lambda: local.shutdown(socket.SHUT_WR))
    back.join()
    channel.close()
    local.close()


class Connections:
    """One ssh connection per remote host for the whole launch (placement, then the agents)."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._lock = threading.Lock()

    def get(self, host: str) -> paramiko.SSHClient:
        """The connection to ``host``, opened on first use (RemoteHostError if it cannot be)."""
        with self._lock:
            client = self._clients.get(host)
        if client is None:
            client = connect(host, self.options)
            with self._lock:
                self._clients[host] = client
        return client

    def cpu_count(self, host: str) -> int:
        """The number of CPUs the remote host offers, asked over its connection."""
        command = (
            f"{shlex.quote(self.options.python)} -c "
            "'import os; print(len(os.sched_getaffinity(0)))' 2>/dev/null || nproc"
        )
        try:
            _, stdout, _ = self.get(host).exec_command(command, timeout=CONNECT_TIMEOUT)
            text = stdout.read().decode(errors="replace").strip()
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteHostError(f"host {host}: could not ask its CPU count: {exc}") from None
        try:
            return max(1, int(text.splitlines()[-1]))
        except (ValueError, IndexError):
            raise RemoteHostError(f"host {host}: could not read its CPU count ({text!r})") from None

    def close_all(self) -> None:
        """Close every connection."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
