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

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS_PREFIX = "scoop-"
BRIDGE_PREFIX = "scb-"
VETH_PREFIX = "scv"
TMP_PREFIX = "scoop-hosts-"
STATE_DIR = Path("/run/scoop-test-hosts")
SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")
SSHD = "/usr/sbin/sshd"
SSH_PORT = 22

_RUNID_RE = re.compile(r"^[0-9a-f]{6}$")
_NS_RE = re.compile(rf"^{re.escape(NS_PREFIX)}([0-9a-f]{{6}})-(h\d+|down)$")
_LINK_RE = re.compile(
    rf"^(?:{re.escape(BRIDGE_PREFIX)}([0-9a-f]{{6}})|{re.escape(VETH_PREFIX)}([0-9a-f]{{6}})(?:h\d+|dn))$"
)
_TMP_RE = re.compile(rf"^{re.escape(TMP_PREFIX)}([0-9a-f]{{6}})-")

HOST_OFFSET = 10  # h<i> is .(10+i)
DOWN_OFFSET = 9
UNREACHABLE_OFFSET = 250
MAX_HOSTS = UNREACHABLE_OFFSET - HOST_OFFSET


class HostSetupError(RuntimeError):
    """The test hosts could not be created (missing privileges or tools, or a daemon failed)."""


@dataclass(frozen=True)
class Host:
    """One test host: ``name`` is its ssh_config alias and its hostname inside the host."""

    name: str
    address: str
    namespace: str

    def __iter__(self) -> Iterator[str]:
        """Unpack as ``name, address``."""
        return iter((self.name, self.address))


# --------------------------------------------------------------------------- small helpers


def _run(argv: Sequence[str], *, timeout: float = 30, check: bool = True) -> str:
    """Run a command of the machinery; its stdout, or :class:`HostSetupError` with its stderr."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise HostSetupError(f"{argv[0]}: not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostSetupError(f"{' '.join(argv)}: no answer in {timeout}s") from exc
    if check and proc.returncode != 0:
        raise HostSetupError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
        )
    return proc.stdout


def _ip(*args: str, check: bool = True) -> str:
    return _run(["ip", *args], check=check)


def _wait_until(
    predicate: Callable[[], bool], deadline: float, *, first: float = 0.005, most: float = 0.1
) -> bool:
    """Poll ``predicate`` with a growing pause until it holds or ``deadline`` (monotonic) passes."""
    pause = first
    while True:
        if predicate():
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, most)


def _proc_start_time(pid: int) -> str | None:
    """The start time (clock ticks since boot) of ``pid``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat.rsplit(")", 1)[1].split()[19]


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def netns_list() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = _ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(namespace: str) -> list[int]:
    """Pids of the processes in ``namespace`` (``ip netns pids``); [] if it does not exist."""
    out = _run(["ip", "netns", "pids", namespace], check=False)
    return sorted(int(tok) for tok in out.split() if tok.isdigit())


