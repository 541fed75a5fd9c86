"""Large payloads between the workers of one machine go through shared memory (scoop._spill).

The root runs no task, so every payload travels. ``tests/scripts/large_payloads.py`` says how
each one landed: an argument and a result of several MiB must land as a mapping of a file of the
run's directory in ``/dev/shm``, that file gone once it was read; a task whose first run killed
its worker runs again from a file of its own; a shared constant is one file every worker maps;
and the directory goes with the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scoop_e2e_support import SCRIPTS, LaunchResult, installed_transport_names, run_launcher


def _launch(tmp_path: Path, transport: str, env: dict[str, str] | None = None) -> LaunchResult:
    return run_launcher(
        SCRIPTS / "large_payloads.py",
        str(tmp_path / "died-once"),
        n=3,
        timeout=120,
        env={"SCOOP_TRANSPORT": transport, **(env or {})},
        options=["--root-runs-no-task"],
    )


def _lines(result: LaunchResult, tag: str) -> list[str]:
    return [line[len(tag) + 1 :] for line in result.stdout.splitlines() if line.startswith(tag)]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", installed_transport_names())
def test_large_payloads_travel_in_shared_memory_and_leave_nothing(
    tmp_path: Path, transport: str
) -> None:
    result = _launch(tmp_path, transport)
    assert result.returncode == 0, result.explain()
    (directory,) = _lines(result, "SPILL_DIR")
    assert directory.startswith("/dev/shm/scoop-"), result.explain()
    # Both ways through shared memory, mapped where they landed.
    assert _lines(result, "ORIGIN") == ["mmap mmap"], result.explain()
    # Each file is read once and removed by its reader; the lost worker's task ran again.
    assert _lines(result, "LEFT") == ["[]", "[]"], result.explain()
    assert _lines(result, "RERUN") == [str(4 << 20)], result.explain()
    assert "lost" in result.stderr, result.explain()
    # A shared constant: mapped by every worker from one file, which stays until the end.
    assert _lines(result, "CONST") == ["['mmap'] 1"], result.explain()
    assert not os.path.exists(directory), "the run's shared memory outlived it"


@pytest.mark.timeout(150)
def test_shared_memory_can_be_turned_off(tmp_path: Path) -> None:
    result = _launch(tmp_path, "zmq", env={"SCOOP_SHARED_MEMORY": "off"})
    assert result.returncode == 0, result.explain()
    assert _lines(result, "SPILL_DIR") == ["-"], result.explain()
    (origins,) = _lines(result, "ORIGIN")
    assert "mmap" not in origins, result.explain()
    assert _lines(result, "RERUN") == [str(4 << 20)], result.explain()
    assert _lines(result, "CONST") == ["['Frame'] 0"], result.explain()
