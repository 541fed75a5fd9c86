"""Command line of the launcher."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback

from scoop import _plugins
from scoop_launch._config import OptionError, prepare, run_config
from scoop_launch._lifecycle import RunConfig, run
from scoop_launch._options import RemoteHostError
from scoop_launch._parser import USAGE_ERROR, build_parser
from scoop_launch._processes import is_local
from scoop_launch._starters import CONNECTING_BACK, describe


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
