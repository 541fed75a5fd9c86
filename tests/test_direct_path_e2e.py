"""The direct path between workers of one machine (scoop._direct), end to end.

tests/scripts/direct_path.py runs at -n 3 on every transport with the direct path on, and once
with ``SCOOP_DIRECT_PATH=off``; each of its checks is reported as its own test. They assert
that tasks a waiter with a timeout awaits run on other workers, travel on the direct path (the
root's counters) when it is on, spread over the idle workers, and run again when the worker
holding one is killed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scoop_e2e_support import (
    SCRIPTS,
    LaunchResult,
    check_names,
    installed_transport_names,
    run_launcher,
)

SCRIPT = SCRIPTS / "direct_path.py"
CASES = [(transport, "on") for transport in installed_transport_names()] + [("zmq", "off")]
_RUNS: dict[tuple[str, str], LaunchResult] = {}


def _run(transport: str, mode: str, tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    key = (transport, mode)
    if key not in _RUNS:
        markers: Path = tmp_path_factory.mktemp(f"direct-{transport}-{mode}")
        env = {"SCOOP_TRANSPORT": transport, "SCOOP_TEST_MARKERS": str(markers)}
        if mode == "off":
            env["SCOOP_DIRECT_PATH"] = "off"
        _RUNS[key] = run_launcher(SCRIPT, mode, n=3, timeout=150, env=env)
    return _RUNS[key]


@pytest.mark.parametrize("name", check_names("direct_path.py"))
@pytest.mark.parametrize(("transport", "mode"), CASES, ids=[f"{t}-{m}" for t, m in CASES])
def test_direct_path(transport, mode, name, tmp_path_factory):
    if transport not in installed_transport_names():
        pytest.skip(f"transport {transport} is not installed")
    result = _run(transport, mode, tmp_path_factory)
    lines = result.stdout.splitlines()
    context = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert any(line.startswith(f"CHECK {name} PASS") for line in lines), context
    assert result.returncode == 0, context
    assert not result.left_at_exit, f"processes left: {result.left_at_exit}"
    if name == "check_a_worker_killed_holding_a_direct_task":
        killed = re.search(r"^KILLED worker (\d+)", result.stdout, re.M)
        assert killed, context
        victim = killed.group(1)
        lost = rf"^scoop: worker {victim} on host \S+ lost \(.*\); \d+ tasks? to run again$"
        assert re.search(lost, result.stderr, re.M), context
        directory = re.search(r"^DIRECT DIRECTORY (\S+)$", result.stdout, re.M)
        assert (directory is not None) == (mode == "on"), context
        if directory is not None:  # the killed worker's socket could not go with it
            assert not Path(directory.group(1)).exists(), "the run left its sockets in /tmp"
