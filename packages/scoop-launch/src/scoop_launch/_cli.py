"""Command line of the launcher."""

from __future__ import annotations

import argparse
import os
import sys

from scoop import _plugins
from scoop.errors import NoTransportError, UnknownTransportError
from scoop_launch._lifecycle import RunConfig, run

USAGE_ERROR = 2


def usable_cpus() -> int:
    """CPUs this process may run on (affinity and cgroup cpusets respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of workers, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 worker, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog="python -m scoop_launch",
        description="Run a Python script with SCOOP workers on every local core.",
        epilog="Example: python -m scoop_launch -n 4 examples/full_tree.py",
    )
    parser.add_argument(
        "-n",
        "--workers",
        "--number-of-workers",
        dest="workers",
        type=_positive_int,
        metavar="N",
        help="number of workers (default: the usable CPUs, here %(default)s)",
        default=usable_cpus(),
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log errors only")
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
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m scoop_launch`` and the ``scoop`` command."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.list_transports:
        sys.exit(list_transports())
    if options.script is None:
        parser.error("the script to run is missing")
    if not os.path.isfile(options.script):
        parser.error(f"script {options.script!r} not found (or not a file)")
    try:
        transport = _plugins.choose_transport(options.transport)
    except (NoTransportError, UnknownTransportError) as exc:
        parser.exit(USAGE_ERROR, f"{parser.prog}: error: {exc}\n")
    level = "ERROR" if options.quiet else ("WARNING", "INFO", "DEBUG")[min(options.verbose, 2)]
    config = RunConfig(
        script=os.path.abspath(options.script),
        args=list(options.args),
        workers=options.workers,
        transport=transport.info.name,
        log_level=level,
        log_file=os.path.abspath(options.log) if options.log else None,
        debug=options.debug,
    )
    sys.exit(run(config))
