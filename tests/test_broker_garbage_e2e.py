"""Garbage, truncated and unauthenticated frames sent to the broker are dropped and logged."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from scoop_e2e_support import installed_transport_names

SCRIPT = Path(__file__).parent / "scripts" / "garbage_to_broker.py"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "transport", [name for name in ("zmq", "nng") if name in installed_transport_names()]
)
def test_garbage_on_broker_port_is_dropped_and_run_goes_on(transport):
    launcher = [sys.executable, "-m", "scoop_launch", "--transport", transport, "-n", "2"]
    result = subprocess.run(
        [*launcher, str(SCRIPT), transport],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    assert "run unaffected" in result.stdout
    # The four well-framed bad messages, and whatever ZeroMQ made of the raw bytes (it reads
    # them as legacy ZMTP 1.0 frames), are dropped by the broker; the first ten drops are logged
    # one by one. (nng's own handshake refuses the raw bytes, and the nng transport drops what
    # is not in its framing before the broker sees it.)
    logged = result.stderr.count("broker dropped a message")
    assert 4 <= logged <= 10, result.stderr
    for reason in ("bad magic", "header of 2 bytes", "authentication check", "header of 0 bytes"):
        assert reason in result.stderr
    assert re.search(r"broker dropped \d+ messages that failed", result.stderr)
    assert "Traceback" not in result.stderr
