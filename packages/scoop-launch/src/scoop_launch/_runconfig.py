"""What one run needs: placement, transport, options (built by scoop_launch._config)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from scoop._membership import HEARTBEAT_TIMEOUT, MAX_TASK_DEATHS

__all__ = ["RunConfig"]


@dataclass
class RunConfig:
    """Everything one run needs."""

    script: str
    args: list[str] = field(default_factory=list)
    #: ``(host, workers)`` in order; the root runs on the first host.
    placement: list[tuple[str, int]] = field(default_factory=lambda: [("localhost", 1)])
    transport: str = "zmq"
    #: The plugin module that provides it (workers load it directly); "" to discover it.
    transport_module: str = ""
    log_level: str = "WARNING"
    log_file: str | None = None
    python: str = sys.executable
    debug: bool = False
    #: Options for remote hosts (scoop_launch._options.SshOptions); None when all are local.
    ssh: Any = None
    #: What starts the agent on each remote host (scoop_launch._starters): ssh, srun, ...
    starter: str = "ssh"
    #: Open ssh connections (scoop_launch._ssh.Connections), shared with placement.
    connections: Any = None
    #: The address workers on other hosts use to reach the broker (default: found by routing).
    broker_hostname: str | None = None
    #: Workers on other hosts reach the broker through ssh port forwarding.
    tunnel: bool = False
    #: Digest payloads even when every worker is on this machine (always done otherwise).
    verify_payloads: bool = False
    #: Seconds without a word from a worker before it is taken for lost (0: never).
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    #: Worker deaths a task may cause before it is given up.
    max_task_deaths: int = MAX_TASK_DEATHS
    #: Whether the root runs tasks too (False: it submits and waits only, like a client).
    root_runs_tasks: bool = True
    #: Worker 0 is the process that opened a ``scoop.Executor`` (a client, started by nobody
    #: here); the placement's workers are 1 and on, and there is no script.
    client: bool = False
    #: Where to write the run's trace (``--trace``) and report (``--report``); None: nowhere.
    trace_file: str | None = None
    report_file: str | None = None
    #: Print the table of workers at the end (``--stats``, ``-v``).
    stats: bool = False
    #: Show the run's progress on the terminal (``--progress``, when stderr is one).
    progress: bool = False

    @property
    def recorded(self) -> bool:
        """Whether the processes record what they do (scoop._trace)."""
        return bool(self.trace_file or self.report_file or self.stats)

    @property
    def size(self) -> int:
        """Total number of workers (an Executor's client included)."""
        return sum(count for _, count in self.placement) + (1 if self.client else 0)
