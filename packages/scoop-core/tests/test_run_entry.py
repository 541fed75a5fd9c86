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


def _worker_line(script: str, **config: object) -> str:
    """A worker's configuration line (worker 1 of 2 unless ``config`` says otherwise)."""
    line = {
        "secret": os.urandom(32).hex(),
        "transport": _a_transport(),
        "index": 1,
        "size": 2,
        "script": script,
        **config,
    }
    return json.dumps(line) + "\n"


def _start_worker(script: str, **config: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoop._run", "worker"],
        input=_worker_line(script, **config),
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


def test_python_m_scoop_without_the_launcher_says_what_to_install():
    import subprocess
    import sys

    # scoop_launch made unimportable, as in an environment with scoop-core alone.
    code = (
        "import sys, runpy; sys.modules['scoop_launch'] = None; "
        "runpy.run_module('scoop', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install scoop-launch" in done.stderr, done.stderr


def test_the_original_scoop_in_the_same_folder_is_named_with_the_fix(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import scoop

    mixed = tmp_path / "site" / "scoop"
    shutil.copytree(Path(scoop.__file__).parent, mixed)
    (mixed / "_control.py").write_text("# the original SCOOP's\n")
    (mixed / "bootstrap").mkdir()
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    for command in (["-c", "import scoop"], ["-m", "scoop_launch", "--help"]):
        done = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode != 0, done.stdout
        assert "the original SCOOP (0.7) is installed in the same folder" in done.stderr
        assert "pip uninstall -y scoop scoop-core" in done.stderr, done.stderr


def _imported_by(role: str, line: dict[str, object]) -> set[str]:
    """The modules ``python -m scoop._run role`` imported, up to where ``line`` makes it stop."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scoop._run", role],
        input=json.dumps(line) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {
        row.rsplit("|", 1)[1].strip()
        for row in done.stderr.splitlines()
        if row.startswith("import time:") and "|" in row
    }


@pytest.mark.timeout(90)
def test_each_role_imports_only_its_own_modules(tmp_path) -> None:
    # Every process of a run starts at once on the same cores: what one imports for nothing
    # delays the first result. The broker stops at the transport (none such), the worker at
    # the script (gone), both after their own imports.
    secret = os.urandom(32).hex()
    broker = _imported_by("broker", {"secret": secret, "transport": "no-such-transport"})
    assert "scoop._broker" in broker
    assert not broker & {"scoop._worker", "scoop._scheduler", "greenlet", "cloudpickle"}, broker
    worker = _imported_by(
        "worker",
        {
            "secret": secret,
            "transport": _a_transport(),
            "index": 1,
            "size": 2,
            "script": str(tmp_path / "gone.py"),
        },
    )
    assert "scoop._worker" in worker
    assert not worker & {"scoop._broker", "scoop._dispatch", "cloudpickle", "pluggy"}, worker


@pytest.mark.timeout(90)
def test_the_root_runs_its_script_before_the_broker_is_bound(tmp_path) -> None:
    # The launcher sends the broker's address once the broker is bound; the root does not wait
    # for it: its first tasks run here. Without the address (the launcher closed the pipe),
    # it ends with the cause named.
    script = tmp_path / "first.py"
    script.write_text(
        "import operator\n"
        "from scoop import futures\n"
        "if __name__ == '__main__':\n"
        "    print('first', futures.submit(operator.neg, 1).result(), flush=True)\n"
        "    print('map', list(futures.map(abs, [-2, -3])), flush=True)\n"
    )
    root = subprocess.Popen(
        [sys.executable, "-m", "scoop._run", "worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert root.stdin is not None and root.stdout is not None
        root.stdin.write(_worker_line(str(script), index=0, root=True))
        root.stdin.flush()
        assert root.stdout.readline() == "first -1\n"
        assert root.stdout.readline() == "map [2, 3]\n"
        root.stdin.close()  # no address will come
        assert root.wait(30) == STARTUP_FAILED
        stderr = root.stderr.read() if root.stderr else ""
        assert "worker 0 on host" in stderr and "could not join the run" in stderr, stderr
        assert "before sending the broker's address" in stderr, stderr
        assert "Traceback" not in stderr, stderr
    finally:
        root.kill()
        root.wait()
