"""The books of the test networks: which runs exist, who owns them, how they end.

A :class:`Family` is one kind of test network (the ssh hosts of :mod:`netns`, the SLURM cluster
of :mod:`slurm`) with name prefixes of its own; a *run* is one network of a family, named by a
runid of 6 hex digits. Everything a run creates is named ``<prefix><runid>...`` and recorded
first in a state file naming its owner process, so that :meth:`Family.cleanup_stale` can remove
what a crashed run left without touching a live one. Creation, teardown and stale cleanup hold
the machine-wide lock of :func:`_netbase.locked`.

Live runs are torn down from ``atexit`` and, where SIGTERM had its default action, from a
SIGTERM handler (a CI timeout or ``kill`` skips ``atexit``). :func:`command_line` is the
``up``/``cleanup`` command line of :mod:`netns` and :mod:`slurm`.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._netbase import (
    SUPERNET,
    HostSetupError,
    free_subnet,
    kill_recorded,
    link_names,
    locked,
    netns_list,
    proc_start_time,
    remove,
)

_RUNID_RE = re.compile(r"^[0-9a-f]{6}$")


@dataclass(frozen=True)
class Claim:
    """What :meth:`Family.claim` reserved for a new run."""

    runid: str
    subnet: ipaddress.IPv4Network
    namespaces: list[str]
    bridge: str
    workdir: Path


@dataclass(frozen=True)
class Family:
    """The names and state files of one kind of test network.

    A run's namespaces are ``<ns_prefix><runid>-<X>`` (``X`` matching ``ns_suffix``), its bridge
    ``<bridge_prefix><runid>``, its root-side veths ``<veth_prefix><runid><Y>`` (``Y`` matching
    ``veth_suffix``; at most 15 characters in all), its temp dir
    ``$TMPDIR/<tmp_prefix><runid>-...`` and its state file ``<state_dir>/<runid>.json``.
    """

    ns_prefix: str
    ns_suffix: str
    bridge_prefix: str
    veth_prefix: str
    veth_suffix: str
    tmp_prefix: str
    state_dir: Path

    def bridge(self, runid: str) -> str:
        """The bridge of run ``runid``."""
        return f"{self.bridge_prefix}{runid}"

    def veth(self, runid: str, suffix: str) -> str:
        """A root-side veth of run ``runid``."""
        return f"{self.veth_prefix}{runid}{suffix}"

    def namespace(self, runid: str, suffix: str) -> str:
        """A namespace of run ``runid``."""
        return f"{self.ns_prefix}{runid}-{suffix}"

    # ----- state files

    def state_path(self, runid: str) -> Path:
        """The state file of run ``runid``."""
        return self.state_dir / f"{runid}.json"

    def read_state(self, runid: str) -> dict[str, Any] | None:
        """The state of run ``runid``; None if there is none (or it is unreadable)."""
        try:
            data: dict[str, Any] = json.loads(self.state_path(runid).read_text())
        except (OSError, ValueError):
            return None
        return data

    def write_state(self, runid: str, **fields: Any) -> None:
        """Record run ``runid`` as owned by this process, with ``fields`` (whole-file replace)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {"owner_pid": os.getpid(), "owner_start": proc_start_time(os.getpid()), **fields}
        path = self.state_path(runid)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)  # a reader never sees half a file

    def update_state(self, runid: str, **fields: Any) -> None:
        """Add ``fields`` to the state of run ``runid`` (e.g. the processes it started)."""
        state = self.read_state(runid) or {}
        state.update(fields)
        state.pop("owner_pid", None)
        state.pop("owner_start", None)
        self.write_state(runid, **state)

    def claim(self, suffixes: Sequence[str], supernet: ipaddress.IPv4Network = SUPERNET) -> Claim:
        """Start a run: a new runid, a free /24, the state file, then a temp dir (0700).

        Call with the lock held, and build the bridge before letting it go. The state file
        comes first: it marks the runid taken and the run live. ``suffixes`` name the run's
        namespaces (see :meth:`namespace`).
        """
        runid = self.new_runid()
        namespaces = [self.namespace(runid, suffix) for suffix in suffixes]
        subnet = free_subnet(supernet)
        self.write_state(
            runid, subnet=str(subnet), namespaces=namespaces, bridge=self.bridge(runid)
        )
        try:
            workdir = Path(tempfile.mkdtemp(prefix=f"{self.tmp_prefix}{runid}-"))
        except BaseException:
            self.state_path(runid).unlink(missing_ok=True)
            raise
        return Claim(runid, subnet, namespaces, self.bridge(runid), workdir)

    def _live_runids(self) -> set[str]:
        live = set()
        if self.state_dir.is_dir():
            for path in self.state_dir.glob("*.json"):
                runid = path.stem
                if _RUNID_RE.match(runid) and _owner_alive(self.read_state(runid)):
                    live.add(runid)
        return live

    def new_runid(self, tries: int = 50) -> str:
        """A runid that no state file, namespace, link or temp dir of this machine uses yet.

        Call with the lock held: the state file written next claims it.
        """
        namespaces, links = " ".join(netns_list()), " ".join(link_names())
        tmp = Path(tempfile.gettempdir())
        for _ in range(tries):
            runid = secrets.token_hex(3)
            if (
                not self.state_path(runid).exists()
                and runid not in namespaces
                and runid not in links
                and not any(tmp.glob(f"{self.tmp_prefix}{runid}-*"))
            ):
                return runid
        raise HostSetupError(f"no unused runid in {tries} tries")

    # ----- stale runs

    def cleanup_stale(self) -> list[str]:
        """Remove the namespaces, links, temp dirs, processes and state files of this family's
        runs whose owner is gone; the names removed.

        A run's things are recognised by name; those of a run whose owning process still lives
        are left alone. Processes a run started outside its namespaces are killed only if its
        state file recorded them (``root_pids``) and they are still those processes.
        """
        with locked():
            return self.cleanup_stale_locked()

    def cleanup_stale_locked(self) -> list[str]:
        """:meth:`cleanup_stale`, for a caller that holds the lock."""
        live = self._live_runids()
        ns_re = re.compile(rf"^{re.escape(self.ns_prefix)}([0-9a-f]{{6}})-(?:{self.ns_suffix})$")
        link_re = re.compile(
            rf"^(?:{re.escape(self.bridge_prefix)}([0-9a-f]{{6}})"
            rf"|{re.escape(self.veth_prefix)}([0-9a-f]{{6}})(?:{self.veth_suffix}))$"
        )
        tmp_re = re.compile(rf"^{re.escape(self.tmp_prefix)}([0-9a-f]{{6}})-")
        namespaces = [n for n in netns_list() if (m := ns_re.match(n)) and m.group(1) not in live]
        links = []
        for link in link_names():
            m = link_re.match(link)
            if m and (m.group(1) or m.group(2)) not in live:
                links.append(link)
        tmp = Path(tempfile.gettempdir())
        dirs = [
            p
            for p in tmp.glob(f"{self.tmp_prefix}*")
            if (m := tmp_re.match(p.name)) and m.group(1) not in live
        ]
        stale_states = []
        if self.state_dir.is_dir():
            stale_states = [p for p in self.state_dir.glob("*.json") if p.stem not in live]
        for path in stale_states:
            kill_recorded((self.read_state(path.stem) or {}).get("root_pids", []))
        remove(namespaces, links, dirs)
        removed = namespaces + links + [str(p) for p in dirs]
        for path in stale_states:
            path.unlink(missing_ok=True)
            removed.append(str(path))
        return removed

    # ----- the end of a run

    def finish_run(
        self,
        runid: str,
        processes: Sequence[tuple[str, subprocess.Popen[bytes]]],
        namespaces: Iterable[str],
        links: Iterable[str],
        dirs: Iterable[str | Path],
    ) -> list[str]:
        """Remove run ``runid``: SIGKILL its ``(label, process)`` daemons all at once, then
        everything in its namespaces, then links, namespaces, dirs and state file.

        Returns the problems met (empty if all went away).
        """
        for _label, proc in processes:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with locked(required=False):
            problems = remove(namespaces, links, dirs)
            for label, proc in processes:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"{label} {proc.pid} did not exit")
            self.state_path(runid).unlink(missing_ok=True)
        return problems


