"""Command line of the launcher."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from typing import NoReturn

from scoop import _plugins
from scoop._membership import HEARTBEAT_TIMEOUT, MAX_TASK_DEATHS
from scoop_launch._config import OptionError, prepare, run_config, usable_cpus
from scoop_launch._lifecycle import RunConfig, run
from scoop_launch._options import SILENCE_TIMEOUT, RemoteHostError
from scoop_launch._processes import is_local
from scoop_launch._starters import CONNECTING_BACK, STARTERS, describe

USAGE_ERROR = 2


#: More workers than this in one run is surely a typo (one launcher, one broker for them all).
MAX_WORKERS = 65536


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text}")
    return value


def _death_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of workers, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 worker, got {value}")
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"more than {MAX_WORKERS} workers: {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """Says what is wrong in one line first, not after a screen of usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def build_parser(parser_class: type[argparse.ArgumentParser] = _Parser) -> argparse.ArgumentParser:
    """The argument parser (also used by the docs, and by scoop.Executor with its own class)."""
    parser = parser_class(
        prog="python -m scoop_launch",
        description="Run a Python script with SCOOP workers on local cores and other hosts.",
        epilog="Examples: python -m scoop_launch -n 4 examples/full_tree.py\n"
        "          python -m scoop_launch --hostfile hosts -n 12 experiment.py --generations 50",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-n",
        "--workers",
        "--number-of-workers",
        dest="workers",
        type=_positive_int,
        metavar="N",
        help="number of workers (default: the listed host counts; locally, the "
        f"usable CPUs, here {usable_cpus()})",
    )
    where = parser.add_argument_group(
        "where workers run (default: a scheduler's allocation "
        "if one is detected, else this machine)"
    )
    where.add_argument(
        "--hosts",
        "--host",
        nargs="+",
        metavar="HOST",
        help="hosts; a host listed k times gets k workers",
    )
    where.add_argument(
        "--hostfile", metavar="FILE", help="file of 'hostname [count]' lines (# comments allowed)"
    )
    where.add_argument(
        "--dry-run", action="store_true", help="print where workers would run and start nothing"
    )
    remote = parser.add_argument_group("remote hosts")
    remote.add_argument(
        "--launcher",
        choices=STARTERS,
        default="auto",
        help="what starts the workers on other hosts: the allocation's own tool inside a "
        "SLURM (srun), PBS (pbsdsh), SGE (qrsh) or LSF (blaunch) allocation, else ssh "
        "(default %(default)s)",
    )
    remote.add_argument(
        "--ssh-config", metavar="FILE", help="ssh config file (default ~/.ssh/config)"
    )
    remote.add_argument(
        "--ssh-accept-unknown-host-keys",
        action="store_true",
        help="accept hosts whose key is not in known_hosts (unsafe)",
    )
    remote.add_argument(
        "--ssh-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for a host to answer (default %(default)s)",
    )
    remote.add_argument(
        "--ssh-keepalive",
        type=float,
        default=SILENCE_TIMEOUT,
        metavar="SECONDS",
        help="a host whose connection stays silent this long (it vanished, or its network "
        "did) is lost: its workers stop there and their tasks run elsewhere; losing the root's "
        "host ends the run (default %(default)s; 0: wait forever)",
    )
    remote.add_argument(
        "--path",
        "-p",
        metavar="DIR",
        default=os.getcwd(),
        help="working directory on remote hosts (default: this one)",
    )
    remote.add_argument(
        "--python-executable",
        "--python-interpreter",
        metavar="PATH",
        default=sys.executable,
        help="Python on remote hosts (default: %(default)s)",
    )
    remote.add_argument(
        "--pythonpath", metavar="PATHS", help="PYTHONPATH to prepend on remote hosts"
    )
    remote.add_argument(
        "--prolog",
        metavar="FILE",
        help="shell file sourced on remote hosts before starting workers",
    )
    remote.add_argument("--nice", type=int, metavar="LEVEL", help="niceness of remote workers")
    remote.add_argument(
        "--broker-hostname",
        "--external-hostname",
        metavar="ADDRESS",
        help="address other hosts use to reach this machine (default: the "
        "local address on the route to the first remote host)",
    )
    remote.add_argument(
        "--tunnel",
        action="store_true",
        help="remote workers reach the broker through ssh port forwarding",
    )
    logging_group = parser.add_mutually_exclusive_group()
    logging_group.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    logging_group.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    parser.add_argument("--log", metavar="FILE", help="write SCOOP's log to FILE instead of stderr")
    parser.add_argument(
        "--transport",
        metavar="NAME",
        help=f"transport to use (default: ${_plugins.TRANSPORT_ENV_VAR}, else the first "
        f"installed of {', '.join(_plugins.DEFAULT_ORDER)})",
    )
    parser.add_argument(
        "--list-transports", action="store_true", help="list the installed transports and exit"
    )
    parser.add_argument(
        "--verify-payloads",
        action="store_true",
        help="check a SHA-256 digest of every payload even on one machine (always done when "
        "workers run on other hosts)",
    )
    faults = parser.add_argument_group("lost workers")
    faults.add_argument(
        "--heartbeat-timeout",
        type=_non_negative_seconds,
        default=HEARTBEAT_TIMEOUT,
        metavar="SECONDS",
        help="take a worker from which nothing came for this long for lost, and run its tasks "
        f"elsewhere (workers say they are alive every second, even inside a long task; "
        f"default {HEARTBEAT_TIMEOUT:g}; 0 never)",
    )
    faults.add_argument(
        "--max-task-deaths",
        type=_death_count,
        default=MAX_TASK_DEATHS,
        metavar="N",
        help="a task that was running when N workers died is not run again: its waiter gets "
        f"a KilledWorkerError (default {MAX_TASK_DEATHS})",
    )
    faults.add_argument(
        "--add-workers",
        type=_positive_int,
        metavar="N",
        help="add N workers to a run going on (here, or on the --hosts given) instead of "
        "starting a run; Ctrl-C asks them to leave it",
    )
    faults.add_argument(
        "--run",
        metavar="ID",
        help="the run --add-workers joins, when several are going on (their ids are listed)",
    )
    parser.add_argument(
        "--root-runs-no-task",
        action="store_true",
        help="the root submits and waits but runs no task itself: every task travels to "
        "another worker (a check that a script works wherever its tasks run; needs -n 2 or more)",
    )
    seeing = parser.add_argument_group("seeing what the run did")
    seeing.add_argument(
        "--trace",
        metavar="FILE",
        help="write a timeline of every task on every worker, in the Chrome trace format "
        "(open it in https://ui.perfetto.dev or chrome://tracing)",
    )
    seeing.add_argument(
        "--report",
        metavar="FILE.html",
        help="write a one-page HTML report: timeline, utilisation, tasks by function, task "
        "tree, load balancing, failures",
    )
    seeing.add_argument(
        "--stats",
        action="store_true",
        help="print a table per worker at the end (tasks, busy %%, hand-overs, bytes); -v too",
    )
    seeing.add_argument(
        "--progress",
        action="store_true",
        help="show tasks done, running and queued and the workers busy, refreshed in place "
        "(only when stderr is a terminal)",
    )
    seeing.add_argument(
        "--debug",
        action="store_true",
        help="as the original SCOOP's: write the trace and the report into a new "
        "scoop-debug-<date> directory here",
    )
    parser.add_argument("script", nargs="?", help="the Python script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return parser


def list_transports() -> int:
    """Print each installed transport; exit code 0, or 1 when there are none."""
    found = _plugins.installed_transports()
    if not found:
        print("no SCOOP transport is installed; install one with: pip install scoop-zmq")
        return 1
    for name, item in sorted(found.items()):
        schemes = ", ".join(item.info.schemes)
        print(
            f"{name:10} {item.distribution} {item.version:10} "
            f"schemes: {schemes:12} {item.info.description}"
        )
    return 0


def _end_hosts_at_the_script(argv: list[str]) -> list[str]:
    """Mark where ``--hosts`` ends when the script follows it: ``--hosts a b -- script.py``.

    ``--hosts`` takes names up to the next option, so it would take the script too, and the
    script's own options (``--generations 50``) would then be read as the launcher's.
    """
    for at, token in enumerate(argv):
        if token == "--":
            return argv
        if token in ("--hosts", "--host"):
            for position in range(at + 1, len(argv)):
                if argv[position].startswith("-"):
                    return argv
                if os.path.isfile(argv[position]):
                    return [*argv[:position], "--", *argv[position:]]
            return argv
    return argv


def _split_script_from_hosts(options: argparse.Namespace) -> None:
    # `--hosts a b script.py args` makes argparse take the script as a host: take it back.
    if options.script is None and options.hosts:
        for position, name in enumerate(options.hosts):
            if os.path.isfile(name):
                options.script = name
                options.args = options.hosts[position + 1 :] + list(options.args)
                options.hosts = options.hosts[:position]
                break


def print_placement(source: str, placement: list[tuple[str, int]], config: RunConfig) -> None:
    """Show where each worker would run and the commands that would start them (``--dry-run``)."""
    print(f"hosts from: {source}")
    print(f"{'host':32} {'workers':>7}  indices")
    first = 0
    for host, count in placement:
        indices = f"{first}" if count == 1 else f"{first}-{first + count - 1}"
        root = "   (root: worker 0)" if first == 0 else ""
        kind = "local" if is_local(host) else config.starter
        print(f"{host:32} {count:>7}  {indices:10} {kind}{root}")
        first += count
    remote = [host for host, _ in placement if not is_local(host)]
    if not remote:
        broker = "127.0.0.1, port chosen at start"
    elif config.tunnel:
        broker = "127.0.0.1 here; remote workers reach it through ssh tunnels"
    else:
        reach = config.broker_hostname or "the local address on the route to the first remote host"
        broker = f"this machine, port chosen at start; remote workers connect to {reach}"
    print(f"total: {sum(c for _, c in placement)} workers; broker: {broker}")
    if remote:
        secret = (
            "each connects back here with a ticket from a file only you can read, and gets "
            "the run's secret on that connection"
            if config.starter in CONNECTING_BACK
            else "the run's secret reaches each on its standard input"
        )
        print(f"agents, one per host, started with {config.starter} ({secret}):")
        for host in remote:
            print(f"  {host}: {describe(config.starter, host, config.ssh, os.environ)}")


def _check_script_compiles(parser: argparse.ArgumentParser, script: str) -> None:
    """Exit as Python would, before anything starts, if the script cannot be read or compiled."""
    try:
        with open(script, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        parser.error(f"cannot read script {script!r}: {exc.strerror}")
    try:
        compile(source, script, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        details = "".join(traceback.format_exception_only(exc))
        print(f"scoop: script {script!r} does not compile:\n{details}", end="", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Read the command line and do what it asks.

    Entered through :func:`scoop_launch.__main__.main` (``python -m scoop_launch``, ``python -m
    scoop``, the ``scoop`` command), which has checked the install and started the root's
    process by then.
    """
    parser = build_parser()
    options = parser.parse_args(_end_hosts_at_the_script(sys.argv[1:] if argv is None else argv))
    if options.list_transports:
        sys.exit(list_transports())
    _split_script_from_hosts(options)
    joining = options.add_workers is not None
    if joining:
        if options.script is not None:
            parser.error("--add-workers runs the script of the run it joins: give no script")
        if options.workers is not None:
            parser.error("--add-workers N says how many workers to add: leave out -n")
    else:
        if options.script is None:
            parser.error("the script to run is missing")
        if not os.path.isfile(options.script):
            parser.error(f"script {options.script!r} not found (or not a file)")
        _check_script_compiles(parser, options.script)
    try:
        prepared = prepare(options, joining=joining)
    except OptionError as exc:
        if exc.hint:
            parser.error(str(exc))
        parser.exit(USAGE_ERROR, f"{parser.prog}: error: {exc}\n")
    except RemoteHostError as exc:
        print(f"scoop: cannot place workers: {exc}", file=sys.stderr)
        sys.exit(1)
    placement = prepared.placement
    close_connections = prepared.close_connections
    if joining:
        from scoop_launch._join import add_workers

        try:
            code = add_workers(
                options.add_workers,
                options.run,
                placement,
                {
                    "log_level": prepared.log_level,
                    "log_file": os.path.abspath(options.log) if options.log else None,
                    "debug": options.debug,
                    "ssh": prepared.ssh,
                    "starter": prepared.starter,
                    "connections": prepared.connections,
                },
            )
        finally:
            close_connections()
        sys.exit(code)
    assert options.script is not None  # checked above
    config = run_config(options, prepared, options.script)
    if options.root_runs_no_task and config.size < 2:
        close_connections()
        parser.error("--root-runs-no-task needs another worker to run the tasks: -n 2 or more")
    if options.dry_run:
        print_placement(prepared.source, placement, config)
        close_connections()
        sys.exit(0)
    try:
        code = run(config)
    finally:
        close_connections()
        if config.connections is not None:
            config.connections.close_all()
    # The launcher's objects need no collection on the way out (it runs no user code, and
    # closed what it opened): the collections of the interpreter's exit took ~10 ms after
    # every run.
    gc.freeze()
    sys.exit(code)
