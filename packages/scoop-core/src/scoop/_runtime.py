"""Which scheduler the public API talks to in this process (or thread)."""

from __future__ import annotations

import threading
import warnings

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


def install(scheduler: Scheduler | None, *, thread_only: bool = False) -> None:
    """Make ``scheduler`` the one the API uses, for the process or only the calling thread."""
    global _process
    if thread_only:
        _thread.scheduler = scheduler
    else:
        _process = scheduler