def link_names() -> list[str]:
    """Names of the network interfaces of the root namespace."""
    out = _ip("-o", "link", "show", check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


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
    if not problems:
        probe = f"{NS_PREFIX}probe-{os.getpid()}"
        try:
            _ip("netns", "add", probe)
        except HostSetupError as exc:
            problems.append(f"ip netns unavailable: {exc}")
        else:
            _ip("netns", "del", probe, check=False)
    if problems:
        hint = ""
        if any("not found" in p for p in problems):
            hint = " (.ci/setup-test-hosts.sh installs the system packages)"
        if any("paramiko" in p for p in problems):
            hint += " (paramiko: uv pip install paramiko)"
        raise HostSetupError("cannot build the ssh test hosts: " + "; ".join(problems) + hint)


# --------------------------------------------------------------------------- state and locking


_PROCESS_LOCK = threading.RLock()
_lock_depth = 0
LOCK_TIMEOUT = 60.0


@contextlib.contextmanager
def _locked(*, required: bool = True) -> Iterator[None]:
    """Serialise creation, teardown and stale cleanup between processes on this machine.

    Re-entrant within this process (a failed setup tears down while holding it; a SIGTERM
    handler may tear down while the main thread holds it). Waits at most
    :data:`LOCK_TIMEOUT`; then raises, or goes on unlocked if not ``required`` (teardown).
    """
    global _lock_depth
    with _PROCESS_LOCK:
        if _lock_depth:
            _lock_depth += 1
            try:
                yield
            finally:
                _lock_depth -= 1
            return
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with open(STATE_DIR / ".lock", "w") as lock:

            def take() -> bool:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            held = _wait_until(take, time.monotonic() + LOCK_TIMEOUT, most=0.05)
            if not held and required:
                raise HostSetupError(f"{STATE_DIR / '.lock'}: still held after {LOCK_TIMEOUT}s")
            _lock_depth = 1
            try:
                yield
            finally:
                _lock_depth = 0
                if held:
                    fcntl.flock(lock, fcntl.LOCK_UN)


def _state_path(runid: str) -> Path:
    return STATE_DIR / f"{runid}.json"


def _read_state(runid: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_path(runid).read_text())
    except (OSError, ValueError):
        return None
    return data


def _owner_alive(state: dict[str, Any] | None) -> bool:
    if not state:
        return False
    pid, start = state.get("owner_pid"), state.get("owner_start")
    return isinstance(pid, int) and _proc_start_time(pid) == start


def _live_runids() -> set[str]:
    live = set()
    if STATE_DIR.is_dir():
        for path in STATE_DIR.glob("*.json"):
            runid = path.stem
            if _RUNID_RE.match(runid) and _owner_alive(_read_state(runid)):
                live.add(runid)
    return live


# --------------------------------------------------------------------------- killing and removal


def _kill_namespace_processes(namespace: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process in ``namespace`` until none is left; the pids still there after."""

    def gone() -> bool:
        pids = netns_pids(namespace)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return not pids

    _wait_until(gone, time.monotonic() + timeout)
    return netns_pids(namespace)


def _remove(
    namespaces: Iterable[str], links: Iterable[str], dirs: Iterable[str | Path]
) -> list[str]:
    """Kill the namespaces' processes, delete links, namespaces and dirs; what went wrong.

    The root-side veths are deleted by name before the namespaces: the kernel removes a
    namespace's devices asynchronously, so relying on that leaves them listed for a while.
    """
    problems = []
    namespaces, links = list(namespaces), list(links)
    for ns in namespaces:
        left = _kill_namespace_processes(ns)
        if left:
            problems.append(f"{ns}: processes left {left}")
    present = set(link_names())
    for link in links:
        if link in present:
            # A veth may vanish meanwhile with its peer: what is still there is checked below.
            _ip("link", "del", link, check=False)
    existing = set(netns_list())
    for ns in namespaces:
        if ns in existing:
            try:
                _ip("netns", "del", ns)
            except HostSetupError as exc:
                problems.append(str(exc))

    def gone() -> bool:
        return not set(links) & set(link_names()) and not set(namespaces) & set(netns_list())

    if not _wait_until(gone, time.monotonic() + 5):
        still = sorted((set(links) & set(link_names())) | (set(namespaces) & set(netns_list())))
        problems.append(f"still there: {', '.join(still)}")
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
        if Path(path).exists():
            problems.append(f"{path}: could not be removed")
    return problems


def _veth_name(runid: str, host: str) -> str:
    """The root-side veth of ``host`` (``h<i>`` or ``down``); at most 15 characters."""
    return f"{VETH_PREFIX}{runid}{'dn' if host == 'down' else host}"


def cleanup_stale() -> list[str]:
    """Remove the namespaces, links, temp dirs and state files of runs whose owner is gone.

    A run's things are recognised by name (``scoop-<runid>-...``, ``scb-<runid>``,
    ``scv<runid>...``, ``$TMPDIR/scoop-hosts-<runid>-...``); those of a run whose owning process
    still lives are left alone. Returns the names removed.
    """
    with _locked():
        return _cleanup_stale_locked()


def _cleanup_stale_locked() -> list[str]:
    live = _live_runids()
    removed: list[str] = []
    namespaces = [ns for ns in netns_list() if (m := _NS_RE.match(ns)) and m.group(1) not in live]
    links = []
    for link in link_names():
        m = _LINK_RE.match(link)
        if m and (m.group(1) or m.group(2)) not in live:
            links.append(link)
    tmp = Path(tempfile.gettempdir())
    dirs = [
        p
        for p in tmp.glob(f"{TMP_PREFIX}*")
        if (m := _TMP_RE.match(p.name)) and m.group(1) not in live
    ]
    _remove(namespaces, links, dirs)
    removed += namespaces + links + [str(p) for p in dirs]
    if STATE_DIR.is_dir():
        for path in STATE_DIR.glob("*.json"):
            if path.stem not in live:
                path.unlink(missing_ok=True)
                removed.append(str(path))
    return removed


# --------------------------------------------------------------------------- addresses


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for line in _ip("-4", "-o", "addr", "show", check=False).splitlines():
        m = re.search(r"\binet (\S+)", line)
        if m:
            nets.append(ipaddress.ip_interface(m.group(1)).network)
    for line in _ip("-4", "route", "show", "table", "all", check=False).splitlines():
        tok = line.split()
        if tok and tok[0] in {"local", "broadcast", "unicast", "blackhole", "unreachable"}:
            tok = tok[1:]
        if not tok or tok[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(tok[0], strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for subnet in SUPERNET.subnets(new_prefix=24):
        if subnet.network_address == SUPERNET.network_address:
            continue
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise HostSetupError(f"no free /24 in {SUPERNET}: every one overlaps an address or route")


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
        _LIVE.pop(self.runid, None)
        start = time.monotonic()
        for daemon in self._daemons.values():
            with contextlib.suppress(ProcessLookupError):
                daemon.proc.kill()
        with _locked(required=False):
            links = [_veth_name(self.runid, ns.rsplit("-", 1)[1]) for ns in self._namespaces]
            problems = _remove(self._namespaces, [*links, self.bridge], [self.workdir])
            for daemon in self._daemons.values():
                try:
                    daemon.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"sshd {daemon.proc.pid} did not exit")
            _state_path(self.runid).unlink(missing_ok=True)
        atexit.unregister(self.teardown)
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
    )


def _tcp_ready(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


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
    runid = ""
    namespaces: list[str] = []
    bridge = ""
    workdir: Path | None = None
    th: TestHosts | None = None
    try:
        with _locked():
            _cleanup_stale_locked()
            runid = _new_runid()
            bridge = f"{BRIDGE_PREFIX}{runid}"
            down_ns = f"{NS_PREFIX}{runid}-down"
            hosts_ns = [f"{NS_PREFIX}{runid}-h{i}" for i in range(n)]
            namespaces = [*hosts_ns, down_ns]
            subnet = _free_subnet()
            base = subnet.network_address
            # The state file first (it marks the run live and the runid taken), then what it
            # names.
            _state_path(runid).write_text(
                json.dumps(
                    {
                        "owner_pid": os.getpid(),
                        "owner_start": _proc_start_time(os.getpid()),
                        "subnet": str(subnet),
                        "namespaces": namespaces,
                        "bridge": bridge,
                    }
                )
            )
            workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{runid}-"))
            hosts = [Host(f"h{i}", str(base + HOST_OFFSET + i), hosts_ns[i]) for i in range(n)]
            down = Host("down", str(base + DOWN_OFFSET), down_ns)
            th = TestHosts(
                runid=runid,
                hosts=hosts,
                workdir=workdir,
                ssh_config=workdir / "ssh_config",
                known_hosts=workdir / "known_hosts",
                client_key=workdir / "id_ed25519",
                bridge=bridge,
                bridge_address=str(base + 1),
                subnet=str(subnet),
                down_address=down.address,
                unreachable_address=str(base + UNREACHABLE_OFFSET),
                wrong_known_hosts=workdir / "known_hosts.wrong",
                _namespaces=namespaces,
            )
            atexit.register(th.teardown)
            _LIVE[runid] = th
            _install_sigterm_handler()
            _build_network(th, [*hosts, down], subnet.prefixlen)
        _write_keys_and_configs(th)
        _start_daemons(th)
        _wait_ready(th, time.monotonic() + ready_timeout)
    except BaseException:
        if th is not None:
            th.teardown()
        elif runid and _state_path(runid).exists():
            with _locked(required=False):
                links = [_veth_name(runid, ns.rsplit("-", 1)[1]) for ns in namespaces]
                _remove(namespaces, [*links, bridge], [workdir] if workdir else [])
                _state_path(runid).unlink(missing_ok=True)
        raise
    th.setup_seconds = time.monotonic() - start
    return th


_LIVE: dict[str, TestHosts] = {}


def _new_runid(tries: int = 50) -> str:
    """A runid that no state file, namespace, link or temp dir of this machine uses yet.

    Call with the lock held: the state file written next claims it.
    """
    namespaces, links = " ".join(netns_list()), " ".join(link_names())
    tmp = Path(tempfile.gettempdir())
    for _ in range(tries):
        runid = secrets.token_hex(3)
        if (
            not _state_path(runid).exists()
            and runid not in namespaces
            and runid not in links
            and not any(tmp.glob(f"{TMP_PREFIX}{runid}-*"))
        ):
            return runid
    raise HostSetupError(f"no unused runid in {tries} tries")


def _on_sigterm(signum: int, _frame: object) -> None:
    """Tear the live sets down, then die of the signal as if there had been no handler."""
    for th in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            th.teardown()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_sigterm_handler() -> None:
    """Make a plain SIGTERM (a CI timeout, ``kill``) tear the hosts down too: it skips ``atexit``.

    Only where SIGTERM still has its default action and only from the main thread; a
    handler somebody else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _build_network(th: TestHosts, hosts: list[Host], prefixlen: int) -> None:
    _ip("link", "add", th.bridge, "type", "bridge")
    _ip("addr", "add", f"{th.bridge_address}/{prefixlen}", "dev", th.bridge)
    _ip("link", "set", th.bridge, "up")
    for h in hosts:
        ns = h.namespace
        veth = _veth_name(th.runid, h.name)
        _ip("netns", "add", ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", veth, "master", th.bridge, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{h.address}/{prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
    # Safety: every address of the set must be routed onto our bridge, never off the machine.
    for addr in [*(h.address for h in hosts), th.unreachable_address]:
        route = _ip("-4", "route", "get", addr)
        if f"dev {th.bridge} " not in route + " ":
            raise HostSetupError(f"{addr} is not routed to {th.bridge}: {route.strip()}")


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
            return _tcp_ready(h.address, SSH_PORT)

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
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create a set, print it as JSON, wait until stdin closes")
    up.add_argument("-n", type=int, default=3)
    sub.add_parser("cleanup", help="remove what crashed runs left behind")
    args = parser.parse_args(argv)
    if args.cmd == "cleanup":
        for name in cleanup_stale():
            print(name)
        return 0
    th = create_hosts(args.n)
    try:
        print(json.dumps(th.describe()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    finally:
        th.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
