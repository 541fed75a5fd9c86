"""A run's directory in shared memory (``/dev/shm``), for large payloads (see scoop._spill).

The launcher makes one for a run confined to this machine and removes it when the run ends. A
launcher killed outright (SIGKILL, a notebook's kernel killed) cannot, and its workers die with
it; what they left stays in memory. So each directory holds a lock, taken by the launcher that
made it for as long as it lives (``flock``: the kernel releases it when that process dies, by
any means, and it works across PID namespaces that share ``/dev/shm``), and each new launcher
removes the directories of the user whose lock it can take.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil

#: Where the directories go (Linux; elsewhere there is none).
SHARED_MEMORY_ROOT = "/dev/shm"
PREFIX = "scoop-"
#: The file of a directory whose lock says its launcher is alive.
OWNER_FILE = ".owner"


class SpillDir:
    """A run's directory in shared memory, and the lock that says its launcher is alive."""

    def __init__(self, path: str, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def create(cls) -> SpillDir | None:
        """A new private directory (mode 0700); None where there can be none.

        ``SCOOP_SHARED_MEMORY=off`` turns the hand-over off (everything then goes in messages).
        """
        if os.environ.get("SCOOP_SHARED_MEMORY", "").lower() in ("off", "0", "no"):
            return None
        if not os.path.isdir(SHARED_MEMORY_ROOT):
            return None
        import tempfile  # here: only a run on one machine makes one

        try:
            path = tempfile.mkdtemp(prefix=PREFIX, dir=SHARED_MEMORY_ROOT)
        except OSError:
            return None
        try:
            fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return None
        return cls(path, fd)

    def remove(self) -> None:
        """Remove the directory and what is left in it (the run is over)."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def remove_abandoned(keep: str = "") -> list[str]:
    """Remove this user's directories whose launcher is gone; the paths removed.

    One without its lock file is being made right now (or is not ours to judge): left alone.
    """
    removed: list[str] = []
    try:
        names = os.listdir(SHARED_MEMORY_ROOT)
    except OSError:
        return removed
    uid = os.getuid()
    for name in names:
        path = os.path.join(SHARED_MEMORY_ROOT, name)
        if not name.startswith(PREFIX) or path == keep:
            continue
        try:
            if os.lstat(path).st_uid != uid:
                continue
            fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its launcher holds it: alive
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
        removed.append(path)
    return removed
