"""Several real ssh hosts on this machine, each in its own network namespace.

Layout of one set (``runid`` is 6 random hex digits)::

    root namespace                         namespace scoop-<runid>-h<i> (hostname h<i>)
    bridge scb-<runid>  10.213.K.1/24 ---- veth scv<runid>h<i> <-> eth0 10.213.K.(10+i)/24
                                                                   sshd on :22
                                      ---- veth scv<runid>dn   <-> eth0 10.213.K.9 ("down":
                                                                   nothing listens)
    10.213.K.250: "unreachable", on the bridge's subnet but assigned to nobody.

The hosts have no default route, so nothing they send can leave the bridge. ``K`` is the first
``10.213.K.0/24`` that no address or route on this machine overlaps.

Everything a set creates is written first to a state file in :data:`STATE_DIR` naming its owner
process, so :func:`cleanup_stale` can remove what a crashed run left behind without touching a
live run's set. :meth:`TestHosts.teardown` runs from the fixture's finaliser and from ``atexit``.

Needs root, ``ip`` (iproute2) with ``ip netns``, ``unshare``/``nsenter`` (util-linux),
``/usr/sbin/sshd`` and ``ssh-keygen`` (OpenSSH) and paramiko: ``.ci/setup-test-hosts.sh``
installs the system packages. Without them :func:`create_hosts` raises :class:`HostSetupError`.

Also a command line, for trying things by hand::

    python tests/hosts/netns.py up [-n 3]    # create a set, print it as JSON, wait for Ctrl-C
    python tests/hosts/netns.py cleanup      # remove what crashed runs left behind
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: import the siblings below as the package "hosts"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "hosts"

from ._netbase import (
    LOCK_TIMEOUT,
    SUPERNET,
    Host,
    HostSetupError,
    build_network,
    cmdline,
    link_names,
    netns_list,
    netns_pids,
    netns_problem,
    tcp_ready,
)
from ._netbase import ip as _ip
from ._netbase import kill_pids as _kill_pids
from ._netbase import locked as _locked
from ._netbase import run as _run
from ._netbase import wait_until as _wait_until
from ._runs import LIVE, Claim, Family, command_line, register_live, unregister_live

__all__ = [
    "LOCK_TIMEOUT",
    "SUPERNET",
    "Host",
    "HostSetupError",
    "TestHosts",
    "check_prerequisites",
    "cleanup_stale",
    "create_hosts",
    "link_names",
    "netns_list",
    "netns_pids",
    "ssh_exec",
]

_LIVE = LIVE  # the live sets (the tests look into it)
_cmdline = cmdline  # the tests use it

NS_PREFIX = "scoop-"
BRIDGE_PREFIX = "scb-"
VETH_PREFIX = "scv"
TMP_PREFIX = "scoop-hosts-"
STATE_DIR = Path("/run/scoop-test-hosts")
SSHD = "/usr/sbin/sshd"
SSH_PORT = 22

#: The names and state files of the ssh hosts' runs.
FAMILY = Family(
    ns_prefix=NS_PREFIX,
    ns_suffix=r"h\d+|down",
    bridge_prefix=BRIDGE_PREFIX,
    veth_prefix=VETH_PREFIX,
    veth_suffix=r"h\d+|dn",
    tmp_prefix=TMP_PREFIX,
    state_dir=STATE_DIR,
)

HOST_OFFSET = 10  # h<i> is .(10+i)
DOWN_OFFSET = 9
UNREACHABLE_OFFSET = 250
MAX_HOSTS = UNREACHABLE_OFFSET - HOST_OFFSET


def check_prerequisites() -> None:
    """Raise :class:`HostSetupError` saying what is missing to build test hosts here."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"must run as root (euid is {os.geteuid()})")
    for tool in ("ip", "unshare", "nsenter", "ssh-keygen", "hostname"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH")
    if not os.access(SSHD, os.X_OK):
        problems.append(f"{SSHD} not found (the openssh-server package)")
    try:
        import paramiko  # noqa: F401
    except ImportError:
        problems.append("paramiko is not installed")
    if not problems and (problem := netns_problem(f"{NS_PREFIX}probe-{os.getpid()}")):
        problems.append(problem)
    if problems:
        hint = ""
        if any("not found" in p for p in problems):
            hint = " (.ci/setup-test-hosts.sh installs the system packages)"
        if any("paramiko" in p for p in problems):
            hint += " (paramiko: uv pip install paramiko)"
        raise HostSetupError("cannot build the ssh test hosts: " + "; ".join(problems) + hint)


def _veth_name(runid: str, host: str) -> str:
    """The root-side veth of ``host`` (``h<i>`` or ``down``); at most 15 characters."""
    return FAMILY.veth(runid, "dn" if host == "down" else host)


def cleanup_stale() -> list[str]:
    """Remove the namespaces, links, temp dirs and state files of runs whose owner is gone.

    A run's things are recognised by name (``scoop-<runid>-...``, ``scb-<runid>``,
    ``scv<runid>...``, ``$TMPDIR/scoop-hosts-<runid>-...``); those of a run whose owning process
    still lives are left alone. Returns the names removed.
    """
    return FAMILY.cleanup_stale()


# --------------------------------------------------------------------------- the set of hosts


@dataclass
class _Daemon:
    host: Host
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class TestHosts:
    """A set of test hosts; made by :func:`create_hosts`, removed by :meth:`teardown`."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    runid: str
    hosts: list[Host]
    workdir: Path
    ssh_config: Path
    known_hosts: Path
    client_key: Path
    bridge: str
    bridge_address: str
    subnet: str
    down_address: str
    unreachable_address: str
    wrong_known_hosts: Path
    setup_seconds: float = 0.0
    teardown_seconds: float = 0.0
    _host_keys: dict[str, str] = field(default_factory=dict, repr=False)
    _impostor_key: str = field(default="", repr=False)
    _daemons: dict[str, _Daemon] = field(default_factory=dict, repr=False)
    _namespaces: list[str] = field(default_factory=list, repr=False)
    _torn_down: bool = field(default=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # ----- lookup

    @property
    def names(self) -> list[str]:
        """The host names, ``["h0", "h1", ...]``."""
        return [h.name for h in self.hosts]

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of this set, the down host's included."""
        return list(self._namespaces)

    @property
    def down_namespace(self) -> str:
        return f"{NS_PREFIX}{self.runid}-down"

    def host(self, host: Host | str) -> Host:
        """The :class:`Host` named ``host`` (``"h0"``, or its address); a Host is returned as is."""
        if isinstance(host, Host):
            return host
        for h in self.hosts:
            if host in {h.name, h.address, h.namespace}:
                return h
        if host in {"down", self.down_address, self.down_namespace}:
            return Host("down", self.down_address, self.down_namespace)
        raise KeyError(f"no test host {host!r}; there are {self.names} and 'down'")

    def sshd_pid(self, host: Host | str) -> int:
        """The pid of the host's listening sshd."""
        return self._daemons[self.host(host).name].proc.pid

    def sshd_log(self, host: Host | str) -> str:
        """What the host's sshd wrote (``sshd -e``), for failure messages."""
        return self._daemons[self.host(host).name].log.read_text(errors="replace")

    # ----- running things on a host

    def run(
        self,
        host: Host | str,
        cmd: str | Sequence[str],
        *,
        timeout: float = 30,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on ``host`` (``ip netns exec``, and in its UTS namespace): text output.

        ``cmd`` is a shell command line if a string, else an argv. Not over ssh: this is the
        back door, for preparing or inspecting a host.
        """
        h = self.host(host)
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        prefix = ["ip", "netns", "exec", h.namespace]
        if h.name in self._daemons:
            prefix += ["nsenter", "--target", str(self.sshd_pid(h)), "--uts", "--"]
        return subprocess.run(
            prefix + argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def processes_in(self, host: Host | str, *, include_sshd: bool = False) -> list[int]:
        """Pids of the processes running on ``host`` (its network namespace).

        The host's listening sshd is left out unless ``include_sshd``; what an ssh session
        started (its ``sshd: root@...`` process, shells, workers) is in.
        """
        h = self.host(host)
        pids = netns_pids(h.namespace)
        if not include_sshd and h.name in self._daemons:
            pids = [p for p in pids if p != self.sshd_pid(h)]
        return pids

    def describe_processes(self, host: Host | str, *, include_sshd: bool = False) -> str:
        """``pid cmdline`` lines of :meth:`processes_in`, for assertion messages."""
        pids = self.processes_in(host, include_sshd=include_sshd)
        return "\n".join(f"{pid} {_cmdline(pid)}" for pid in pids) or "(none)"

    def wait_no_processes(self, host: Host | str, timeout: float = 10.0) -> list[int]:
        """Wait until :meth:`processes_in` is empty; the pids still there after ``timeout``."""
        _wait_until(lambda: not self.processes_in(host), time.monotonic() + timeout)
        return self.processes_in(host)

    def kill_leftovers(self) -> None:
        """SIGKILL what runs on the hosts (their listening sshd is kept)."""
        for name in [*self.names, "down"]:
            _kill_pids(self.processes_in(name))
        self.leftover_processes(timeout=5)

    def leftover_processes(self, timeout: float = 10.0) -> dict[str, list[int]]:
        """Wait for every host to be empty; ``{name: pids}`` of those that are not."""
        deadline = time.monotonic() + timeout
        names = [*self.names, "down"]
        _wait_until(lambda: not any(self.processes_in(n) for n in names), deadline)
        return {n: pids for n in names if (pids := self.processes_in(n))}

    # ----- ssh configuration variants

    @contextlib.contextmanager
    def cut_off(self, host: Host | str) -> Iterator[None]:
        """Take ``host``'s link down (its packets vanish: no reset, no error), then back up."""
        veth = _veth_name(self.runid, self.host(host).name)
        _ip("link", "set", veth, "down")
        try:
            yield
        finally:
            _ip("link", "set", veth, "up")

    def known_hosts_variant(
        self, *, wrong_key: Iterable[str] = (), missing: Iterable[str] = (), name: str = ""
    ) -> Path:
        """A known_hosts file where the hosts in ``wrong_key`` have another key, ``missing``
        have no entry; the others their true key."""
        wrong, gone = set(wrong_key), set(missing)
        for n in wrong | gone:
            self.host(n)
        lines = []
        for h in self.hosts:
            if h.name in gone:
                continue
            key = self._impostor_key if h.name in wrong else self._host_keys[h.name]
            lines.append(f"{h.name},{h.address} {key}\n")
        label = name or f"w{'-'.join(sorted(wrong))}_m{'-'.join(sorted(gone))}"
        path = self.workdir / f"known_hosts.{label}"
        path.write_text("".join(lines))
        return path

    def write_ssh_config(self, path: Path, *, known_hosts: Path | None = None) -> Path:
        """Write an ssh_config for the hosts, using ``known_hosts`` (default: the true one)."""
        kh = known_hosts or self.known_hosts
        blocks = [f"Host {h.name}\n    HostName {h.address}\n" for h in self.hosts]
        blocks.append(f"Host down\n    HostName {self.down_address}\n")
        blocks.append(f"Host unreachable\n    HostName {self.unreachable_address}\n")
        blocks.append(
            "Host *\n"
            "    User root\n"
            f"    Port {SSH_PORT}\n"
            f"    IdentityFile {self.client_key}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {kh}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    PasswordAuthentication no\n"
            "    ConnectTimeout 5\n"
        )
        path.write_text("".join(blocks))
        return path

    def ssh_config_variant(
        self, *, wrong_key: Iterable[str] = (), missing: Iterable[str] = ()
    ) -> Path:
        """An ssh_config whose known_hosts has wrong keys for ``wrong_key``, none for
        ``missing`` (see :meth:`known_hosts_variant`)."""
        kh = self.known_hosts_variant(wrong_key=wrong_key, missing=missing)
        return self.write_ssh_config(
            kh.with_name(kh.name.replace("known_hosts", "ssh_config")), known_hosts=kh
        )

    def ssh_argv(self, host: Host | str, *command: str, config: Path | None = None) -> list[str]:
        """An OpenSSH client command line for ``host`` (if the ``ssh`` client is wanted)."""
        return ["ssh", "-F", str(config or self.ssh_config), self.host(host).name, *command]

    # ----- teardown

    def teardown(self) -> list[str]:
        """Kill everything on the hosts, delete namespaces, links and files. Idempotent.

        Returns the problems met (empty if all went away).
        """
        with self._lock:
            if self._torn_down:
                return []
            self._torn_down = True
        unregister_live(self.runid, self)
        start = time.monotonic()
        problems = FAMILY.finish_run(
            self.runid,
            [("sshd", daemon.proc) for daemon in self._daemons.values()],
            self._namespaces,
            [*_links(self.runid, self._namespaces), self.bridge],
            [self.workdir],
        )
        self.teardown_seconds = time.monotonic() - start
        return problems

    def __enter__(self) -> TestHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def describe(self) -> dict[str, Any]:
        """The set as plain data (what ``netns.py up`` prints)."""
        return {
            "runid": self.runid,
            "hosts": [
                {"name": h.name, "address": h.address, "namespace": h.namespace} for h in self.hosts
            ],
            "namespaces": self.namespaces,
            "bridge": self.bridge,
            "bridge_address": self.bridge_address,
            "down_address": self.down_address,
            "unreachable_address": self.unreachable_address,
            "ssh_config": str(self.ssh_config),
            "known_hosts": str(self.known_hosts),
            "client_key": str(self.client_key),
            "workdir": str(self.workdir),
            "sshd_pids": {n: d.proc.pid for n, d in self._daemons.items()},
            "setup_seconds": round(self.setup_seconds, 3),
        }


# --------------------------------------------------------------------------- creation


def _keygen(path: Path, comment: str) -> str:
    """Make an ed25519 key pair at ``path``; its public line ``ssh-ed25519 AAAA...``."""
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _sshd_config(host: Host, hostdir: Path, authorized_keys: Path) -> str:
    return (
        f"ListenAddress {host.address}:{SSH_PORT}\n"
        f"HostKey {hostdir / 'ssh_host_ed25519_key'}\n"
        f"PidFile {hostdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "StrictModes no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n"
        "AllowTcpForwarding yes\n"
        "MaxStartups 100:30:200\n"
        "MaxSessions 100\n"
        "LoginGraceTime 30\n"
        # A session whose client vanished ends once its link is back (as on a real cluster).
        "ClientAliveInterval 2\n"
        "ClientAliveCountMax 3\n"
        "LogLevel VERBOSE\n"
        "Subsystem sftp internal-sftp\n"
        # Every login runs the user's ~/.bashrc; one that starts pyenv rehashes under a lock
        # file, and a shell killed while it held it left it behind: every later login then
        # waited 60 s for it (PYENV_REHASH_TIMEOUT), and the ssh tests failed one after another.
        "SetEnv PYENV_REHASH_TIMEOUT=0\n"
    )


def ssh_exec(
    address: str,
    command: str,
    *,
    client_key: Path,
    known_hosts: Path,
    timeout: float = 10.0,
) -> tuple[int, str, str]:
    """Run ``command`` over a real ssh login with paramiko, checking the host key strictly.

    Returns ``(exit status, stdout, stderr)``; raises paramiko's errors (e.g.
    ``BadHostKeyException``) as they come.
    """
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address,
            port=SSH_PORT,
            username="root",
            key_filename=str(client_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read().decode()
        err = stderr.read().decode()
        status = stdout.channel.recv_exit_status()
        return status, out, err
    finally:
        client.close()


def create_hosts(n: int = 3, *, ready_timeout: float = 15.0) -> TestHosts:
    """Build ``n`` ssh hosts ``h0..h<n-1>`` plus the "down" host; ready for logins on return.

    Removes first what crashed earlier runs left (:func:`cleanup_stale`). Raises
    :class:`HostSetupError` if this machine cannot (not root, no ``ip netns``, no sshd) or a
    host does not come up; whatever was built by then is removed again.
    """
    if not 1 <= n <= MAX_HOSTS:
        raise ValueError(f"n must be in 1..{MAX_HOSTS}")
    start = time.monotonic()
    check_prerequisites()
    claim: Claim | None = None
    th: TestHosts | None = None
    try:
        with _locked():
            FAMILY.cleanup_stale_locked()
            claim = FAMILY.claim([*(f"h{i}" for i in range(n)), "down"], SUPERNET)
            runid, namespaces, workdir = claim.runid, claim.namespaces, claim.workdir
            hosts_ns, down_ns = namespaces[:-1], namespaces[-1]
            base = claim.subnet.network_address
            hosts = [Host(f"h{i}", str(base + HOST_OFFSET + i), hosts_ns[i]) for i in range(n)]
            down = Host("down", str(base + DOWN_OFFSET), down_ns)
            th = TestHosts(
                runid=runid,
                hosts=hosts,
                workdir=workdir,
                ssh_config=workdir / "ssh_config",
                known_hosts=workdir / "known_hosts",
                client_key=workdir / "id_ed25519",
                bridge=claim.bridge,
                bridge_address=str(base + 1),
                subnet=str(claim.subnet),
                down_address=down.address,
                unreachable_address=str(base + UNREACHABLE_OFFSET),
                wrong_known_hosts=workdir / "known_hosts.wrong",
                _namespaces=namespaces,
            )
            register_live(runid, th)
            _build_network(th, [*hosts, down], claim.subnet.prefixlen)
        _write_keys_and_configs(th)
        _start_daemons(th)
        _wait_ready(th, time.monotonic() + ready_timeout)
    except BaseException:
        if th is not None:
            th.teardown()
        elif claim is not None:
            links = [*_links(claim.runid, claim.namespaces), claim.bridge]
            FAMILY.finish_run(claim.runid, [], claim.namespaces, links, [claim.workdir])
        raise
    th.setup_seconds = time.monotonic() - start
    return th


def _links(runid: str, namespaces: Iterable[str]) -> list[str]:
    """The root-side veths of a set's namespaces."""
    return [_veth_name(runid, ns.rsplit("-", 1)[1]) for ns in namespaces]


def _build_network(th: TestHosts, hosts: list[Host], prefixlen: int) -> None:
    members = [(_veth_name(th.runid, h.name), h.namespace, h.address) for h in hosts]
    build_network(th.bridge, th.bridge_address, prefixlen, members, [th.unreachable_address])


def _write_keys_and_configs(th: TestHosts) -> None:
    client_pub = _keygen(th.client_key, f"scoop-test-client-{th.runid}")
    authorized = th.workdir / "authorized_keys"
    authorized.write_text(client_pub + "\n")
    th._impostor_key = _keygen(th.workdir / "impostor_ed25519", "impostor")
    for h in th.hosts:
        hostdir = th.workdir / h.name
        hostdir.mkdir()
        th._host_keys[h.name] = _keygen(hostdir / "ssh_host_ed25519_key", h.name)
        (hostdir / "sshd_config").write_text(_sshd_config(h, hostdir, authorized))
    th.known_hosts.write_text(
        "".join(f"{h.name},{h.address} {th._host_keys[h.name]}\n" for h in th.hosts)
    )
    th.known_hosts_variant(wrong_key=th.names, name="wrong")
    th.write_ssh_config(th.ssh_config)


def _start_daemons(th: TestHosts) -> None:
    # sshd refuses to start without its privilege-separation directory.
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    for h in th.hosts:
        hostdir = th.workdir / h.name
        config = hostdir / "sshd_config"
        log = hostdir / "sshd.log"
        # A UTS namespace of its own gives the host its hostname; `exec` keeps the pid sshd's.
        script = f'hostname "$1" && exec {SSHD} -D -e -f "$2"'
        argv = [
            "ip",
            "netns",
            "exec",
            h.namespace,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            h.name,
            str(config),
        ]
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        th._daemons[h.name] = _Daemon(h, proc, log)


def _wait_ready(th: TestHosts, deadline: float) -> None:
    for h in th.hosts:
        daemon = th._daemons[h.name]

        def up(h: Host = h, daemon: _Daemon = daemon) -> bool:
            if daemon.proc.poll() is not None:
                raise HostSetupError(
                    f"sshd of {h.name} exited {daemon.proc.returncode}: "
                    f"{daemon.log.read_text(errors='replace').strip()}"
                )
            return tcp_ready(h.address, SSH_PORT)

        if not _wait_until(up, deadline):
            raise HostSetupError(
                f"sshd of {h.name} ({h.address}:{SSH_PORT}) not accepting connections in time; "
                f"log: {th.sshd_log(h).strip()}"
            )
    # A real login on each, in parallel: host key checked, hostname is the host's own.
    errors: dict[str, str] = {}

    def login(h: Host) -> None:
        try:
            status, out, err = ssh_exec(
                h.address,
                "hostname",
                client_key=th.client_key,
                known_hosts=th.known_hosts,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except Exception as exc:
            errors[h.name] = f"{type(exc).__name__}: {exc}"
            return
        names = out.split()
        if status != 0 or not names or any(name != h.name for name in names):
            errors[h.name] = f"exit {status}, stdout {out!r}, stderr {err!r}"

    threads = [threading.Thread(target=login, args=(h,)) for h in th.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        hint = ""
        with contextlib.suppress(OSError):
            if Path("/etc/shadow").read_text().startswith("root:!"):
                hint = " (root's account is locked in /etc/shadow; with UsePAM no sshd refuses it)"
        detail = "; ".join(
            f"{name}: {msg}; sshd log: {th.sshd_log(name).strip()[-400:]}"
            for name, msg in sorted(errors.items())
        )
        raise HostSetupError(f"ssh login check failed{hint}: {detail}")


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``up`` (a set until stdin closes or Ctrl-C) or ``cleanup`` (of crashed runs)."""
    return command_line(
        argv, doc=__doc__, what="a set", create=create_hosts, cleanup_stale=cleanup_stale
    )


if __name__ == "__main__":
    sys.exit(main())
