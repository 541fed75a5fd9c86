"""One run: start the broker and the workers, wait for the root, leave no process behind.

Order of a run::

    remote hosts: one ssh connection each, all opened first, then one agent each, which checks
    its host (Python, scoop, versions, transport, --path) and answers before any worker exists:
    a host that fails stops the launch here, naming the host and the cause, with nothing started
    broker and local workers spawned at once (each in its own session, so only the launcher sees
    a terminal's Ctrl-C); each gets its configuration and the secret on stdin and imports the
    script while the broker binds; the root starts running it (see scoop._rootstart)
    broker prints its address -> sent to every worker and agent -> workers connect, say HELLO
    root exits with the script's code -> the broker tells the others -> all exit
    anything left after GRACE_SECONDS -> killed (local process groups; remote agents stop theirs)

A worker other than the root whose process ends before the run does (killed, crashed, a task
called os._exit) or whose host is lost is reported to the broker (on its standard input, with
the task its running slot names, see scoop._slot): the broker has its tasks run elsewhere. The
broker in turn reports the workers it took for lost on its own (silent for --heartbeat-timeout):
the launcher kills those processes. The root, the broker, and a worker that could not start at
all (exit 3) still end the run (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# The agent states the rule its side applies as well (a stdlib-only module: cheap to import).
from scoop._membership import heartbeat_interval
from scoop_launch import _prestart, _runfile
from scoop_launch._agentlink import AgentLink
from scoop_launch._errors import LaunchError
from scoop_launch._owneddir import OwnedDir, remove_abandoned, run_dir, shared_memory_dir
from scoop_launch._processes import Handle, Local, advertised, is_local
from scoop_launch._relaying import Relaying
from scoop_launch._remote import RemoteHosts
from scoop_launch._runconfig import RunConfig
from scoop_launch._watching import (
    BROKER_START_TIMEOUT,
    ROOT_FAILURE_WAIT,
    WORKER_STARTUP_FAILED,
    RootLost,
    StartupFailed,
    Watching,
)

#: How long workers get to exit after the root is done, before they are killed.
GRACE_SECONDS = 5.0


class Interrupted(Exception):
    """The launcher received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Run(RemoteHosts, Relaying, Watching):
    """A run of a script on local and remote workers.

    Relaying comes before Watching: Watching declares ``_report_gone``, which Relaying defines.
    """

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        # What secrets.token_bytes does, without importing hmac and OpenSSL before any start.
        self.secret = os.urandom(32).hex()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.broker: Local | None = None
        self.local: list[Local] = []
        self.agents: list[AgentLink] = []
        self.root: Handle | None = None
        self._broker_port: int | None = None
        #: The broker's address as this machine reaches it (None until it is bound).
        self.broker_address: str | None = None
        #: Set once the broker announced the end of the run: workers may exit with 0 from then.
        self.ending = False
        self._run_dir = run_dir()
        #: Private to the user: the workers' running slots, the trace (removed by ``stop``; if
        #: this launcher is killed outright, by the next one: scoop_launch._owneddir).
        self.run_dir = self._run_dir.path
        #: The broker's address as other hosts reach it (None when it listens on loopback).
        self.advertised_address: str | None = None
        #: The index of this launcher's first worker (workers added to a run start further on;
        #: an Executor's client is worker 0).
        self.first_index = 1 if config.client else 0
        #: Where ``--add-workers`` finds this run (None until the broker is bound).
        self.run_file: Path | None = None
        #: Whether this launcher's standard input goes to the root's.
        self.forward_stdin = True
        #: Where the processes write what they recorded ("" when nothing is recorded).
        self.trace_dir = ""
        if config.recorded:
            self.trace_dir = os.path.join(self.run_dir, "trace")
            os.mkdir(self.trace_dir)
        #: Records sent back by remote hosts' agents, and each host's clock offset (ns).
        self.remote_records: list[dict[str, Any]] = []
        self.clock_offsets: dict[str, int] = {}
        #: How far off each offset may be (half the round trip of its probe), in ns.
        self.clock_errors: dict[str, int] = {}
        self._probes: dict[int, int] = {}
        self._trace_parts: dict[str, list[str]] = {}
        self.started_at = time.monotonic()
        self._written = False
        self._progress_shown = False
        self._progress_lock = threading.Lock()
        self._stopping = threading.Event()
        # Payloads carry a SHA-256 digest when any worker is on another host; on one machine
        # loopback TCP cannot be altered in flight and the header tag alone authenticates.
        self.payload_digests = config.verify_payloads or any(
            not is_local(host) for host, _ in config.placement
        )
        #: The run's directory in shared memory for large payloads (scoop._spill): made by
        #: ``start`` on one machine (workers added later read, but do not write).
        self._spill: OwnedDir | None = None

    @property
    def spill_dir(self) -> str:
        """The path of the run's directory in shared memory; "" when it has none."""
        return self._spill.path if self._spill is not None else ""

    # -- starting ----------------------------------------------------------------------------

    @property
    def _heartbeat_interval(self) -> float:
        return heartbeat_interval(self.config.heartbeat_timeout)

    def _common(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "transport": self.config.transport,
            "transport_module": self.config.transport_module,
            "log_level": self.config.log_level,
            "log_file": self.config.log_file,
            "debug": self.config.debug,
            "payload_digests": self.payload_digests,
            "spill_dir": self.spill_dir,
            "trace_dir": self.trace_dir,
            # --stats alone: totals only, no list that grows with the run
            "trace_detail": bool(self.config.trace_file or self.config.report_file),
            "progress": self.config.progress,
        }

    def _spawn(
        self,
        name: str,
        role: str,
        first_line: dict[str, Any],
        *,
        pipe_stdout: bool,
        index: int | None = None,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> Local:
        """Start a process of ``role`` (or take ``popen``, one started already) and configure it."""
        if popen is None:
            popen = _prestart.spawn(self.config.python, role, pipe_stdout=pipe_stdout)
        process = Local(name, popen, index, first_line.get("running_slot"))
        process.send_line(first_line)
        self._watch(process)
        return process

    def _watch(self, handle: Handle) -> None:
        def watch() -> None:
            self.events.put(("exit", (handle, handle.wait())))

        threading.Thread(target=watch, daemon=True).start()

    def _index_plan(self) -> list[tuple[str, list[int]]]:
        plan, next_index = [], self.first_index
        for host, count in self.config.placement:
            plan.append((host, list(range(next_index, next_index + count))))
            next_index += count
        return plan

    def _broker_target(self) -> tuple[str, int]:
        assert self._broker_port is not None
        return "127.0.0.1", self._broker_port

    def start(self) -> None:
        """Check the remote hosts, spawn everything, and hand out the broker's address."""
        plan = self._index_plan()
        remote = [(host, indices) for host, indices in plan if not is_local(host)]
        local = [index for host, indices in plan if is_local(host) for index in indices]
        if not self.payload_digests:  # one machine: every process can map the same files
            self._spill = shared_memory_dir()
        if remote:
            self._start_agents(remote)
        bind_host, advertised_host = self._bind_host(remote)
        # The root first: its start (Python, imports, the script) is usually the longest path
        # to the first result. Measured against the broker first: no difference beyond noise.
        self._spawn_workers(local)
        self.broker = self._spawn(
            "the broker",
            "broker",
            {
                **self._common(),
                "host": bind_host,
                "size": self.config.size,
                "parent_pid": os.getpid(),
                "heartbeat_timeout": self.config.heartbeat_timeout,
                "max_task_deaths": self.config.max_task_deaths,
            },
            pipe_stdout=True,
        )
        threading.Thread(target=self._read_broker, args=(self.broker,), daemon=True).start()
        self._watch_agents()
        if self.root is None:
            self.root = next((a for a in self.agents if 0 in a.indices), None)
        address = self.broker_address = self._wait_for_address()
        self._broker_port = int(address.rpartition(":")[2])
        self._hand_out(address, advertised_host)
        self.advertised_address = advertised(address, advertised_host) if remote else None
        self._write_run_file(address)
        # What launchers killed outright left (in memory for a shared-memory directory).
        remove_abandoned(keep=[self.spill_dir, self.run_dir])

    def _write_run_file(self, address: str) -> None:
        """Let ``--add-workers`` find this run (see scoop_launch._runfile)."""
        config = self.config
        if config.client:
            return  # joiners import the run's script; an Executor's workers have none
        info = {
            "run": _runfile.run_id(),
            "host": socket.gethostname(),
            "launcher_pid": os.getpid(),
            "address": address,
            "advertised": self.advertised_address,
            "secret": self.secret,
            "transport": config.transport,
            "transport_module": config.transport_module,
            "script": config.script,
            "args": config.args,
            "payload_digests": self.payload_digests,
            "heartbeat_timeout": config.heartbeat_timeout,
            "size": config.size,
            "next_index": config.size,
        }
        try:
            self.run_file = _runfile.write(info)
        except OSError as exc:
            print(f"scoop: no workers can be added to this run: {exc}", file=sys.stderr)

    def _shared_worker_config(self) -> dict[str, Any]:
        """What every worker's configuration holds, wherever it runs."""
        return {
            **self._common(),
            "size": self.config.size,
            "args": self.config.args,
            "heartbeat_interval": self._heartbeat_interval,
        }

    def _worker_line(self, index: int) -> dict[str, Any]:
        """The configuration of local worker ``index`` (its address comes later)."""
        return {
            **self._shared_worker_config(),
            "index": index,
            "root": index == 0,
            "runs_tasks": index != 0 or self.config.root_runs_tasks,
            "script": self.config.script,
            "parent_pid": os.getpid(),
        }

    def _spawn_workers(self, indices: list[int]) -> None:
        for index in indices:
            line = self._worker_line(index)
            if index != 0:
                line["running_slot"] = os.path.join(self.run_dir, f"running-{index}")
            name = "the root worker (0)" if index == 0 else f"worker {index}"
            # The root's process may have been started before the launcher was ready.
            early = _prestart.take(self.config.python) if index == 0 else None
            process = self._spawn(name, "worker", line, pipe_stdout=False, index=index, popen=early)
            self.local.append(process)
            if index == 0:
                self.root = process
        _prestart.discard()  # the root is elsewhere: that process is of no use

    def _hand_out(self, address: str, advertised_host: str | None) -> None:
        """Give the broker's address to the workers, which then connect."""
        for process in self.local:
            process.send_line({"address": address}, last=process is not self.root)
        for agent in self.agents:
            if self.config.tunnel:
                agent_address = advertised(address, "127.0.0.1", agent.tunnel_port)
            else:
                agent_address = advertised(address, advertised_host)
            agent.send_line({"address": agent_address})
        if self.root is not None and self.forward_stdin:
            threading.Thread(target=self._forward_stdin, daemon=True).start()

    def stop(self) -> None:
        """Give every process GRACE_SECONDS to exit, then kill what is left."""
        wall = time.monotonic() - self.started_at  # the run's, not its teardown's
        with self._progress_lock:
            self._stopping.set()
            if self._progress_shown:  # the run is over: the progress line goes
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write("\r\x1b[K")
                    sys.stderr.flush()
        end = time.monotonic() + GRACE_SECONDS
        for process in self.local:
            process.wait_ended(end - time.monotonic())
        workers_gone = all(p.popen.poll() is not None for p in self.local) and not self.agents
        if self.broker is not None and workers_gone:
            # Every worker is gone: the broker need not wait for late joiners.
            self.broker.signal_group(signal.SIGTERM)
        processes = [p for p in (self.broker, *self.local) if p is not None]
        for process in processes:
            process.wait_ended(end - time.monotonic())
        self._close_listener()  # no agent may connect back from here on
        for agent in self.agents:
            agent.stop()  # EOF on its stdin: it stops whatever of its workers is left
        for agent in self.agents:
            agent.wait_exit(max(0.1, end - time.monotonic()))
            # Its last lines carry what its workers recorded, and where its link says nothing
            # of it, its exit status.
            agent.wait_output(GRACE_SECONDS if self.trace_dir else 1.0)
            agent.close()
        for process in processes:
            process.signal_group(signal.SIGKILL)  # also whatever its tasks started
            process.wait_ended(5)
        if self.trace_dir and not self._written:
            self._written = True
            from scoop_launch._trace import read_records, write_outputs

            records = read_records(self.trace_dir) + self.remote_records
            write_outputs(self.config, records, self.clock_offsets, wall, self.clock_errors)
        self._run_dir.remove()
        if self._spill is not None:  # what no process read (cancelled tasks, lost workers')
            self._spill.remove()
        _runfile.remove(self.run_file)
        # What killed workers of this machine could not remove (their direct-path sockets).
        from scoop._direct import remove_channels  # here: not on the way to the first result

        indices = [p.index for p in self.local if p.index is not None]
        remove_channels(bytes.fromhex(self.secret), indices)

    def terminate(self) -> None:
        """End every process now, then make sure they did.

        Workers are killed (SIGTERM would ask them to leave the run cleanly, finishing their
        tasks first); the broker gets SIGTERM, and tells the workers on other hosts to stop.
        """
        if self.broker is not None:
            self.broker.signal_group(signal.SIGTERM)
        for process in self.local:
            process.signal_group(signal.SIGKILL)
        for agent in self.agents:
            agent.stop()
        self.stop()


def run(config: RunConfig, launched: Run | None = None) -> int:
    """Run a script to the end and return the launcher's exit code.

    ``launched`` replaces the run when workers are added to a running one (scoop_launch._join).
    """
    if launched is None:
        launched = Run(config)

    interruptible = True

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interruptible
        # Only the first signal interrupts: a second one (Ctrl-C pressed again) must not cut the
        # clean-up short, which is bounded anyway (GRACE_SECONDS, then SIGKILL).
        if interruptible:
            interruptible = False
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            launched.start()
            code = launched.wait()
            launched.stop()
        except Interrupted as exc:  # on_signal already made further signals harmless
            print(f"scoop: {exc}: stopping the run", file=sys.stderr)
            launched.terminate()
            return 128 + exc.signum
        except LaunchError as exc:
            interruptible = False
            print(f"scoop: {exc}", file=sys.stderr)
            launched.terminate()
            return exc.exit_code
        interruptible = False
        failed = launched.failed_workers()
        if failed:
            # e.g. a worker that could not import the script: the run did not run as asked
            print(f"scoop: {', '.join(failed)} failed (see above)", file=sys.stderr)
            return code or 1
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "BROKER_START_TIMEOUT",
    "GRACE_SECONDS",
    "ROOT_FAILURE_WAIT",
    "WORKER_STARTUP_FAILED",
    "Interrupted",
    "RootLost",
    "Run",
    "RunConfig",
    "StartupFailed",
    "run",
]
