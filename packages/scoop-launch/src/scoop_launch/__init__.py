"""The SCOOP launcher: ``python -m scoop_launch [options] script.py [args...]``.

Layout::

    __main__.py    python -m scoop_launch
    _cli.py        command line parsing, usage errors (exit 2), --list-transports
    _lifecycle.py  one run: start the broker and the workers, wait for the root, tear down
"""

from __future__ import annotations

from scoop_launch._cli import main
from scoop_launch._lifecycle import LaunchError, Run, RunConfig

__all__ = ["LaunchError", "Run", "RunConfig", "__version__", "main"]

__version__ = "0.1.0"