def _owner_alive(state: dict[str, Any] | None) -> bool:
    if not state:
        return False
    pid, start = state.get("owner_pid"), state.get("owner_start")
    return isinstance(pid, int) and proc_start_time(pid) == start


# --------------------------------------------------------------------------- live runs


class _Run(Protocol):
    def teardown(self) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


#: The live runs of this process, by runid: torn down by the SIGTERM handler.
LIVE: dict[str, _Run] = {}


def register_live(runid: str, run: _Run) -> None:
    """Have ``run`` torn down at exit and on SIGTERM (see :func:`install_sigterm_handler`)."""
    atexit.register(run.teardown)
    LIVE[runid] = run
    install_sigterm_handler()


def unregister_live(runid: str, run: _Run) -> None:
    """Undo :func:`register_live` (its teardown is done)."""
    LIVE.pop(runid, None)
    atexit.unregister(run.teardown)


def _on_sigterm(signum: int, _frame: object) -> None:
    """Tear the live runs down, then die of the signal as if there had been no handler."""
    for live in list(LIVE.values()):
        with contextlib.suppress(Exception):
            live.teardown()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_sigterm_handler() -> None:
    """Make a plain SIGTERM (a CI timeout, ``kill``) tear the runs down too: it skips ``atexit``.

    Only where SIGTERM still has its default action and only from the main thread; a
    handler somebody else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


# --------------------------------------------------------------------------- command line


def command_line(
    argv: Sequence[str] | None,
    *,
    doc: str | None,
    what: str,
    create: Callable[[int], _Run],
    cleanup_stale: Callable[[], list[str]],
) -> int:
    """``up [-n N]``: create ``what`` of N, print it as JSON, tear it down when stdin closes
    (or at Ctrl-C); ``cleanup``: remove what crashed runs left behind, printing the names."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else "")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help=f"create {what}, print it as JSON, wait until stdin closes")
    up.add_argument("-n", type=int, default=3)
    sub.add_parser("cleanup", help="remove what crashed runs left behind")
    args = parser.parse_args(argv)
    if args.cmd == "cleanup":
        for name in cleanup_stale():
            print(name)
        return 0
    made = create(args.n)
    try:
        print(json.dumps(made.describe()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    finally:
        made.teardown()
    return 0
