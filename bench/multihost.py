"""Beyond one machine: SCOOP across ssh hosts (network namespaces), beside one host and raw TCP.

    python bench/multihost.py [--rounds 2] [--repeats 2] [--tiny 5000] [--map-tasks 50000]
                              [--latency 200] [--layouts NAME...] [--no-raw] [--budget 300]

Brings up the test suite's hosts (``tests/hosts/netns.py``: 3 network namespaces h0, h1, h2 on
a private bridge, each with its own sshd; needs root and openssh-server), once, and measures in
one run, each layout launched once with its repeats inside (``bench/_multihost_root.py``, every
layout with ``--root-runs-no-task``: the root submits and waits, every task goes to a worker;
``--rounds`` rounds of every layout and floor in turn, so that a burst of load on this shared
machine hits all of them, not one):

* ``scoop, one host``: ``-n 3`` here (root and 2 workers, broker here; no payload digests, as
  the launcher leaves them off on one machine). Large payloads stay in the messages
  (``SCOOP_SHARED_MEMORY=off``), as between hosts: the layouts differ only by where the
  processes run and the digests (the main benchmark's ``bytes`` measures shared memory);
* ``scoop, one host, digests on``: the same with ``--verify-payloads`` (SHA-256 of payloads);
* ``scoop, across hosts``: ``--hosts localhost h0 h1``: root, launcher and broker here (the
  root namespace), one worker on h0 and one on h1 (started over ssh; digests on);
* ``scoop, across hosts, root on h0``: ``--hosts h0 h1 h2``: root on h0, workers on h1 and h2,
  the broker here on the launching host: every message crosses the network to the broker and
  back out.

Workloads: submit then result of tiny tasks, ``futures.map`` of 10x as many, one task at a time
(forced-remote latency), a 64 MiB argument echoed back; with the CPU time the root, the broker
and the workers spent per tiny task, per forced-remote round trip and per 64 MiB round trip.
Raw floors (``bench/_rawtcp.py``, plain sockets): the round trip of 64 bytes and a 64 MiB echo
on loopback, between here and h0, between h0 and h1, and through a store-and-forward relay here
(the broker hop's floor). The SHA-256 payload digest (``scoop._protocol.payload_digest``) is
timed on 64 MiB and on a tiny task's frames. ``difference`` figures say where the time between
one host and across hosts goes.

Output: ``BENCH {json}`` lines (workload ``multihost``; see workloads.emit) on stdout, a table
and progress on stderr. Not root, or no sshd: one skip line with the reason, exit status 0.
Everything it starts is stopped, and the hosts removed, on failure, Ctrl-C and SIGTERM too
(and what a killed run left is removed by the next one: the hosts' state file names it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (BENCH, REPO / "tests"):  # workloads; the test hosts (package "hosts")
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import workloads as w  # noqa: E402
from _multihost_figures import (  # noqa: E402
    ACROSS,
    BIG,
    MIB,
    ONE,
    ONE_DIGESTS,
    RAW_HERE,
    RAW_HERE_RELAY,
    RAW_LOOP,
    RAW_LOOP_RELAY,
    RAW_NS,
    ROOT_REMOTE,
    WORKLOAD,
    Figures,
    differences,
    time_digests,
)

#: Each layout's launcher arguments (all with --root-runs-no-task). Everywhere, large payloads
#: travel in messages: shared memory (one machine only) would hide what the network adds.
LAUNCH_ENV = {"SCOOP_SHARED_MEMORY": "off"}
LAYOUTS = {
    ONE: ["-n", "3"],
    ONE_DIGESTS: ["-n", "3", "--verify-payloads"],
    ACROSS: ["--hosts", "localhost", "h0", "h1"],
    ROOT_REMOTE: ["--hosts", "h0", "h1", "h2"],
}
LAUNCH_TIMEOUT_S = 150.0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------- processes


class Bench:
    """The hosts of one run and the processes started on them (stopped in :meth:`close`)."""

    def __init__(self, hosts: Any, options: argparse.Namespace) -> None:
        self.hosts = hosts
        self.options = options
        self.started: list[subprocess.Popen[str]] = []

    def _prefix(self, host: str | None) -> list[str]:
        """Run in ``host``'s network namespace (None: here, the root namespace)."""
        return [] if host is None else ["ip", "netns", "exec", self.hosts.host(host).namespace]

    def _track(self, proc: subprocess.Popen[str]) -> None:
        """Record a process started here in the hosts' state file: a later run's stale
        cleanup kills it if this run dies without stopping it."""
        from hosts._netbase import proc_start_time
        from hosts.netns import FAMILY

        self.started.append(proc)
        pids = [[p.pid, proc_start_time(p.pid)] for p in self.started if p.poll() is None]
        FAMILY.update_state(self.hosts.runid, root_pids=pids)

    def spawn(
        self, command: list[str], host: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start ``command`` (in its own session, so that it and its children can be stopped)."""
        proc = subprocess.Popen(
            [*self._prefix(host), *command],
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        self._track(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        """SIGINT to its group (the launcher stops its workers everywhere), then SIGKILL. Once:
        a group id is signalled only while its leader is known to be ours, or just reaped."""
        if proc not in self.started:
            return
        self.started.remove(proc)
        for signum, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        with contextlib.suppress(ProcessLookupError):  # what the group left behind
            os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Stop everything started here."""
        for proc in list(self.started):
            self.stop(proc)

    # ----- raw TCP

    def _server(self, servers: list[subprocess.Popen[str]], host: str | None, *args: str) -> int:
        """Start a raw server (added to ``servers``) on ``host``; its port."""
        proc = self.spawn([sys.executable, str(BENCH / "_rawtcp.py"), *args], host)
        servers.append(proc)
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"raw TCP {args[0]} on {host or 'here'}: {proc.stderr.read()}")
        return int(line)

    def raw(
        self,
        figures: Figures,
        system: str,
        client: str | None,
        server: str | None,
        relay: bool = False,
    ) -> None:
        """Raw round trip and 64 MiB echo from ``client`` to an echo on ``server``."""
        address = "127.0.0.1" if server is None else self.hosts.host(server).address
        servers: list[subprocess.Popen[str]] = []
        try:
            port = self._server(servers, server, "echo", address)
            if relay:  # a store-and-forward relay here, as the broker is
                port = self._server(servers, None, "relay", "127.0.0.1", address, str(port))
                address = "127.0.0.1"
            command = [sys.executable, str(BENCH / "_rawtcp.py"), "client", address, str(port)]
            command += ["--mib", str(MIB), "--repeats", str(self.options.repeats)]
            done = subprocess.run(
                [*self._prefix(client), *command], capture_output=True, text=True, timeout=120
            )
        finally:
            for proc in servers:
                self.stop(proc)
        if done.returncode != 0:
            raise RuntimeError(f"raw TCP client ({system}): {done.stderr[-1000:]}")
        result = json.loads(done.stdout)
        how = "plain sockets, TCP_NODELAY" + (", through a relay here" if relay else "")
        figures.add(system, "round trip", "us", result["rtt_us"], f"64 bytes, {how}")
        figures.add(system, BIG, "GB/s", result["gbps"], f"there and back (2x counted), {how}")
        _log(
            f"  {system}: {statistics.median(result['rtt_us']):.1f} us, "
            f"{statistics.median(result['gbps']):.3f} GB/s"
        )

    # ----- SCOOP

    def layout(self, figures: Figures, system: str) -> None:
        """One launch of ``_multihost_root.py`` in layout ``system``; its figures."""
        options = self.options
        token = secrets.token_hex(8)
        command = [sys.executable, "-m", "scoop_launch", "--ssh-config"]
        command += [str(self.hosts.ssh_config), *LAYOUTS[system], "--root-runs-no-task"]
        command += [str(BENCH / "_multihost_root.py"), "--token", token]
        command += ["--tiny", str(options.tiny), "--map-tasks", str(options.map_tasks)]
        command += ["--latency", str(options.latency)]
        command += ["--mib", str(MIB), "--repeats", str(options.repeats)]
        started = time.perf_counter()
        proc = self.spawn(command, env=LAUNCH_ENV)
        try:
            out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
        finally:
            self.stop(proc)
        records = [
            json.loads(line[len("MULTIHOST ") :])
            for line in out.splitlines()
            if line.startswith("MULTIHOST ")
        ]
        if proc.returncode != 0 or len(records) < 2:
            raise RuntimeError(f"exit {proc.returncode}: {err.strip()[-1500:]}")
        where = records[0]
        hosts = sorted(set(where["workers"].values()))
        place = f"root on {where['root']}, workers on {', '.join(hosts)}"
        for record in records[1:]:
            note = f"{record['note']}; {place}"
            figures.add(system, record["metric"], record["unit"], record["values"], note)
        _log(
            f"  {system}: {len(records) - 1} figures in {time.perf_counter() - started:.1f} s "
            f"({place})"
        )


