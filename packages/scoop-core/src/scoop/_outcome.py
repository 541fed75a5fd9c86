"""How a task's outcome travels: exceptions packed with their traceback, rebuilt on the waiter.

Also what the root's outcome becomes: the user's traceback without SCOOP's frames, and the exit
code ``sys.exit(arg)`` means.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback

from scoop import _serialize
from scoop.errors import RemoteTraceback, ScoopError, SerializationError
from scoop.transport import Frame

_SCOOP_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class TaskLoadError(SerializationError):
    """A task received from another worker could not be unpickled here."""


class RemoteError(ScoopError):
    """A task raised an exception whose type cannot be rebuilt on this worker."""


def pack_exception(exc: BaseException, where: str) -> list[Frame]:
    """Frames of a failed task: its traceback text, and the exception if it can travel."""
    text = "".join(traceback.format_exception(exc))
    summary = _serialize.exception_summary(exc)
    meta = pickle.dumps((text, where, summary), protocol=5)
    try:
        exc_frames = _serialize.dumps(exc)
        _serialize.loads(exc_frames)  # an exception that cannot be rebuilt is sent as text
    except Exception:
        exc_frames = []
    return [meta, *exc_frames]


def rebuild_exception(frames: list[Frame]) -> BaseException:
    """The exception of a failed remote task, with its remote traceback chained as the cause."""
    text, where, summary = pickle.loads(frames[0])
    exc: BaseException | None = None
    if len(frames) > 1:
        try:
            exc = _serialize.loads(frames[1:])
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"the task raised {summary}, which cannot be rebuilt here")
    exc.__cause__ = RemoteTraceback(text)
    exc.add_note(f"(raised in a task on {where})")
    return exc


def print_user_traceback(exc: BaseException) -> None:
    """Print an uncaught exception of the user's script without SCOOP's own frames on top."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_SCOOP_DIR):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def exit_code(exc: SystemExit) -> int:
    """The process exit code ``sys.exit(arg)`` means, printing a message argument."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
