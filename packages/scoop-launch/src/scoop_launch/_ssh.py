"""Starting workers on other hosts over ssh (paramiko): one connection and one agent per host.

``~/.ssh/config`` (or ``--ssh-config``) gives HostName, User, Port, IdentityFile and
UserKnownHostsFile; keys and the ssh agent are used. Host keys are checked against known_hosts;
an unknown key is refused unless ``--ssh-accept-unknown-host-keys`` is given. Every failure to reach
a host is a RemoteHostError that names the host and the cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import paramiko

from scoop_launch._agent import READY_PREFIX
from scoop_launch._options import CONNECT_TIMEOUT, RemoteHostError, SshOptions

__all__ = ["Connections", "RemoteAgent", "RemoteHostError", "SshOptions", "connect", "resolve"]

#: How long an agent gets to check its host and answer.
AGENT_READY_TIMEOUT = 60.0


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
        raise RemoteHostError(
            f"host {host}: connection refused at {where} (no ssh server?)"
        ) from exc
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
    return client


def _refused_our_keys(client: paramiko.SSHClient) -> bool:
    """True if the connection got as far as authentication and no key was accepted."""
    transport = client.get_transport()
    return transport is not None and transport.is_active() and not transport.is_authenticated()


def agent_command(options: SshOptions) -> str:
    """The shell command that starts the agent on a remote host (nothing secret in it)."""
    parts = [f"cd {shlex.quote(options.path)} || exit 3;"]
    env = dict(options.extra_env)
    if options.pythonpath:
        parts.append(f"PYTHONPATH={shlex.quote(options.pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}};")
        parts.append("export PYTHONPATH;")
    if options.prolog:
        parts.append(f". {shlex.quote(options.prolog)} || exit 3;")
    parts.append("exec env")
    parts.extend(f"{k}={shlex.quote(v)}" for k, v in env.items())
    if options.nice is not None:
        parts.append(f"nice -n {int(options.nice)}")
    parts.append(f"{shlex.quote(options.python)} -m scoop_launch._agent")
    return " ".join(parts)


class RemoteAgent:
    """The agent on one remote host, seen from the launcher."""

    def __init__(self, host: str, client: paramiko.SSHClient, options: SshOptions) -> None:
        self.host = host
        self.name = f"the workers on host {host}"
        self.client = client
        self.options = options
        transport = client.get_transport()
        assert transport is not None
        self.channel = transport.open_session()
        self.channel.exec_command(agent_command(options))
        self._early_stdout = b""  # bytes that came right behind the agent's ready line
        self._pumps: list[threading.Thread] = []
        self.tunnel_port: int | None = None
        self._send_lock = threading.Lock()  # lines come from the main and the broker threads

    def send_line(self, message: dict[str, Any]) -> None:
        """Send one JSON line to the agent (its stdin stays open: closing it stops the agent)."""
        with self._send_lock, contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.sendall(json.dumps(message).encode() + b"\n")

    def wait_ready(self) -> None:
        """Read the agent's first line; raise RemoteHostError with the cause if it is not ok."""
        self.channel.settimeout(AGENT_READY_TIMEOUT)
        received = b""
        try:
            while b"\n" not in received:
                chunk = self.channel.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            raise RemoteHostError(
                f"host {self.host}: the agent did not answer within {AGENT_READY_TIMEOUT} s"
            ) from None
        finally:
            self.channel.settimeout(None)
        first, _, self._early_stdout = received.partition(b"\n")
        line = first.decode(errors="replace")
        if line.startswith(READY_PREFIX):
            reply = json.loads(line[len(READY_PREFIX) :])
            if reply.get("ok"):
                return
            raise RemoteHostError(f"host {self.host}: {reply.get('error')}")
        status = self.channel.recv_exit_status()
        errors = (line + _drain(self.channel.recv_stderr).decode(errors="replace")).strip()
        if status == 127 or ("not found" in errors and self.options.python in errors):
            cause = f"no Python at {self.options.python!r} (--python-executable)"
        elif status == 3 and "cd:" in errors:
            cause = f"cannot use working directory {self.options.path!r} there (--path)"
        elif "No module named" in errors:
            cause = (
                f"scoop is not installed for {self.options.python!r} there "
                "(pip install scoop-core scoop-zmq scoop-launch)"
            )
        else:
            cause = f"the agent exited with status {status}"
        detail = errors.splitlines()[-1] if errors else ""
        raise RemoteHostError(f"host {self.host}: {cause}" + (f": {detail}" if detail else ""))

    def pump_output(self, stdout: BinaryIO, stderr: BinaryIO) -> None:
        """Copy the workers' output to the launcher's own streams, as it comes."""
        if self._early_stdout:
            stdout.write(self._early_stdout)
            stdout.flush()
        for read, target in ((self.channel.recv, stdout), (self.channel.recv_stderr, stderr)):
            thread = threading.Thread(target=_copy, args=(read, target), daemon=True)
            thread.start()
            self._pumps.append(thread)

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

        port = transport.request_port_forward("127.0.0.1", 0, handler)
        self.tunnel_port = int(port)
        return self.tunnel_port


def _copy(read: Callable[[int], bytes], target: BinaryIO) -> None:
    with contextlib.suppress(Exception):
        while True:
            chunk = read(65536)
            if not chunk:
                break
            target.write(chunk)
            target.flush()


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
