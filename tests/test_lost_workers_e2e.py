"""Workers lost mid-run: killed, stopped, or killed by their own task. The run goes on.

Each test runs the launcher on real processes over every installed transport, loses workers
while tasks are in flight (at checkpoints the root script prints), and checks that the run ends
with exit 0, every result right and delivered once (the script checks), one line per lost worker
and a summary on stderr, and no process left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scoop_e2e_support import (
    ROOT,
    SCRIPTS,
    Started,
    installed_transport_names,
    marked_env,
    wait_until,
)

SURVIVE = SCRIPTS / "survive_losses.py"
POISON = SCRIPTS / "poison_task.py"
TRANSPORTS = installed_transport_names()
LOST_LINE = re.compile(
    r"^scoop: worker (\d+) on host \S+ lost \((.*)\); (\d+) tasks? to run again$"
)


def _start(start_launcher, tmp_path, transport, *args, options=(), n=4):
    progress = tmp_path / "progress"
    env = {
        "SCOOP_TRANSPORT": transport,
        "SCOOP_TEST_PROGRESS": str(progress),
        "SCOOP_RUNS_DIR": str(tmp_path / "runs"),
    }
    run = start_launcher(SURVIVE, *args, n=n, options=options, env=env)
    run.progress = progress
    run.env = env
    return run


def _ran(run: Started) -> list[tuple[int, int]]:
    """(pid, worker index) of each task run so far."""
    with contextlib.suppress(OSError):
        lines = run.progress.read_text().splitlines()
        return [(int(pid), int(index)) for pid, index in (line.split() for line in lines)]
    return []


def _victims(run: Started, count: int, after_tasks: int) -> list[int]:
    """Once ``after_tasks`` tasks ran, ``count`` workers other than the root, busy ones first."""
    root = int(run.wait_for_line("ROOT ")[-1].split()[1])
    assert wait_until(lambda: len(_ran(run)) >= after_tasks, timeout=60), "no tasks ran"
    workers = [
        pid
        for pid in run.leftover()
        if pid != root and b"scoop._run\0worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    busy = [pid for pid, _ in Counter(pid for pid, _ in _ran(run)).most_common() if pid in workers]
    chosen = busy + [pid for pid in workers if pid not in busy]
    assert len(chosen) >= count, f"{count} workers wanted, found {chosen} besides the root"
    return chosen[:count]


def _lost_lines(stderr: str) -> list[tuple[int, str, int]]:
    found = [LOST_LINE.match(line) for line in stderr.splitlines()]
    return [(int(m[1]), m[2], int(m[3])) for m in found if m]


def _finish(run: Started, *, others: bool = False) -> tuple[str, str]:
    """Wait for the run to end well; with ``others``, launchers that added workers may still
    be ending (the caller checks that nothing is left once they did)."""
    code, stdout, stderr = run.finish(timeout=90)
    explain = f"exit {code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    assert code == 0, explain
    assert "OK " in stdout, explain
    assert "Traceback" not in stderr, explain
    if not others:
        assert not run.leftover(), run.leftover()
    return stdout, stderr


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "count"), [("map", 3000), ("tree", 24)])
def test_two_workers_killed_one_after_the_other(start_launcher, tmp_path, transport, mode, count):
    run = _start(start_launcher, tmp_path, transport, mode, str(count))
    first, second = _victims(run, 2, after_tasks=400)
    os.kill(first, signal.SIGKILL)
    run.wait_for_line(" lost (", stream="stderr")  # then the second, while work is left
    os.kill(second, signal.SIGKILL)
    stdout, stderr = _finish(run)
    lost = _lost_lines(stderr)
    assert [reason for _, reason, _ in lost] == ["killed by signal 9"] * 2, stderr
    assert len({index for index, _, _ in lost}) == 2, stderr
    assert "scoop: 2 workers lost during the run" in stderr, stderr
    assert "SIZE 2" in stdout, stdout  # scoop.SIZE follows the workers in the run


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stopped_worker_is_lost_after_the_heartbeat_timeout(start_launcher, tmp_path, transport):
    options = ["--heartbeat-timeout", "2"]
    run = _start(start_launcher, tmp_path, transport, "map", "3000", options=options)
    (victim,) = _victims(run, 1, after_tasks=400)
    os.kill(victim, signal.SIGSTOP)  # never continued: the launcher must kill it
    _, stderr = _finish(run)
    lost = _lost_lines(stderr)
    assert len(lost) == 1, stderr
    assert lost[0][1].startswith("nothing heard from it for 2 s"), stderr


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_task_that_kills_every_worker_is_given_up_after_three(launch, transport):
    result = launch(POISON, n=4, env={"SCOOP_TRANSPORT": transport}, timeout=120)
    assert result.returncode == 0, result.explain()
    assert "OK 39 others" in result.stdout, result.explain()
    given_up = [line for line in result.stdout.splitlines() if line.startswith("GAVE UP ")]
    assert len(given_up) == 1, result.explain()
    assert "KilledWorkerError" in given_up[0] and "crash_on_seven" in given_up[0], given_up
    assert given_up[0].count("killed by signal 9") == 3, given_up
    assert len(_lost_lines(result.stderr)) == 3, result.explain()
    assert "no worker is left but the root; it goes on alone" in result.stderr, result.explain()
    assert "1 given up after killing their workers" in result.stderr, result.explain()
    assert not result.leftover(), result.leftover()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "count"), [("map", 3000), ("tree", 24)])
def test_a_worker_asked_to_leave_hands_back_its_work(
    start_launcher, tmp_path, transport, mode, count
):
    run = _start(start_launcher, tmp_path, transport, mode, str(count))
    (leaver,) = _victims(run, 1, after_tasks=400)
    os.kill(leaver, signal.SIGTERM)
    stdout, stderr = _finish(run)
    assert re.search(r"^scoop: worker \d+ on host \S+ left the run$", stderr, re.M), stderr
    assert not _lost_lines(stderr), stderr
    assert "lost during the run" not in stderr, stderr  # leaving is not a failure
    assert "SIZE 3" in stdout, stdout


def _add_workers(run: Started, count: int, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "scoop_launch", "--add-workers", str(count), *options]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=marked_env(run.marker, run.env),
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workers_added_mid_run_take_work_and_end_with_it(start_launcher, tmp_path, transport):
    run = _start(start_launcher, tmp_path, transport, "map", "4000", n=2)
    run.wait_for_line("ROOT ")
    assert wait_until(lambda: len(_ran(run)) >= 100, timeout=60), "no tasks ran"
    joiner = _add_workers(run, 2)
    try:
        stdout, stderr = _finish(run, others=True)
        _, join_err = joiner.communicate(timeout=30)
    finally:
        if joiner.poll() is None:
            joiner.kill()
            joiner.wait()
    assert wait_until(lambda: not run.leftover(), timeout=10), run.leftover()
    assert joiner.returncode == 0, join_err.decode()
    assert b"added workers 3..4 to run" in join_err, join_err.decode()
    assert re.findall(r"worker (\d+) on host \S+ joined the run", stderr) in (
        ["3", "4"],
        ["4", "3"],
    )
    assert {index for _, index in _ran(run)} >= {3, 4}, "the added workers ran no task"
    assert "SIZE 4" in stdout, stdout


@pytest.mark.timeout(150)
def test_an_added_worker_that_is_killed_is_lost_and_reported(start_launcher, tmp_path):
    run = _start(start_launcher, tmp_path, "zmq", "map", "4000", n=2)
    run.wait_for_line("ROOT ")
    assert wait_until(lambda: len(_ran(run)) >= 100, timeout=60), "no tasks ran"
    joiner = _add_workers(run, 1)
    try:
        assert wait_until(lambda: any(i == 3 for _, i in _ran(run)), timeout=60), "it ran nothing"
        added = next(pid for pid, index in _ran(run) if index == 3)
        os.kill(added, signal.SIGKILL)
        _, stderr = _finish(run, others=True)
        joiner.communicate(timeout=30)
    finally:
        if joiner.poll() is None:
            joiner.kill()
            joiner.wait()
    assert wait_until(lambda: not run.leftover(), timeout=10), run.leftover()
    assert joiner.returncode == 0
    # Reported by its launcher at once: not after the heartbeat timeout (30 s).
    assert [(i, r) for i, r, _ in _lost_lines(stderr)] == [(3, "killed by signal 9")], stderr
