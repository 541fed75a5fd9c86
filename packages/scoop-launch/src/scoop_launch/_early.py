"""Ctrl-C before the run starts: the launcher leaves quietly (nothing is running yet).

Installed first thing by ``python -m scoop_launch`` (and by the ``scoop`` command), so that a
Ctrl-C while Python imports the launcher or reads the command line ends it with one line and the
usual exit code (130), not a KeyboardInterrupt traceback. The run replaces these handlers with
its own once it starts processes (it then stops them).
"""

from __future__ import annotations

import os
import signal
import sys


def interrupted_early(signum: int, _frame: object) -> None:
    """A signal before the run started: say so and exit at once."""
    sys.stderr.write(f"scoop: {signal.Signals(signum).name} before the run started\n")
    sys.stderr.flush()
    prestart = sys.modules.get("scoop_launch._prestart")
    if prestart is not None:  # os._exit runs no exit handler: its process goes now
        prestart.discard()
    os._exit(128 + signum)


def quiet_interrupts() -> None:
    """Make SIGINT and SIGTERM end the launcher quietly until the run installs its handlers."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupted_early)


__all__ = ["interrupted_early", "quiet_interrupts"]
