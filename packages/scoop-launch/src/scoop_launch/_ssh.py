"""Starting workers on other hosts over ssh (paramiko): one connection and one agent per host.

``~/.ssh/config`` (or ``--ssh-config``) gives HostName, User, Port, IdentityFile and
UserKnownHostsFile; keys and the ssh agent are used. Host keys are checked against known_hosts;
an unknown key is refused unless ``--ssh-accept-unknown-host-keys`` is given. Every failure to reach
a host is a RemoteHostError that names the host and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import socket
import threading
from collections.abc import Callable
from typing import Any

import paramiko

from scoop_launch._agentlink import AgentLink, tcp_keepalive
from scoop_launch._options import CONNECT_TIMEOUT, RemoteHostError, SshOptions
from scoop_launch._starters import agent_command, remote_shell_failure

__all__ = ["Connections", "RemoteHostError", "SshAgent", "SshOptions", "connect", "resolve"]


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
    transport.set_keepalive(max(1, int(seconds / 3)))
    tcp_keepalive(transport.sock, seconds)


def _refused_our_keys(client: paramiko.SSHClient) -> bool:
    """True if the connection got as far as authentication and no key was accepted."""
    transport = client.get_transport()
    return transport is not None and transport.is_active() and not transport.is_authenticated()


class SshAgent(AgentLink):
    """The agent on one remote host, started over ssh, seen from the launcher."""

    via = "ssh"

    def __init__(
        self, host: str, client: paramiko.SSHClient, options: SshOptions, indices: list[int]
    ) -> None:
        super().__init__(host, indices)
        self.client = client
        self.options = options
        transport = client.get_transport()
        try:
            if transport is None:
                raise paramiko.SSHException("the connection is closed")
            self.channel = transport.open_session()
            self.channel.exec_command(agent_command(options))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteHostError(f"host {host}: cannot start the agent over ssh: {exc}") from exc

    def _send(self, data: bytes) -> None:
        self.channel.sendall(data)

    def _recv(self, size: int, timeout: float | None = None) -> bytes:
        if timeout is None:
            return bytes(self.channel.recv(size))
        self.channel.settimeout(timeout)
        try:
            return bytes(self.channel.recv(size))
        finally:
            self.channel.settimeout(None)

    def _recv_err(self, size: int) -> bytes:
        return bytes(self.channel.recv_stderr(size))

    def _failure_cause(self, status: int, errors: str) -> str | None:
        return remote_shell_failure(status, errors, self.options)

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the remote command to end."""
        return bool(self.channel.status_event.wait(timeout))

    def exit_status(self) -> int | None:
        """The agent's exit status (-1 if the connection broke), None while it runs."""
        if not self.channel.exit_status_ready():
            return None
        return int(self.channel.recv_exit_status())

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
