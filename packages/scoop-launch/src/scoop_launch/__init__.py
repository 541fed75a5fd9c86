"""The SCOOP launcher: ``python -m scoop_launch [options] script.py [args...]``.

Layout::

    __main__.py    python -m scoop_launch
    _early.py      Ctrl-C before the run starts: one line, no traceback
    _prestart.py   the root's process, started before the launcher is ready
    _cli.py        command line: usage errors (exit 2), --list-transports, the run
    _parser.py     the options, shared with scoop.Executor
    _hosts.py      host sources (hostfile, --hosts, allocations) and placement
    _hostnames.py  host names: syntax, IPv6, SLURM node lists; the Host type
    _allocations.py  batch schedulers' allocations (SLURM, PBS, SGE, LSF)
    _lifecycle.py  one run: start the broker and the workers, wait for the root, tear down
    _runconfig.py  what one run needs (RunConfig)
    _watching.py   the run's processes ending: what ends the run, what the broker is told
    _relaying.py   the broker's lines to the launcher; the root's standard input
    _processes.py  local processes, addresses
    _owneddir.py   the run's private directories (and those of killed launchers)
    _ssh.py        ssh connections and the per-host agent as seen from here
    _agent.py      the per-host agent (python -m scoop_launch._agent, on remote hosts)
    _agent_connect.py  its streams over TCP, for a starter without standard input (pbsdsh)
    _runfile.py    the run file that lets --add-workers join a running run
    _join.py       --add-workers: workers added to a running run, and their supervisor
    _trace.py      a run's records merged: the Chrome trace, the task tree
    _stats.py      per-worker figures and the --stats table

Importing the package is cheap: what it exports is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoop_launch.__main__ import main
    from scoop_launch._errors import LaunchError
    from scoop_launch._lifecycle import Run, RunConfig

__all__ = ["LaunchError", "Run", "RunConfig", "__version__", "main"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "main":
        from scoop_launch.__main__ import main

        return main
    if name in ("LaunchError", "Run", "RunConfig"):
        from scoop_launch import _lifecycle

        return getattr(_lifecycle, name)
    raise AttributeError(f"module 'scoop_launch' has no attribute {name!r}")
