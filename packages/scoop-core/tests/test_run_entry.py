"""``python -m scoop._run worker`` on its own: start-up failures are named, not tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scoop import _plugins
from scoop._run import STARTUP_FAILED


def _a_transport() -> str:
    installed = _plugins.installed_transports()
    if not installed:
        pytest.skip("no transport is installed")
    return next(iter(installed))


def _start_worker(script: str, **config: object) -> subprocess.CompletedProcess[str]:
    line = {
        "secret": os.urandom(32).hex(),
        "transport": _a_transport(),
        "index": 1,
        "size": 2,
        "script": script,
        **config,
    }
    return subprocess.run(
        [sys.executable, "-m", "scoop._run", "worker"],
        input=json.dumps(line) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(90)
def test_a_script_that_no_longer_compiles_is_named(tmp_path) -> None:
    # The launcher compiled it, but it changed (or differs on this host) before the worker read it.
    script = tmp_path / "changed.py"
    script.write_text("def f(:\n")
    result = _start_worker(str(script))
    assert result.returncode == STARTUP_FAILED, result.stderr
    assert "scoop: worker 1 on host" in result.stderr
    assert f"cannot read {script}" in result.stderr
    assert "SyntaxError" in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.timeout(90)
def test_a_script_gone_is_named(tmp_path) -> None:
    result = _start_worker(str(tmp_path / "gone.py"))
    assert result.returncode == STARTUP_FAILED, result.stderr
    assert "cannot read" in result.stderr and "No such file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.timeout(90)
def test_an_unwritable_log_file_falls_back_to_stderr(tmp_path) -> None:
    result = _start_worker(
        str(tmp_path / "gone.py"), log_file=str(tmp_path / "no" / "dir" / "x.log")
    )
    assert "cannot write the log file" in result.stderr and "logging to stderr" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
