"""Helpers of the end-to-end tests: run the launcher as a user would, and clean up.

Every run gets a unique marker environment variable. The launcher passes its environment to the
broker and the workers, so the processes of a run are exactly those whose ``/proc/PID/environ``
holds the marker: that is how a test checks that nothing of a run is left, and how a run that
timed out is cleaned up (each of its processes leads its own session, so killing the launcher's
process group would not reach them).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
MARKER_VAR = "SCOOP_E2E_RUN_MARKER"
#: Default time limit of one run of the launcher, in seconds.
RUN_TIMEOUT = 90.0


@dataclasses.dataclass
class LaunchResult:
    """What one run of the launcher gave."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    marker: str
    #: Processes of the run still alive when the launcher had exited (then killed).
    left_at_exit: list[int] = dataclasses.field(default_factory=list)

    def leftover(self) -> list[int]:
        """Pids of processes of this run that outlived the launcher (described)."""
        return [pid for pid in self.left_at_exit if pid]

    def explain(self) -> str:
        """The run's command, exit code and output, for assertion messages."""
        return (
            f"command: {' '.join(self.args)}\nexit code: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def launcher_command(
    script: str | os.PathLike[str],
    *args: str,
    n: int | None = 2,
    options: Sequence[str] = (),
) -> list[str]:
    """The command line of ``python -m scoop_launch [-n N] [options] script args``."""
    cmd = [sys.executable, "-m", "scoop_launch"]
    if n is not None:
        cmd += ["-n", str(n)]
    return [*cmd, *options, str(script), *args]


def new_marker() -> str:
    """A fresh value for :data:`MARKER_VAR`."""
    return uuid.uuid4().hex


def marked_env(marker: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment plus the run marker (and ``extra``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{MARKER_VAR: marker})
    env.update(extra or {})
    return env


def processes_with_marker(marker: str) -> list[int]:
    """Pids of the live (not zombie) processes whose environment holds the run's marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue  # gone, or not ours to read
        if state != b"Z" and needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def describe_processes(pids: list[int]) -> str:
    """pid, state, parent and command line of each process, for failure messages."""
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            lines.append(f"{pid} state={fields[0].decode()} ppid={fields[1].decode()} {cmdline}")
        except OSError:
            lines.append(f"{pid} (gone)")
    return "; ".join(lines)


def kill_marked(marker: str) -> None:
    """SIGKILL every process of the run with this marker (each by its pid)."""
    for pid in processes_with_marker(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def run_launcher(
    script: str | os.PathLike[str],
    *args: str,
    n: int | None = 2,
    timeout: float = RUN_TIMEOUT,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
) -> LaunchResult:
    """Run ``python -m scoop_launch -n N script args`` to the end and capture its output.

    On timeout the launcher and every process of its run are killed and the test fails.
    """
    return run_command(
        launcher_command(script, *args, n=n, options=options), timeout=timeout, env=env, cwd=cwd
    )


def run_command(
    cmd: list[str],
    *,
    timeout: float = RUN_TIMEOUT,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> LaunchResult:
    """Run ``cmd`` (a launcher, or a program that opens a scoop.Executor) to the end.

    Every process it starts carries a marker: on timeout they are all killed and the test
    fails; ``left_at_exit`` lists those still alive once it ended.
    """
    marker = new_marker()
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=marked_env(marker, env),
        cwd=cwd or ROOT,
        start_new_session=True,
    )
    left: list[int] = []
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        left = processes_with_marker(marker)
    except subprocess.TimeoutExpired:
        _kill_run(proc, marker)
        stdout, stderr = proc.communicate()
        pytest.fail(
            f"{' '.join(cmd)} did not finish within {timeout} s\n"
            f"--- stdout ---\n{stdout.decode(errors='replace')}\n"
            f"--- stderr ---\n{stderr.decode(errors='replace')}"
        )
    finally:
        if proc.poll() is None:  # interrupted (e.g. by pytest-timeout): leave nothing behind
            _kill_run(proc, marker)
            proc.wait()
        kill_marked(marker)
    return LaunchResult(
        cmd,
        proc.returncode,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - start,
        marker,
        left,
    )


def _kill_run(proc: subprocess.Popen[bytes], marker: str) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    kill_marked(marker)


class Started:
    """A launcher started in the background (for signal tests); killed at teardown if alive."""

    def __init__(self, proc: subprocess.Popen[bytes], marker: str, cmd: list[str]) -> None:
        self.proc = proc
        self.marker = marker
        self.cmd = cmd
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._rest = {"stdout": b"", "stderr": b""}

    def leftover(self) -> list[int]:
        """Pids of processes of this run still alive."""
        return processes_with_marker(self.marker)

    def wait_for_line(
        self, text: str, timeout: float = 60.0, *, stream: str = "stdout"
    ) -> list[str]:
        """Read lines of ``stream`` (stdout or stderr) until one contains ``text``; return the
        lines read from it so far."""
        pipe = getattr(self.proc, stream)
        assert pipe is not None
        lines = self.lines if stream == "stdout" else self.stderr_lines
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(pipe, selectors.EVENT_READ)
            buffer, self._rest[stream] = self._rest[stream], b""
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.append(line.decode(errors="replace"))
                    if text in lines[-1]:
                        self._rest[stream] = buffer
                        return lines
            self._rest[stream] = buffer
        pytest.fail(f"no {stream} line with {text!r} from {' '.join(self.cmd)}; got {lines!r}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Wait for the launcher to exit; return (exit code, rest of stdout, all of stderr)."""
        stdout, stderr = self.proc.communicate(timeout=timeout)
        stdout = self._rest["stdout"] + stdout
        stderr_read = "".join(line + "\n" for line in self.stderr_lines).encode()
        stderr = stderr_read + self._rest["stderr"] + stderr
        return (
            self.proc.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )


def installed_transport_names() -> list[str]:
    """The transports installed in this environment, as the launcher finds them."""
    from scoop import _plugins

    return sorted(_plugins.installed_transports())


def transport_cases() -> list[tuple[str, int]]:
    """(transport, -n) pairs the API suite runs: the default transport on 1, 2 and 4 workers,
    every other installed transport on 2 and 4 (one worker hardly exercises a transport)."""
    from scoop import _plugins

    default = _plugins.choose_transport(None).info.name
    return [
        (name, n)
        for name in installed_transport_names()
        for n in ((1, 2, 4) if name == default else (2, 4))
    ]


def check_names(script: str) -> list[str]:
    """The checks a script of tests/scripts registers with ``@check``, in order."""
    tree = ast.parse((SCRIPTS / script).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "check" for d in node.decorator_list)
    ]
