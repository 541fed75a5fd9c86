"""Shared constants: values set once and readable by every worker of the run.

A constant is broadcast once to every worker (and to workers that join later), so a large object
used by many tasks travels once per worker rather than once per task. A constant set before a
task is submitted is always present on the worker that runs the task.
"""

from __future__ import annotations

from typing import Any

from scoop._runtime import current

__all__ = ["getConst", "setConst"]


def setConst(**kwargs: Any) -> None:
    """Define shared constants, as ``setConst(name=value, ...)``.

    A name can be set only once in the whole run: setting it again raises
    :class:`scoop.errors.SharedConstantError` (a TypeError).
    """
    scheduler = current()
    for name, value in kwargs.items():
        scheduler.set_constant(name, value)


def getConst(name: str, timeout: float | None = 0.1) -> Any:
    """Return the shared constant ``name``, waiting up to ``timeout`` seconds for it.

    Returns None if it is not known in time, as the original SCOOP did; ``timeout=None`` waits
    for as long as it takes.
    """
    scheduler = current()
    if scheduler.wait_constant(name, timeout):
        return scheduler.constants[name]
    return None
