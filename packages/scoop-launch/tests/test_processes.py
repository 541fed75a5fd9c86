"""A local process as the launcher sees it: its end is known as soon as its watcher sees it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from scoop_launch._processes import Local


@pytest.mark.timeout(30)
def test_wait_ended_follows_the_watching_thread() -> None:
    popen = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    process = Local("worker 1", popen, 1)
    codes: list[int] = []
    watcher = threading.Thread(target=lambda: codes.append(process.wait()))
    watcher.start()
    try:
        assert not process.wait_ended(0.05)  # alive: the wait times out
        assert popen.stdin is not None
        popen.stdin.close()  # EOF: it ends
        assert process.wait_ended(20)
        watcher.join(20)
        assert codes == [0]
        assert process.wait_ended(0)  # already ended: at once, whatever the timeout
        assert process.wait_ended(-1)
    finally:
        popen.kill()
        popen.wait()