@contextlib.contextmanager
def test_hosts() -> Iterator[Any]:
    """The 3 namespace hosts, removed at the end (also on Ctrl-C; atexit and SIGTERM too)."""
    from hosts import netns

    made = netns.create_hosts(3)
    try:
        yield made
    finally:
        problems = made.teardown()
        if problems:
            _log(f"hosts teardown: {'; '.join(problems)}")


def why_not() -> str:
    """Why the hosts cannot be built here ("" if they can)."""
    try:
        from hosts import netns
    except ImportError as exc:
        return f"tests/hosts not importable: {exc}"
    try:
        netns.check_prerequisites()
    except netns.HostSetupError as exc:
        return str(exc)
    return ""


# ----------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=2, help="per round, after a warm-up")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of every measurement in turn (a load burst then hits all, not one)",
    )
    parser.add_argument("--tiny", type=int, default=5000, help="tiny tasks per submit repeat")
    parser.add_argument("--map-tasks", type=int, default=50000, help="tiny tasks per map repeat")
    parser.add_argument("--latency", type=int, default=200, help="round trips per latency repeat")
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--no-raw", action="store_true", help="leave the raw TCP floors out")
    parser.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="seconds of measuring at most: a stalled run must not hold nox -s bench",
    )
    return parser.parse_args(argv)


