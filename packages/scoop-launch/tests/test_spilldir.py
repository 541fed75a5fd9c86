"""A run's directory in shared memory: private, removed with the run, and when its launcher was
killed outright, by the next launcher (scoop_launch._spilldir)."""

import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from scoop_launch import _spilldir
from scoop_launch._spilldir import OWNER_FILE, SpillDir, remove_abandoned

# A launcher that makes its directory, says where, and waits to be killed.
HOLDER = """
from scoop_launch._spilldir import SpillDir
spill = SpillDir.create()
open(spill.path + "/0-1-0", "wb").write(b"x" * 4096)
print(spill.path, flush=True)
input()
"""


@pytest.fixture
def holder():
    started = []

    def start() -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        started.append((proc, path))
        return proc, path

    yield start
    for proc, path in started:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(path, ignore_errors=True)


def test_a_directory_is_private_locked_and_removed_whole():
    spill = SpillDir.create()
    assert spill is not None
    try:
        assert spill.path.startswith("/dev/shm/scoop-")
        assert stat.S_IMODE(os.stat(spill.path).st_mode) == 0o700
        assert os.listdir(spill.path) == [OWNER_FILE]
        with open(os.path.join(spill.path, "1-2-3"), "wb") as file:
            file.write(b"left unread")
    finally:
        spill.remove()
    assert not os.path.exists(spill.path)


def test_it_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SCOOP_SHARED_MEMORY", "off")
    assert SpillDir.create() is None


@pytest.mark.timeout(30)
def test_the_directory_of_a_killed_launcher_goes_and_a_living_ones_stays(holder):
    killed, killed_path = holder()
    _, living_path = holder()
    making = os.path.join(_spilldir.SHARED_MEMORY_ROOT, "scoop-being-made")
    os.mkdir(making, 0o700)  # no lock file yet: another launcher is making it right now
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        removed = remove_abandoned()
        assert killed_path in removed and not os.path.exists(killed_path)
        assert os.path.exists(os.path.join(living_path, "0-1-0"))  # its launcher holds the lock
        assert os.path.exists(making)
    finally:
        os.rmdir(making)
