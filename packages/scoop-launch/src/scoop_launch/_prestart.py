"""The root's process, started before the launcher has read its command line through.

Before it starts anything, the launcher imports itself, finds the transports and places the
workers: about 50 ms on a small machine. The root's own start (Python, scoop's imports, then the
script's) is the longest way to a run's first result. So ``python -m scoop_launch`` starts a
worker process first thing, which imports what every worker needs while the launcher gets
ready, then waits for its configuration on its standard input (``scoop._run``).

The command line is only glanced at: nothing is started for what surely starts no run (help,
``--list-transports``, ``--dry-run``, ``--add-workers``). The run makes the process its root only
if the root is a worker of this machine (:func:`take`); one not taken is killed as the launcher
exits (:func:`discard`). Killed before its configuration, it did nothing but import modules.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

#: Options after which the launcher starts no run (and their abbreviations, which argparse takes).
NO_RUN_OPTIONS = ("--help", "--list-transports", "--dry-run", "--add-workers")

_started: subprocess.Popen[bytes] | None = None

#: Asks glibc's malloc (2.35 and later; other C libraries ignore it) to have the large blocks it
#: maps backed by transparent huge pages: a 64 MiB message is then faulted in 32 pages instead
#: of 16384. Each large message a process receives is a fresh block (libzmq allocates it), so the
#: faults were most of the cost of moving one: a 64 MiB echo through the broker, one host,
#: shared memory off, took 819k page faults and 5.4 s of CPU over the run's processes; 25k and
#: 3.5 s with it (``perf stat -e page-faults``); 0.31-0.33 GB/s -> 0.37-0.75 GB/s by hand.
MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"


def command(python: str, role: str) -> list[str]:
    """The command line of a local process of the run (its configuration comes on its stdin)."""
    return [python, "-m", "scoop._run", role]


def spawn(python: str, role: str, *, pipe_stdout: bool = False) -> subprocess.Popen[bytes]:
    """Start a local process of the run, as the launcher starts every one of them.

    Here, not in the run's modules, so that the root's process can be started before those are
    imported; one function for both, so that a process started ahead is the one the run would
    have started.
    """
    return subprocess.Popen(
        command(python, role),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if pipe_stdout else None,
        env=process_env(),
        start_new_session=True,  # its own group: the launcher stops whatever its tasks start
    )


def process_env() -> dict[str, str]:
    """The environment of a process of the run: this one's, with huge pages for large blocks.

    A user's own ``glibc.malloc.hugetlb`` setting in ``GLIBC_TUNABLES`` stands (``=0``: none).
    """
    env = dict(os.environ)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{MALLOC_TUNABLE}" if tunables else MALLOC_TUNABLE
    return env


def starts_a_run(argv: Sequence[str]) -> bool:
    """Whether ``argv`` may start a run (False only when it surely does not)."""
    if not argv:
        return False
    for arg in argv:
        if arg == "-h" or (
            arg.startswith("--") and len(arg) > 2 and any(o.startswith(arg) for o in NO_RUN_OPTIONS)
        ):
            return False
    return True


def start(argv: Sequence[str]) -> None:
    """Start the root's process now, unless ``argv`` surely starts no run."""
    global _started
    if _started is not None or not starts_a_run(argv):
        return
    try:
        _started = spawn(sys.executable, "worker")
    except OSError:
        return  # the run starts it the usual way, and reports what stops it
    atexit.register(discard)


def take(python: str) -> subprocess.Popen[bytes] | None:
    """The process started for the root, now the run's, if there is one and it runs ``python``."""
    global _started
    if python != sys.executable:
        return None
    taken, _started = _started, None
    return taken


def discard() -> None:
    """Kill the process started for the root if no run took it."""
    global _started
    process, _started = _started, None
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdin is not None:
        process.stdin.close()


__all__ = [
    "MALLOC_TUNABLE",
    "NO_RUN_OPTIONS",
    "command",
    "discard",
    "process_env",
    "spawn",
    "start",
    "starts_a_run",
    "take",
]