def measure(bench: Bench, figures: Figures, options: argparse.Namespace) -> bool:
    """Raw floors, then each layout, ``--rounds`` times; False if something failed or the time
    budget ran out (the rest still counts)."""
    raw = [
        (RAW_LOOP, None, None, False),
        (RAW_LOOP_RELAY, None, None, True),
        (RAW_HERE, None, "h0", False),
        (RAW_HERE_RELAY, None, "h0", True),
        (RAW_NS, "h0", "h1", False),
    ]
    jobs: list[tuple[str, Callable[[], None]]] = []
    for system, client, server, relay in [] if options.no_raw else raw:
        jobs.append((system, partial(bench.raw, figures, system, client, server, relay)))
    for system in options.layouts:
        jobs.append((system, partial(bench.layout, figures, system)))
    deadline = time.monotonic() + options.budget
    failed: set[str] = set()
    for turn in range(options.rounds):
        _log(f" round {turn + 1} of {options.rounds}")
        for system, job in jobs:
            if system in failed:
                continue
            if time.monotonic() > deadline:
                _log(f"  the time budget ({options.budget:g} s) ran out: the rest is left out")
                for name, _ in jobs:
                    if name not in failed and not any(s == name for s, _ in figures.items):
                        w.emit_skip(WORKLOAD, name, f"time budget of {options.budget:g} s ran out")
                return False
            try:
                job()
            except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                failed.add(system)
                _log(f"  {system}: FAILED {exc}")
                last = str(exc).strip().splitlines()[-1][-200:]
                w.emit_skip(WORKLOAD, system, f"failed: {last}")
    return not failed


_PENDING: list[int] = []  # signals that came while stopping and removing


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _later(signum: int, _frame: object) -> None:
    _PENDING.append(signum)  # not now: a teardown cut short would leave things behind


def _stop_and_remove(bench: Bench) -> None:
    """Stop what was started here; Ctrl-C and SIGTERM wait until the hosts are removed too."""
    signal.signal(signal.SIGINT, _later)
    signal.signal(signal.SIGTERM, _later)
    bench.close()


def main(argv: list[str] | None = None) -> int:
    """Measure everything; BENCH lines on stdout, the table on stderr."""
    options = parse(argv)
    reason = why_not()
    if reason:
        _log(f"multihost: skipped: {reason}")
        w.emit_skip(WORKLOAD, "*", f"skipped: {reason}")
        return 0
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: the launchers and raw servers
        # started here are stopped, then the hosts removed.
        signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    figures = Figures()
    time_digests(figures, options.repeats)
    with test_hosts() as hosts:
        _log(
            f"multihost: hosts {hosts.names} up in {hosts.setup_seconds:.1f} s "
            f"(bridge {hosts.bridge_address}, here = the root namespace)"
        )
        bench = Bench(hosts, options)
        try:
            ok = measure(bench, figures, options)
        finally:
            _stop_and_remove(bench)
    if _PENDING:
        raise SystemExit(128 + _PENDING[0])
    differences(figures)
    figures.emit()
    _log(figures.table())
    _log(f"multihost: {time.perf_counter() - started:.0f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
