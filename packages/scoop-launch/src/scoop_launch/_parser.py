"""The launcher's options: one parser for the command line and for an Executor's options.

``python -m scoop_launch`` (scoop_launch._cli) and ``scoop.Executor`` (scoop_launch._session,
whose parser raises instead of exiting) read the same options, defaults and checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from scoop import _plugins
from scoop._membership import HEARTBEAT_TIMEOUT, MAX_TASK_DEATHS
from scoop_launch._config import usable_cpus
from scoop_launch._options import SILENCE_TIMEOUT
from scoop_launch._starters import STARTERS

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
