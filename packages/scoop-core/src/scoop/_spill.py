"""Large payloads handed over in shared memory between the processes of one machine.

Through the broker, a payload crosses the transport twice each way: on one machine, 64 MiB there
and back cost four socket copies in and four out, against two pipe copies for a process pool.
When the launcher confined a run to one machine, it makes a directory of its own in ``/dev/shm``
(mode 0700, removed when the run ends; see scoop_launch._owneddir), and a frame of at least
``SPILL_MIN_BYTES`` leaves its sender as a file there: the message carries the file's name, and
its receiver maps the file (copy-on-write) and unlinks it. One copy each way, and the broker
forwards a few bytes. A shared constant's file is mapped by every worker (a NumPy array in it is
one copy in memory for all, until one writes) and stays until the run ends.

On the wire, such an entry has the flag :data:`SPILLED`; its spilled frames are empty, and one
more frame, the last, lists them: ``index size path`` per line, UTF-8. A frame is read by one
process only: a task by the worker that runs it, a result by its submitter. What is never read
goes with the directory at the end of the run, or earlier: a task's files when its Future ends
(it was cancelled, or ran elsewhere after its worker was lost, from a fresh spill). Where
``/dev/shm`` is missing or full, frames travel in the message as before.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
from collections.abc import Iterable

from scoop.transport import Frame

#: Frames at least this large go through shared memory. Not tuned: on the benchmark machine,
#: `bytes` of 1 to 16 MiB took as long either way (within its noise), 32 MiB and more 1.4-1.9x
#: less through shared memory; below 1 MiB not measured. NumPy arrays skip the copy out of it.
SPILL_MIN_BYTES = 1 << 20
#: The entry flag: the last frame lists frames that are files (see the module docstring).
SPILLED = 1


class SpillStore:
    """One process's side of the hand-over: its files, and the tasks they carry."""

    def __init__(self, directory: str, owner: int) -> None:
        self.directory = directory
        self._prefix = os.path.join(directory, f"{owner}-{os.getpid()}-")
        self._numbers = itertools.count()
        #: Files of own tasks sent out, by task id: removed when the task's Future ends.
        self._tasks: dict[int, list[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spill(self, task_id: int, frames: list[Frame], *, keep: bool) -> list[Frame] | None:
        """Frames with the large ones written to files (and the list appended), or None.

        None: nothing was large enough, or the files could not be written (the frames then
        travel as they are). ``keep``: the frames are a task's, to remove when it ends.
        """
        # Every result and task passes here: len, not a memoryview each (the frames that leave
        # are bytes or byte views, whose len is their size, as Outbox.keep counts them).
        if all(len(frame) < SPILL_MIN_BYTES for frame in frames):
            return None
        files: list[tuple[int, int, str]] = []  # frame index, size, path
        out: list[Frame] = []
        for index, frame in enumerate(frames):
            view = memoryview(frame)
            if view.nbytes < SPILL_MIN_BYTES:
                out.append(frame)
                continue
            path = f"{self._prefix}{next(self._numbers)}"
            try:
                _write(path, view)
            except OSError:
                _remove(path for _, _, path in files)
                return None
            files.append((index, view.nbytes, path))
            out.append(b"")
        if keep:
            self._tasks.setdefault(task_id, []).extend(path for _, _, path in files)
        out.append("\n".join(f"{index} {size} {path}" for index, size, path in files).encode())
        return out

    def release(self, task_id: int) -> None:
        """A task ended: remove what of its files no worker read (a read file is gone already)."""
        _remove(self._tasks.pop(task_id, ()))


def unspill(frames: list[Frame], *, shared: bool = False) -> list[Frame]:
    """The frames of a spilled entry, its files mapped and unlinked (read once).

    ``shared``: a shared constant's, which every worker maps (their pages shared until one
    writes), and a worker that joins later too: its files stay until the run ends.
    """
    out = list(frames[:-1])
    for index, size, path in _files(frames):
        out[index] = _map(path, size, remove=not shared)
    return out


def discard(frames: list[Frame]) -> None:
    """Remove the files of a spilled entry nobody will read (a result for no task of ours)."""
    _remove(path for _, _, path in _files(frames))


def _files(frames: list[Frame]) -> list[tuple[int, int, str]]:
    """The (frame index, size, path) of each file of a spilled entry: its last frame."""
    files = []
    for line in bytes(frames[-1]).decode().splitlines():
        index, size, path = line.split(" ", 2)
        files.append((int(index), int(size), path))
    return files


def _write(path: str, view: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = view.cast("B")
        written = 0
        while written < view.nbytes:  # os.write may write part (and raises ENOSPC when full)
            written += os.write(fd, view[written:])
    except OSError:
        _remove([path])
        raise
    finally:
        os.close(fd)


def _map(path: str, size: int, *, remove: bool) -> memoryview:
    fd = os.open(path, os.O_RDONLY)
    try:
        held = os.fstat(fd).st_size
        if held != size:
            raise OSError(f"{path} holds {held} bytes, its message says {size}")
        # Private and writable: what the task writes into an array stays its own. Not
        # MAP_POPULATE: on a writable private mapping it copies every page at once (twice the
        # time of faulting them in as they are read, and a copy of what is never written).
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
        if remove:
            _remove([path])
    return memoryview(mapped)


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
