"""Adding workers to a running run: ``python -m scoop_launch --add-workers N [--hosts ...]``.

The launcher of the run wrote a run file (scoop_launch._runfile): the broker's address, the
run's secret, the script. This launcher reserves worker indices in it, starts the workers here
or on the hosts given (over ssh, as a run does), and connects to the broker as their supervisor
(scoop._supervisor): it reports those whose process ends before the run does, stops those the
broker takes for lost, and ends when the run ends. Ctrl-C (or SIGTERM) asks its workers to leave
the run: they hand their queued tasks back and finish those they started.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import Any

from scoop import _plugins
from scoop._protocol import Codec, local_versions
from scoop._supervisor import SupervisorLink
from scoop.errors import ScoopError, TransportError
from scoop.transport import ConnectOptions
from scoop_launch import _runfile
from scoop_launch._errors import LaunchError
from scoop_launch._lifecycle import GRACE_SECONDS, Run, RunConfig
from scoop_launch._processes import is_local


class Joining(Run):
    """Workers added to a running run, and their supervision."""

    def __init__(self, config: RunConfig, info: dict[str, Any], first_index: int) -> None:
        super().__init__(config)
        self.info = info
        self.secret = str(info["secret"])
        self.payload_digests = bool(info["payload_digests"])
        #: The first index reserved is this supervisor's, the others its workers'.
        self.supervisor_index = first_index
        self.first_index = first_index + 1
        self.link: SupervisorLink | None = None
        self.forward_stdin = False  # no root here

    def _shared_worker_config(self) -> dict[str, Any]:
        return {
            **super()._shared_worker_config(),
            "size": int(self.info["size"]),
            "supervisor": self.supervisor_index,
        }

    def start(self) -> None:
        """Connect to the broker as a supervisor, then start the workers and let them join."""
        plan = self._index_plan()
        remote = [(host, indices) for host, indices in plan if not is_local(host)]
        local = [index for host, indices in plan if is_local(host) for index in indices]
        address = str(self.info["address"])
        external = self.info.get("advertised")
        if remote and not external:
            raise LaunchError(
                "the run's broker listens on the loopback of host "
                f"{self.info.get('host')} only: workers on other hosts cannot reach it (start "
                "the run with --broker-hostname, or with workers on other hosts already)"
            )
        self._connect(address if is_local(str(self.info.get("host"))) else str(external))
        if remote:
            self._start_agents(remote)
        self._spawn_workers(local)
        self._watch_agents()
        advertised_host = str(external).partition("://")[2].rpartition(":")[0] or None
        self._hand_out(address, advertised_host.strip("[]") if advertised_host else None)
        indices = [index for _, group in plan for index in group]
        print(
            f"scoop: added workers {indices[0]}..{indices[-1]} to run {self.info.get('run')}",
            file=sys.stderr,
            flush=True,
        )

    def _connect(self, address: str) -> None:
        try:
            transport = _plugins.load_transport(
                self.config.transport, self.config.transport_module or None
            )
            endpoint = transport.connect(ConnectOptions(address=address))
        except (ScoopError, TransportError) as exc:
            raise LaunchError(f"cannot reach the run's broker at {address}: {exc}") from exc
        link = SupervisorLink(
            endpoint,
            Codec(bytes.fromhex(self.secret), payload_digests=self.payload_digests),
            self.supervisor_index,
            on_stop_worker=self._stop_lost_worker,
            on_end=self._run_ended,
            heartbeat_interval=self._heartbeat_interval,
        )
        try:
            link.join(local_versions(transport.name), socket.gethostname(), timeout=30)
        except ScoopError as exc:
            endpoint.close()
            raise LaunchError(f"the run's broker at {address} did not take us: {exc}") from exc
        self.link = link

    def _run_ended(self, code: int | None) -> None:
        # From the link's thread: the run is over (or its broker gone); workers end by themselves.
        self.ending = True
        for agent in self.agents:
            agent.send_line({"ending": code or 0})
        self.events.put(("ending", code))

    def _report_gone(self, index: int, reason: str, running: int = 0) -> None:
        if self.link is not None:
            self.link.gone(index, reason, running)

    def wait(self) -> int:
        """Wait until every worker added here has ended; return 0."""
        left = {*self.local, *self.agents}
        while left:
            kind, value = self.events.get()
            if kind == "exit":
                left.discard(value[0])
            self._on_event(kind, value)  # no root and no broker here: it never returns a code
        return 0

    def terminate(self) -> None:
        """Ctrl-C: ask the workers to leave the run (SIGTERM), then make sure they ended."""
        for process in self.local:
            process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for process in self.local:
            process.wait_ended(deadline - time.monotonic())
        for process in self.local:
            if process.popen.poll() is None:
                process.signal_group(signal.SIGKILL)
                if process.index is not None:
                    self._report_gone(process.index, "its launcher (--add-workers) was stopped")
        self.stop()

    def stop(self) -> None:
        """Wait for the workers (bounded), then close the connection to the broker."""
        try:
            super().stop()
        finally:
            if self.link is not None:
                self.link.close()


def add_workers(
    count: int, wanted_run: str | None, placement: list[tuple[str, int]], config: dict[str, Any]
) -> int:
    """Add ``count`` workers to a running run; return the exit code."""
    from scoop_launch._lifecycle import run

    try:
        path = _runfile.find(wanted_run)
        info, first = _runfile.take_indices(path, count + 1)
    except _runfile.RunFileError as exc:
        print(f"scoop: cannot add workers: {exc}", file=sys.stderr)
        return 1
    run_config = RunConfig(
        script=str(info["script"]),
        args=list(info.get("args", [])),
        placement=placement,
        transport=str(info["transport"]),
        transport_module=str(info.get("transport_module", "")),
        heartbeat_timeout=float(info.get("heartbeat_timeout", 30.0)),
        **config,
    )
    if not os.path.isfile(run_config.script) and all(is_local(h) for h, _ in placement):
        print(
            f"scoop: cannot add workers: the run's script {run_config.script} is not here",
            file=sys.stderr,
        )
        return 1
    return run(run_config, Joining(run_config, info, first))


__all__ = ["Joining", "add_workers"]
