"""Which scheduler the public API talks to in this process (or thread)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

from scoop._scheduler import Scheduler

_thread = threading.local()
_process: Scheduler | None = None

NOT_RUNNING_WARNING = (
    "SCOOP is not running, so futures run serially in this process; start the program with "
    "`python -m scoop_launch script.py` to spread it over every core"
)


def current() -> Scheduler:
    """The scheduler of this thread or process; a serial one, with a warning, outside a run."""
    global _process
    scheduler: Scheduler | None = getattr(_thread, "scheduler", None) or _process
    if scheduler is None:
        warnings.warn(NOT_RUNNING_WARNING, RuntimeWarning, stacklevel=3)
        scheduler = _process = Scheduler()
    return scheduler


class ImportingScript:
    """Stands for the scheduler while a worker imports the user's script: any use is an error.

    Workers import the script with ``__name__ != "__main__"``; code that calls the futures API at
    import time is main code missing its ``if __name__ == "__main__":`` guard, and would run the
    whole program on every worker.
    """

    def __init__(self, script: str, index: int) -> None:
        self.message = (
            f"worker {index} imported {script} and it used the SCOOP API at import time: put the "
            'script\'s main code under `if __name__ == "__main__":` (workers import the script '
            "to find its functions; only the root runs it as __main__)"
        )

    def __getattr__(self, name: str) -> Any:
        from scoop.errors import ScoopError

        raise ScoopError(self.message)


def installed() -> Scheduler | None:
    """The scheduler installed for the whole process, if any."""
    return _process


def install(scheduler: Scheduler | None, *, thread_only: bool = False) -> None:
    """Make ``scheduler`` the one the API uses, for the process or only the calling thread."""
    global _process
    if thread_only:
        _thread.scheduler = scheduler
    else:
        _process = scheduler
