"""The running-task slot: which task's code a worker runs, readable after the worker died.

A worker that dies (a segfault, ``os._exit``, the out-of-memory killer) cannot say which task
killed it. So it keeps the id of the task whose code it is running in 8 bytes of a memory-mapped
file that the launcher (or the agent on its host) created for it; whoever sees the process end
reads the file and tells the broker, which counts the death against that task (and gives the task
up after ``--max-task-deaths``). Writing costs one store per task switch; no message is sent.
"""

from __future__ import annotations

import mmap
import os
import struct

_ID = struct.Struct("<Q")


class RunningSlot:
    """The slot of this worker, mapped for writing."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _ID.size)
            self._map = mmap.mmap(fd, _ID.size)
        finally:
            os.close(fd)

    def write(self, task_id: int) -> None:
        """Record that the code of ``task_id`` runs now (0: no task's)."""
        _ID.pack_into(self._map, 0, task_id)


def read_running(path: str) -> int:
    """The task id a worker's slot holds (0 if none, or if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_ID.size)
    except OSError:
        return 0
    return _ID.unpack(data)[0] if len(data) == _ID.size else 0


__all__ = ["RunningSlot", "read_running"]
