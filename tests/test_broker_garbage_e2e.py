"""Garbage, truncated and unauthenticated frames sent to the broker are dropped and logged."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "garbage_to_broker.py"


@pytest.mark.timeout(60)
def test_garbage_on_broker_port_is_dropped_and_run_goes_on():
    result = subprocess.run(
        [sys.executable, "-m", "scoop_launch", "-n", "2", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    assert "run unaffected" in result.stdout
    # The four well-framed bad messages, and whatever ZeroMQ made of the raw bytes (it reads
    # them as legacy ZMTP 1.0 frames), are dropped; the first ten drops are logged one by one.
    logged = result.stderr.count("broker dropped a message")
    assert 4 <= logged <= 10, result.stderr
    for reason in ("bad magic", "header of 2 bytes", "authentication check", "header of 0 bytes"):
        assert reason in result.stderr
    assert re.search(r"broker dropped \d+ messages that failed", result.stderr)
    assert "Traceback" not in result.stderr
