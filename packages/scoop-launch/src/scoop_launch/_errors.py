"""The launcher's own error: a run that could not start or had to stop."""

from __future__ import annotations


class LaunchError(Exception):
    """The run could not start or had to be aborted; the message says why."""

    #: The launcher's exit code when this ends the run.
    exit_code = 1


__all__ = ["LaunchError"]
