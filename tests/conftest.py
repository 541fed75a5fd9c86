"""Fixtures of the end-to-end tests; the helpers live in scoop_e2e_support.py.

With ``--import-mode=importlib`` the tests directory is not on ``sys.path``, so it is added here
for the test modules to import ``scoop_e2e_support``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoop_e2e_support import (
    ROOT,
    LaunchResult,
    Started,
    _kill_run,
    kill_marked,
    launcher_command,
    marked_env,
    new_marker,
    run_launcher,
)

#: The ssh test hosts (network namespaces with their own sshd): the ``test_hosts`` fixture.
pytest_plugins = ["hosts.fixtures"]


@pytest.fixture
def launch() -> Callable[..., LaunchResult]:
    """Run the launcher: ``launch(script, *args, n=2, timeout=90, env=None) -> LaunchResult``."""
    return run_launcher


@pytest.fixture
def start_launcher() -> Iterator[Callable[..., Started]]:
    """Start the launcher in the background: ``start_launcher(script, *args, n=2, options=(),
    env=None)``."""
    started: list[Started] = []

    def start(
        script: str | os.PathLike[str],
        *args: str,
        n: int | None = 2,
        options: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Started:
        marker = new_marker()
        cmd = launcher_command(script, *args, n=n, options=options)
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=marked_env(marker, env),
            cwd=ROOT,
            start_new_session=True,
        )
        item = Started(proc, marker, cmd)
        started.append(item)
        return item

    yield start
    for item in started:
        if item.proc.poll() is None:
            _kill_run(item.proc, item.marker)
            item.proc.wait()
        for stream in (item.proc.stdout, item.proc.stderr):
            if stream is not None:
                stream.close()
        kill_marked(item.marker)
