"""The launcher's private directories: removed with the run, and when their launcher was killed
outright, by the next launcher (scoop_launch._owneddir)."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from scoop_launch._owneddir import (
    CHANNELS_NAME,
    CHANNELS_QUIET_SECONDS,
    CHANNELS_ROOT,
    OWNER_FILE,
    remove_abandoned,
    run_dir,
    shared_memory_dir,
)

# A launcher that makes both directories, says where, and waits to be killed.
HOLDER = """
from scoop_launch._owneddir import run_dir, shared_memory_dir
spill, run = shared_memory_dir(), run_dir()
open(spill.path + "/0-1-0", "wb").write(b"x" * 4096)
print(spill.path, run.path, flush=True)
input()
"""


@pytest.fixture
def holder():
    started = []

    def start() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        paths = proc.stdout.readline().split()
        started.append((proc, paths))
        return proc, paths

    yield start
    for proc, paths in started:
        proc.kill()
        proc.wait(10)
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("make", [shared_memory_dir, run_dir])
def test_a_directory_is_private_locked_and_removed_whole(make):
    owned = make()
    assert owned is not None
    try:
        assert os.path.basename(owned.path).startswith("scoop-")
        assert stat.S_IMODE(os.stat(owned.path).st_mode) == 0o700
        assert os.listdir(owned.path) == [OWNER_FILE]
        with open(os.path.join(owned.path, "1-2-3"), "wb") as file:
            file.write(b"left unread")
    finally:
        owned.remove()
    assert not os.path.exists(owned.path)


def test_shared_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SCOOP_SHARED_MEMORY", "off")
    assert shared_memory_dir() is None


@pytest.mark.timeout(30)
def test_the_directories_of_a_killed_launcher_go_and_a_living_ones_stay(holder, tmp_path):
    killed, killed_paths = holder()
    _, living_paths = holder()
    making = "/dev/shm/scoop-being-made"
    os.mkdir(making, 0o700)  # no lock file yet: another launcher is making it right now
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        removed = remove_abandoned()
        assert set(killed_paths) <= set(removed)
        assert not any(os.path.exists(path) for path in killed_paths)
        assert all(os.path.exists(path) for path in living_paths)  # its launcher holds the lock
        assert os.path.exists(os.path.join(living_paths[0], "0-1-0"))
        assert os.path.exists(making)
    finally:
        os.rmdir(making)


def _channels(name: str) -> str:
    path = os.path.join(CHANNELS_ROOT, f"scoop-{os.getuid()}-{name}")
    os.mkdir(path, 0o700)
    return path


def _bound(path: str) -> socket.socket:
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound.bind(path)
    return bound


def _quiet(path: str) -> None:
    """As if nothing was bound or removed in it for longer than the sweep waits."""
    past = time.time() - CHANNELS_QUIET_SECONDS - 5
    os.utime(path, (past, past))


def test_direct_path_directories_go_when_no_worker_listens_in_them():
    dead = _channels("d" * 20)  # its workers were killed: their sockets refuse
    living = _channels("a" * 20)  # one worker still listens
    fresh = _channels("f" * 20)  # just made: its first worker binds in a moment
    other = os.path.join(CHANNELS_ROOT, f"scoop-{os.getuid()}-not-a-direct-path")
    os.mkdir(other, 0o700)
    sockets = []
    try:
        for index in ("0", "1"):
            _bound(os.path.join(dead, index)).close()  # the file stays, nothing behind it
        sockets.append(_bound(os.path.join(living, "0")))
        _bound(os.path.join(living, "1")).close()
        for path in (dead, living, other):
            _quiet(path)
        removed = remove_abandoned()
        assert dead in removed and not os.path.exists(dead)
        assert os.path.exists(os.path.join(living, "0"))
        assert os.path.exists(fresh) and os.path.exists(other)
        assert not {living, fresh, other} & set(removed)
    finally:
        for bound in sockets:
            bound.close()
        for path in (dead, living, fresh, other):
            shutil.rmtree(path, ignore_errors=True)


def test_the_sweep_knows_the_direct_path_s_directory_names():
    # The name is made in scoop._direct and matched here: a new format would stop the sweep.
    from scoop._direct import _run_directory_name
    from scoop._protocol import Codec

    path = _run_directory_name(Codec(os.urandom(32)))
    assert os.path.dirname(path) == CHANNELS_ROOT
    assert CHANNELS_NAME.fullmatch(os.path.basename(path))
