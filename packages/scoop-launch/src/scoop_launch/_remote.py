"""The agents of a run's remote hosts, whatever starts them: ssh, srun, pbsdsh, qrsh, ...

A mixin of :class:`scoop_launch._lifecycle.Run`: it opens one agent per remote host through the
run's starter (:mod:`scoop_launch._starters`), sends each its configuration and waits until each
has checked its host, then keeps them: pings, clock probes for the trace, and the agent's own
lines (a worker ended, what the workers recorded).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import queue
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from scoop_launch._agentlink import AgentLink
from scoop_launch._errors import LaunchError
from scoop_launch._options import RemoteHostError
from scoop_launch._processes import in_parallel, route_source

if TYPE_CHECKING:
    from scoop_launch._command_agent import AgentListener
    from scoop_launch._runconfig import RunConfig

#: Probes of each remote host's clock when the run is traced.
CLOCK_PROBES = 5


class RemoteHosts:
    """Starting and keeping the agents of remote hosts (mixed into Run)."""

    config: RunConfig
    agents: list[AgentLink]
    events: queue.Queue[tuple[str, Any]]
    trace_dir: str
    remote_records: list[dict[str, Any]]
    clock_offsets: dict[str, int]
    clock_errors: dict[str, int]
    _probes: dict[int, int]
    _trace_parts: dict[str, list[str]]
    _stopping: threading.Event
    _broker_port: int | None
    #: Where agents that get no standard input connect back (pbsdsh), once needed.
    _listener: AgentListener | None = None

    def _shared_worker_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _broker_target(self) -> tuple[str, int]:
        raise NotImplementedError

    def _watch(self, handle: Any) -> None:
        raise NotImplementedError

    def _open_agents(self, remote: list[tuple[str, list[int]]]) -> None:
        """Start the agent of each remote host with the run's starter, into ``self.agents``.

        Each agent is kept as soon as it exists, so that whatever stops the launch from here
        on (a host that fails, Ctrl-C) stops those already started too.
        """
        starter, options = self.config.starter, self.config.ssh
        if starter == "ssh":
            from scoop_launch import _ssh

            if self.config.connections is None:
                self.config.connections = _ssh.Connections(options)
            connections = self.config.connections
            outcomes = in_parallel(connections.get, [host for host, _ in remote])
            failures = [str(error) for _, error in outcomes if error is not None]
            if failures:
                connections.close_all()
                raise LaunchError("cannot start the run: " + "; ".join(failures))
            try:
                for (host, indices), (client, _) in zip(remote, outcomes, strict=True):
                    self.agents.append(_ssh.SshAgent(host, client, options, indices))
            except RemoteHostError as exc:
                raise LaunchError(f"cannot start the run: {exc}") from None
            return
        from scoop_launch import _runfile
        from scoop_launch._command_agent import AgentListener, CommandAgent, ConnectBackAgent
        from scoop_launch._starters import CONNECTING_BACK, StarterError

        try:
            if starter in CONNECTING_BACK:
                bind, advertised = self._bind_host(remote)
                self._listener = AgentListener(
                    bind, advertised or bind, _runfile.runs_dir(), options.silence_timeout
                )
                for host, indices in remote:
                    agent: AgentLink = ConnectBackAgent(
                        starter, host, indices, options, self._listener
                    )
                    self.agents.append(agent)
            else:
                for host, indices in remote:
                    self.agents.append(CommandAgent(starter, host, indices, options))
        except (RemoteHostError, StarterError, OSError) as exc:
            raise LaunchError(f"cannot start the run: {exc}") from None

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _on_agent_line(self, agent: Any, message: dict[str, Any]) -> None:
        # A line of a remote agent: one of its workers ended (see scoop_launch._agent), what its
        # workers recorded, or the answer to a clock probe.
        if "trace_part" in message:
            self._trace_parts.setdefault(agent.host, []).append(str(message["trace_part"]))
        elif "trace_end" in message:
            text = "".join(self._trace_parts.pop(agent.host, []))
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                record["clock_host"] = agent.host  # its times are that host's clock's
                self.remote_records.append(record)
        elif "agent_exit" in message:  # its last line, where its link gives no exit status
            agent.reported_status = int(message["agent_exit"])
        elif "clock" in message:
            self._clock_answer(agent.host, message, time.monotonic_ns())
        elif "exit" in message:
            self.events.put(
                ("worker_exit", (agent, message["exit"], message["code"], message["running"]))
            )

    def _start_agents(self, remote: list[tuple[str, list[int]]]) -> None:
        """Start one agent per remote host and wait until each has checked its host."""
        from scoop import __version__ as core_version
        from scoop_launch import __version__ as launch_version

        options = self.config.ssh
        source = ""
        if self.config.script:  # an Executor's workers have none
            with open(self.config.script, "rb") as handle:
                # base64 of the bytes: a script may declare another encoding (PEP 263).
                source = base64.b64encode(handle.read()).decode("ascii")
        self._open_agents(remote)
        for agent in self.agents:
            if self.config.tunnel:
                try:
                    agent.open_tunnel(self._broker_target)
                except RemoteHostError as exc:
                    raise LaunchError(f"cannot start the run: {exc}") from None
            agent.send_line(
                {
                    "versions": {
                        "scoop_core": core_version,
                        "scoop_launch": launch_version,
                        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                    },
                    "transport": self.config.transport,
                    "path": options.path,
                    "script": self.config.script,
                    "script_base64": source,
                    "silence_timeout": options.silence_timeout,
                    "root_runs_tasks": self.config.root_runs_tasks,
                    "indices": agent.indices,
                    "worker": self._shared_worker_config(),
                }
            )
        outcomes = in_parallel(lambda agent: agent.wait_ready(), self.agents)
        failures = [str(error) for _, error in outcomes if error is not None]
        if failures:
            raise LaunchError("cannot start the run: " + "; ".join(failures))
        if options.silence_timeout > 0:
            threading.Thread(
                target=self._ping_agents, args=(options.silence_timeout / 3,), daemon=True
            ).start()
        if self.trace_dir:
            threading.Thread(target=self._probe_clocks, daemon=True).start()

    def _probe_clocks(self) -> None:
        # Each host's CLOCK_MONOTONIC against ours, for the trace: a few probes; the one with the
        # shortest round trip wins, and is off by at most half that round trip.
        for round_ in range(CLOCK_PROBES):
            for position, agent in enumerate(self.agents):
                number = round_ * len(self.agents) + position
                self._probes[number] = time.monotonic_ns()
                agent.send_line({"clock": number})
            if self._stopping.wait(0.02):
                return

    def _clock_answer(self, host: str, message: dict[str, Any], received: int) -> None:
        sent = self._probes.get(int(message["clock"]))
        if sent is None:
            return
        round_trip = received - sent
        if round_trip < self.clock_errors.get(host, 1 << 62) * 2:
            self.clock_offsets[host] = int(message["now"]) - (sent + received) // 2
            self.clock_errors[host] = round_trip // 2

    def _ping_agents(self, interval: float) -> None:
        # Each agent stops its workers when it hears nothing for the silence timeout: a host
        # cut off from this machine does not keep running a run that is over.
        count = 0
        while not self._stopping.wait(interval):
            count += 1
            for agent in self.agents:
                agent.send_line({"ping": count})

    def _bind_host(self, remote: list[tuple[str, list[int]]]) -> tuple[str, str | None]:
        """Interface the broker binds, and the host remote workers connect to."""
        if not remote or self.config.tunnel:
            return "127.0.0.1", None
        if self.config.broker_hostname:
            return "0.0.0.0", self.config.broker_hostname
        name = remote[0][0]
        if self.config.starter == "ssh":
            from scoop_launch import _ssh

            name = _ssh.resolve(name, self.config.ssh)["hostname"]
        try:
            target = socket.getaddrinfo(name, 22)
        except socket.gaierror as exc:
            raise LaunchError(
                f"cannot start the run: host {name}: cannot resolve it: {exc}"
            ) from None
        source = route_source(str(target[0][4][0]))
        return source, source

    def _watch_agents(self) -> None:
        for agent in self.agents:
            agent.pump_output(
                sys.stdout.buffer,
                sys.stderr.buffer,
                functools.partial(self._on_agent_line, agent),
            )
            self._watch(agent)
