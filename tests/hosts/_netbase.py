"""What the test networks of this folder share: commands, processes, network namespaces on a
private bridge, the free /24 they use, and the machine-wide lock.

:mod:`_runs` keeps the books of the networks built with this (state files, stale cleanup,
teardown at exit); :mod:`netns` (ssh hosts) and :mod:`slurm` (a SLURM cluster) build them.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The one lock of every kind of network: they pick their /24s from the same supernet. (The
#: ssh hosts' state directory holds it, as it always did.)
LOCK_PATH = Path("/run/scoop-test-hosts/.lock")
LOCK_TIMEOUT = 60.0
SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")


class HostSetupError(RuntimeError):
    """The test hosts could not be created (missing privileges or tools, or a daemon failed)."""


@dataclass(frozen=True)
class Host:
    """One machine of a test network: ``name`` is also its hostname inside its namespace."""

    name: str
    address: str
    namespace: str

    def __iter__(self) -> Iterator[str]:
        """Unpack as ``name, address``."""
        return iter((self.name, self.address))


# --------------------------------------------------------------------------- small helpers


def run(
    argv: Sequence[str],
    *,
    timeout: float = 30,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a command of the machinery; its stdout, or :class:`HostSetupError` with its stderr.

    ``env`` is the command's whole environment (default: this process's).
    """
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
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


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS...`` (iproute2); its stdout."""
    return run(["ip", *args], check=check)


def wait_until(
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


def proc_start_time(pid: int) -> str | None:
    """The start time (clock ticks since boot) of ``pid``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat.rsplit(")", 1)[1].split()[19]


def cmdline(pid: int) -> str:
    """The command line of ``pid`` as one string; ``?`` if it is gone or has none."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def netns_list() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(namespace: str) -> list[int]:
    """Pids of the processes in ``namespace`` (``ip netns pids``); [] if it does not exist."""
    out = run(["ip", "netns", "pids", namespace], check=False)
    return sorted(int(tok) for tok in out.split() if tok.isdigit())


def link_names() -> list[str]:
    """Names of the network interfaces of the root namespace."""
    out = ip("-o", "link", "show", check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def tcp_ready(address: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``address:port`` (within half a second)."""
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def netns_problem(probe: str) -> str | None:
    """Why a network namespace cannot be made here (tried with the name ``probe``), or None."""
    try:
        ip("netns", "add", probe)
    except HostSetupError as exc:
        return f"ip netns unavailable: {exc}"
    ip("netns", "del", probe, check=False)
    return None


# --------------------------------------------------------------------------- locking


_PROCESS_LOCK = threading.RLock()
_lock_depth = 0


@contextlib.contextmanager
def locked(*, required: bool = True) -> Iterator[None]:
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
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK_PATH, "w") as lock:

            def take() -> bool:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            held = wait_until(take, time.monotonic() + LOCK_TIMEOUT, most=0.05)
            if not held and required:
                raise HostSetupError(f"{LOCK_PATH}: still held after {LOCK_TIMEOUT}s")
            _lock_depth = 1
            try:
                yield
            finally:
                _lock_depth = 0
                if held:
                    fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- killing and removal


def kill_namespace_processes(namespace: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process in ``namespace`` until none is left; the pids still there after."""

    def gone() -> bool:
        pids = netns_pids(namespace)
        kill_pids(pids)
        return not pids

    wait_until(gone, time.monotonic() + timeout)
    return netns_pids(namespace)


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILL ``pids``, those already gone included."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_recorded(processes: Iterable[Sequence[Any]]) -> None:
    """SIGKILL the ``(pid, start time)`` pairs that are still those very processes."""
    for pid, start in processes:
        if isinstance(pid, int) and proc_start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def remove(
    namespaces: Iterable[str], links: Iterable[str], dirs: Iterable[str | Path]
) -> list[str]:
    """Kill the namespaces' processes, delete links, namespaces and dirs; what went wrong.

    The root-side veths are deleted by name before the namespaces: the kernel removes a
    namespace's devices asynchronously, so relying on that leaves them listed for a while.
    """
    problems = []
    namespaces, links = list(namespaces), list(links)
    for ns in namespaces:
        left = kill_namespace_processes(ns)
        if left:
            problems.append(f"{ns}: processes left {left}")
    present = set(link_names())
    for link in links:
        if link in present:
            # A veth may vanish meanwhile with its peer: what is still there is checked below.
            ip("link", "del", link, check=False)
    existing = set(netns_list())
    for ns in namespaces:
        if ns in existing:
            try:
                ip("netns", "del", ns)
            except HostSetupError as exc:
                problems.append(str(exc))

    def gone() -> bool:
        return not set(links) & set(link_names()) and not set(namespaces) & set(netns_list())

    if not wait_until(gone, time.monotonic() + 5):
        still = sorted((set(links) & set(link_names())) | (set(namespaces) & set(netns_list())))
        problems.append(f"still there: {', '.join(still)}")
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
        if Path(path).exists():
            problems.append(f"{path}: could not be removed")
    return problems


# --------------------------------------------------------------------------- addresses


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for line in ip("-4", "-o", "addr", "show", check=False).splitlines():
        m = re.search(r"\binet (\S+)", line)
        if m:
            nets.append(ipaddress.ip_interface(m.group(1)).network)
    for line in ip("-4", "route", "show", "table", "all", check=False).splitlines():
        tok = line.split()
        if tok and tok[0] in {"local", "broadcast", "unicast", "blackhole", "unreachable"}:
            tok = tok[1:]
        if not tok or tok[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(tok[0], strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def free_subnet(supernet: ipaddress.IPv4Network = SUPERNET) -> ipaddress.IPv4Network:
    """The first /24 of ``supernet`` (not its very first) that no address or route overlaps.

    Call with the lock held, and create the bridge before letting it go.
    """
    used = _used_networks()
    for subnet in supernet.subnets(new_prefix=24):
        if subnet.network_address == supernet.network_address:
            continue
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise HostSetupError(f"no free /24 in {supernet}: every one overlaps an address or route")


def build_network(
    bridge: str,
    bridge_address: str,
    prefixlen: int,
    members: Iterable[tuple[str, str, str]],
    also_routed: Iterable[str] = (),
) -> None:
    """Make ``bridge`` with ``bridge_address``, and a namespace per ``(veth, namespace,
    address)`` member, linked to it by a veth (``eth0`` inside), with no default route.

    Then checks that every member address and ``also_routed`` goes onto the bridge: nothing a
    test sends to them may leave the machine.
    """
    members = list(members)
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{bridge_address}/{prefixlen}", "dev", bridge)
    ip("link", "set", bridge, "up")
    for veth, ns, address in members:
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", bridge, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
    for addr in [*(address for _veth, _ns, address in members), *also_routed]:
        route = ip("-4", "route", "get", addr)
        if f"dev {bridge} " not in route + " ":
            raise HostSetupError(f"{addr} is not routed to {bridge}: {route.strip()}")
