"""scoop.Executor end to end: a plain program opens one and every check it holds is a test.

The programs (tests/scripts/executor_*.py) run as ``python script.py``: their ``__main__``
exists only in the client, which runs no task, so everything checked travels to a worker. Each
runs once per installed transport; no process of theirs may be left when they end.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from scoop_e2e_support import (
    SCRIPTS,
    LaunchResult,
    check_names,
    installed_transport_names,
    run_command,
    run_launcher,
)

import scoop
from scoop.errors import ExecutorOptionError

SCRIPT_NAMES = ("executor_api.py", "executor_faults.py", "executor_memory.py")
_RUNS: dict[tuple[str, str], LaunchResult | BaseException] = {}


def _cases() -> list[Any]:
    return [
        pytest.param(script, transport, name, id=f"{script[:-3]}-{transport}-{name}")
        for script in SCRIPT_NAMES
        for transport in installed_transport_names()
        for name in check_names(script)
    ]


def _run(script: str, transport: str) -> LaunchResult:
    key = (script, transport)
    if key not in _RUNS:
        try:
            _RUNS[key] = run_command(
                [sys.executable, str(SCRIPTS / script)],
                timeout=180,
                env={"SCOOP_TRANSPORT": transport},
                cwd=SCRIPTS,
            )
        except pytest.fail.Exception as failure:  # timed out: once for all its checks
            _RUNS[key] = failure
    result = _RUNS[key]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("script", "transport", "name"), _cases())
def test_executor(script: str, transport: str, name: str) -> None:
    result = _run(script, transport)
    assert result.leftover() == [], f"processes left behind\n{result.explain()}"
    status = re.search(rf"^CHECK {name} (PASS|FAIL)", result.stdout, re.MULTILINE)
    assert status is not None, f"{name} never ran\n{result.stdout}\n{result.stderr}"
    if status.group(1) == "FAIL":
        trace = re.search(rf"BEGIN {name}\n(.*?)END {name}", result.stdout, re.DOTALL)
        pytest.fail(trace.group(1) if trace else result.stdout)
    assert "CHECKS DONE" in result.stdout


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"workers": 0}, "needs at least 1 worker"),
        ({"workers": 2, "generations": 5}, "unknown option 'generations'"),
        ({"hostfile": "/nonexistent/hosts"}, "/nonexistent/hosts"),
        ({"transport": "carrier-pigeon"}, "carrier-pigeon"),
        ({"hosts": ["a"], "hostfile": "h"}, "cannot be used together"),
        ({"heartbeat_timeout": -1}, "0 or more seconds"),
    ],
)
def test_bad_options_raise_a_clear_error_and_start_nothing(
    options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ExecutorOptionError, match=re.escape(expected)):
        scoop.Executor(**options)


def test_without_scoop_launch_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['scoop_launch'] = None\n"
        "import scoop\n"
        "try:\n"
        "    scoop.Executor(1)\n"
        "except scoop.errors.LauncherMissingError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    out = run_command([sys.executable, "-c", code], timeout=60)
    assert "ERROR" in out.stdout and "pip install scoop-launch" in out.stdout, out.explain()


def test_an_executor_closed_in_a_launched_run_gives_the_run_back() -> None:
    result = run_launcher(
        SCRIPTS / "executor_in_a_run.py", n=2, options=["--root-runs-no-task"], timeout=120
    )
    assert result.returncode == 0, result.explain()
    assert "INSIDE 1" in result.stdout, result.explain()
    # Back on the run's own workers (worker 1; the root runs no task), not serial in the root.
    assert "AFTER [1]" in result.stdout, result.explain()
    assert "not running" not in result.stderr, result.explain()
