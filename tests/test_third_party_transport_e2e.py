"""A third-party transport installed as a stranger would: examples/third_party_transport.

The example is built as a wheel and installed with uv into fresh virtual environments next to
scoop-core and scoop-launch only (no scoop-zmq): the launcher must find it through its entry
point and run a script with it, and must say clearly what to install when the transport asked for
(or any transport at all) is missing. ``nox -s third_party`` runs the fuller version.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scoop_e2e_support import ROOT, kill_marked, marked_env, new_marker

UV = shutil.which("uv")
EXAMPLE = ROOT / "examples" / "third_party_transport"
CORE_AND_LAUNCH = [str(ROOT / "packages" / "scoop-core"), str(ROOT / "packages" / "scoop-launch")]
USAGE_ERROR = 2

pytestmark = [
    pytest.mark.skipif(UV is None, reason="uv is not on PATH (nox's tests session installs it)"),
    pytest.mark.timeout(300),
]


def _uv(*args: str | Path, timeout: float = 120) -> None:
    assert UV is not None
    result = subprocess.run(
        [UV, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert result.returncode == 0, f"uv {' '.join(map(str, args))}\n{result.stderr}"


def _venv(path: Path, *packages: str) -> Path:
    """A fresh virtual environment at ``path`` with ``packages``; return its python."""
    _uv("venv", "--quiet", "--python", sys.executable, path)
    python = path / "bin" / "python"
    # --no-sources: otherwise uv applies the workspace's [tool.uv.sources] and installs
    # scoop-core editable, which is not what a user gets.
    _uv("pip", "install", "--quiet", "--no-sources", "--python", python, *packages)
    return python


def _launch(python: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scoop_launch args`` to the end; kill the whole run if it hangs."""
    marker = new_marker()
    env = marked_env(marker)
    env.pop("SCOOP_TRANSPORT", None)
    proc = subprocess.Popen(
        [str(python), "-m", "scoop_launch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        kill_marked(marker)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"command: {' '.join(result.args)}\nexit code: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


@pytest.fixture(scope="module")
def example_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with scoop-core, scoop-launch and the example transport's wheel, nothing else."""
    base = tmp_path_factory.mktemp("third_party")
    _uv("build", "--wheel", "--quiet", "--out-dir", base / "dist", EXAMPLE)
    (wheel,) = (base / "dist").glob("scoop_tcp_example-*.whl")
    return _venv(base / "venv", *CORE_AND_LAUNCH, str(wheel))


def test_launcher_runs_a_script_over_the_example_transport(example_python: Path) -> None:
    listing = _launch(example_python, "--list-transports")
    assert listing.returncode == 0, _explain(listing)
    assert [line.split()[:2] for line in listing.stdout.splitlines()] == [
        ["tcp-example", "scoop-tcp-example"]
    ], _explain(listing)

    result = _launch(
        example_python, "--transport", "tcp-example", "-n", "2", "examples/full_tree.py", "3"
    )
    assert result.returncode == 0, _explain(result)
    assert "full_tree: 81 leaves, total = 3240" in result.stdout.splitlines(), _explain(result)
    assert "Traceback" not in result.stderr, _explain(result)


def test_missing_transport_names_the_installed_ones_and_the_pip_command(
    example_python: Path,
) -> None:
    result = _launch(example_python, "--transport", "zmq", "-n", "2", "examples/hello_map.py")
    assert result.returncode == USAGE_ERROR, _explain(result)
    assert "installed: tcp-example" in result.stderr, _explain(result)
    assert "pip install scoop-zmq" in result.stderr, _explain(result)
    assert "Traceback" not in result.stderr, _explain(result)


def test_no_transport_installed_at_all(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", *CORE_AND_LAUNCH)
    result = _launch(python, "-n", "2", "examples/hello_map.py")
    assert result.returncode == USAGE_ERROR, _explain(result)
    assert "no SCOOP transport is installed" in result.stderr, _explain(result)
    assert "pip install scoop-zmq" in result.stderr, _explain(result)
    assert "Traceback" not in result.stderr, _explain(result)
