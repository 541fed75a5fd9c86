"""The launcher's private directories, and those of launchers that were killed outright.

A launcher keeps a run directory (``/tmp/scoop-run-XXXX``: the workers' running slots, the
trace), as does the agent of each other host (its workers' slots), and, on one machine, a
directory in shared memory for large payloads (``/dev/shm/scoop-XXXX``, see scoop._spill), and
removes both when the run ends. A launcher killed outright (SIGKILL, a notebook's kernel killed)
cannot, and its workers die with it: what they left would stay, in memory for the second. So
each directory holds a lock file, taken by the launcher that made it for as long as that process
lives (``flock``: the kernel releases it however the process dies, and it works across PID
namespaces that share the directory), and each new launcher or agent removes this user's
directories whose lock it can take.

Workers of one machine also share a directory of the run's direct-path sockets
(``/tmp/scoop-UID-HASH``, see scoop._direct), made by whichever worker comes first and removed by
the last to leave, or by the launcher at the end. Nobody holds a lock on it; it is abandoned when
no socket in it has a process behind it any more (connecting to one is refused) and none was bound
or removed for a minute.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterable

#: Where the shared-memory directories go (Linux; elsewhere there is none).
SHARED_MEMORY_ROOT = "/dev/shm"
#: Every directory of both kinds starts so (a run directory with RUN_PREFIX).
PREFIX = "scoop-"
RUN_PREFIX = PREFIX + "run-"
#: The file whose lock says a directory's launcher is alive.
OWNER_FILE = ".owner"
#: Where the direct-path directories go, and their names (scoop._direct._run_directory_name).
CHANNELS_ROOT = "/tmp"
CHANNELS_NAME = re.compile(rf"scoop-{os.getuid()}-[0-9a-f]{{20}}")
#: A direct-path directory changed more recently than this may be getting its first socket.
CHANNELS_QUIET_SECONDS = 60.0


class OwnedDir:
    """A private directory (mode 0700), and the lock that says its launcher is alive."""

    def __init__(self, path: str, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def create(cls, parent: str, prefix: str) -> OwnedDir:
        """Make one under ``parent``; OSError if it cannot be made or locked."""
        path = tempfile.mkdtemp(prefix=prefix, dir=parent)
        try:
            # Locked under another name first: a sweeping launcher never sees it unlocked.
            making = os.path.join(path, OWNER_FILE + ".new")
            fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(making, os.path.join(path, OWNER_FILE))
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, fd)

    def remove(self) -> None:
        """Remove the directory and what is left in it (the run is over)."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def shared_memory_dir() -> OwnedDir | None:
    """A run's directory in shared memory; None where there can be none.

    ``SCOOP_SHARED_MEMORY=off`` turns the hand-over off (everything then goes in messages).
    """
    if os.environ.get("SCOOP_SHARED_MEMORY", "").lower() in ("off", "0", "no"):
        return None
    if not os.path.isdir(SHARED_MEMORY_ROOT):
        return None
    try:
        return OwnedDir.create(SHARED_MEMORY_ROOT, PREFIX)
    except OSError:
        return None


def run_dir() -> OwnedDir:
    """A run's private directory under the temporary directory (OSError if it cannot be)."""
    return OwnedDir.create(tempfile.gettempdir(), RUN_PREFIX)


def remove_abandoned(keep: Iterable[str] = ()) -> list[str]:
    """Remove this user's directories whose launcher or workers are gone; the paths removed.

    A run or shared-memory directory without its lock file is being made right now, or is not
    ours to judge (made by an older version): left alone. A direct-path directory goes once it
    is silent (see ``_silent``).
    """
    removed: list[str] = []
    kept = set(keep)
    for parent in dict.fromkeys((SHARED_MEMORY_ROOT, tempfile.gettempdir(), CHANNELS_ROOT)):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            path = os.path.join(parent, name)
            if not name.startswith(PREFIX) or path in kept:
                continue
            if _abandoned(path) or (
                parent == CHANNELS_ROOT and CHANNELS_NAME.fullmatch(name) and _silent(path)
            ):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _abandoned(path: str) -> bool:
    """Whether ``path`` is this user's and its launcher is gone (its lock can be taken)."""
    try:
        if os.lstat(path).st_uid != os.getuid():
            return False
        fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its launcher holds it: alive
    finally:
        os.close(fd)
    return True


def _silent(path: str) -> bool:
    """Whether the direct-path directory ``path`` is this user's and no process listens in it.

    A socket whose process is gone refuses connections; a live one accepts them (nothing is
    sent). The quiet minute keeps a directory that a worker just made, or just bound in, from
    being judged before its socket is there.
    """
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        if time.time() - info.st_mtime < CHANNELS_QUIET_SECONDS:
            return False
        names = os.listdir(path)
    except OSError:
        return False
    for name in names:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(os.path.join(path, name))
        except (ConnectionRefusedError, FileNotFoundError):
            continue  # nobody behind it (or removed meanwhile)
        except OSError:
            return False  # not a socket, or not ours to judge: left alone
        else:
            return False  # a worker of a living run
        finally:
            probe.close()
    return True
