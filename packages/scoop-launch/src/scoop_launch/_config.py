"""From parsed options to a run's configuration: shared by the command line and scoop.Executor.

Both read the same options (``build_parser`` in :mod:`scoop_launch._parser`), so an Executor takes
the launcher's options with the launcher's defaults and the launcher's checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from scoop import _plugins
from scoop.errors import NoTransportError, UnknownTransportError
from scoop_launch import _hosts
from scoop_launch._options import SshOptions
from scoop_launch._processes import is_local
from scoop_launch._runconfig import RunConfig
from scoop_launch._starters import StarterError, choose_starter


class OptionError(ValueError):
    """An option, or a combination of options, that cannot work; the message says which."""

    def __init__(self, message: str, *, hint: bool = True) -> None:
        super().__init__(message)
        #: Whether pointing at ``--help`` helps (not for a host file's or a transport's error).
        self.hint = hint


def usable_cpus() -> int:
    """CPUs this process may run on (affinity and cgroup cpusets respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class Prepared:
    """What the options say about where workers go, checked."""

    source: str
    placement: list[tuple[str, int]]
    ssh: SshOptions
    #: ssh connections opened to count a host's CPUs (None: none were needed).
    connections: Any
    transport: Any  # scoop._plugins.InstalledTransport
    log_level: str
    #: What starts the agents on remote hosts (scoop_launch._starters).
    starter: str = "ssh"

    def close_connections(self) -> None:
        """Close the connections opened for placement, if any."""
        if self.connections is not None:
            self.connections.close_all()


def prepare(options: argparse.Namespace, *, joining: bool = False) -> Prepared:
    """Check the options and place the workers.

    Raises OptionError for options that cannot work and RemoteHostError (scoop_launch._options)
    when a host cannot be asked for its CPU count.
    """
    if options.log:
        try:
            with open(options.log, "a", encoding="utf-8"):
                pass  # every process of the run appends to it: fail now, not in each of them
        except OSError as exc:
            raise OptionError(
                f"cannot write the log file {options.log!r} (--log): {exc.strerror}"
            ) from None
    if options.hosts and options.hostfile:
        raise OptionError("--hosts and --hostfile cannot be used together")
    for flag, path in (("--trace", options.trace), ("--report", options.report)):
        # Fail now, not after the run (the file itself is written only then).
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            raise OptionError(f"cannot write {path!r} ({flag}): no writable directory {folder!r}")
    try:
        transport = _plugins.choose_transport(options.transport)
    except (NoTransportError, UnknownTransportError) as exc:
        raise OptionError(str(exc), hint=False) from None
    if joining and options.tunnel:
        raise OptionError("--tunnel cannot carry workers added to a run")
    if options.tunnel and transport.info.broker_connects_to_workers:
        raise OptionError(
            f"--tunnel cannot carry the {transport.info.name!r} transport (its broker connects to "
            "the workers); use --transport zmq with --tunnel"
        )
    try:
        source, hosts = _hosts.resolve_hosts(options.hostfile, options.hosts, os.environ)
    except _hosts.HostSourceError as exc:
        raise OptionError(str(exc), hint=False) from None
    scheduler = source.split()[0] if source.endswith(" allocation") else None
    try:
        starter = choose_starter(options.launcher, scheduler, os.environ)
    except StarterError as exc:
        raise OptionError(str(exc)) from None
    if options.tunnel and starter != "ssh":
        raise OptionError(f"--tunnel needs ssh to the hosts, not {starter} (see --launcher)")
    ssh = SshOptions(
        python=options.python_executable,
        path=options.path,
        pythonpath=options.pythonpath,
        prolog=options.prolog,
        nice=options.nice,
        ssh_config=options.ssh_config,
        accept_unknown_host_keys=options.ssh_accept_unknown_host_keys,
        connect_timeout=options.ssh_timeout,
        silence_timeout=options.ssh_keepalive,
    )
    prepared = Prepared(source, [], ssh, None, transport, _log_level(options), starter)

    def cpu_count(host: str) -> int:
        if is_local(host):
            return usable_cpus()
        if starter != "ssh":
            raise OptionError(
                f"host {host} has no worker count, and only ssh can ask a host for its CPU "
                f"count; give one (e.g. '{host} 4' in the hostfile, or -n)",
                hint=False,
            )
        if prepared.connections is None:  # opened on first need: local runs never load paramiko
            from scoop_launch._ssh import Connections

            prepared.connections = Connections(ssh)
        return int(prepared.connections.cpu_count(host))

    try:
        prepared.placement = _hosts.place(hosts, options.add_workers or options.workers, cpu_count)
    except BaseException:
        prepared.close_connections()
        raise
    return prepared


def _log_level(options: argparse.Namespace) -> str:
    return "ERROR" if options.quiet else ("WARNING", "INFO", "DEBUG")[min(options.verbose, 2)]


def run_config(
    options: argparse.Namespace, prepared: Prepared, script: str | None, *, client: bool = False
) -> RunConfig:
    """The configuration of a run of ``script``, or of an Executor's workers (``client``)."""
    return RunConfig(
        script=os.path.abspath(script) if script else "",
        args=list(options.args or []),
        placement=prepared.placement,
        transport=prepared.transport.info.name,
        transport_module=prepared.transport.module,
        log_level=prepared.log_level,
        log_file=os.path.abspath(options.log) if options.log else None,
        debug=options.debug,
        ssh=prepared.ssh,
        starter=prepared.starter,
        connections=prepared.connections,
        broker_hostname=options.broker_hostname,
        tunnel=options.tunnel,
        verify_payloads=options.verify_payloads,
        heartbeat_timeout=options.heartbeat_timeout,
        max_task_deaths=options.max_task_deaths,
        root_runs_tasks=not options.root_runs_no_task,
        client=client,
        **_seeing(options),
    )


def _seeing(options: argparse.Namespace) -> dict[str, Any]:
    """Where the trace and the report go, and whether to print the table at the end."""
    trace, report = options.trace, options.report
    if options.debug:  # the original's --debug: everything, in a directory of its own
        directory = time.strftime("scoop-debug-%Y%m%d-%H%M%S")  # made when written
        trace = trace or os.path.join(directory, "trace.json")
        report = report or os.path.join(directory, "report.html")
    return {
        "trace_file": os.path.abspath(trace) if trace else None,
        "report_file": os.path.abspath(report) if report else None,
        "stats": bool(options.stats or options.verbose),
        # Refreshed in place: only on a terminal (a log file would fill with redrawn lines).
        "progress": bool(options.progress and sys.stderr.isatty()),
    }
