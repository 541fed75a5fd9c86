"""Chaos: a long nested run while workers are killed at random moments and new ones join.

Each round starts a tree of nested tasks on 4 workers, then, at random points of its progress
(counted in finished leaves), kills a random worker other than the root (added ones included)
and adds a new one with ``--add-workers 1``. The root script checks every result; the test checks
the exit code, that each kill made during the run shows as a lost worker, and that nothing is
left running. ``SCOOP_CHAOS_ROUNDS`` (default 1) repeats it, ``SCOOP_CHAOS_SEED`` fixes the
random choices, and ``SCOOP_CHAOS_REPORT`` names a JSON file for the figures (rounds, kills, time
lost per kill against a round without kills).

A worker killed from outside while it runs a task counts as a death of that task, as one killed
by its task does (the two cannot be told apart): with kills this frequent, a long subtree could
be given up as a task that kills its workers, so the rounds raise --max-task-deaths.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scoop_e2e_support import ROOT, SCRIPTS, installed_transport_names, marked_env, wait_until

SURVIVE = SCRIPTS / "survive_losses.py"
SUBTREES = 40  # of 125 leaves each
KILLS = 5


def _workers(marker_pids: list[int], root: int) -> list[int]:
    found = []
    for pid in marker_pids:
        try:
            if pid != root and b"scoop._run\0worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass  # ended meanwhile
    return found


def _round(start_launcher, tmp_path: Path, transport: str, rng: random.Random, kills: int):
    progress = tmp_path / f"progress-{time.monotonic_ns()}"
    env = {
        "SCOOP_TRANSPORT": transport,
        "SCOOP_TEST_PROGRESS": str(progress),
        "SCOOP_RUNS_DIR": str(tmp_path / "runs"),
    }
    options = ["--max-task-deaths", "1000"]
    run = start_launcher(SURVIVE, "tree", str(SUBTREES), n=4, options=options, env=env)
    root = int(run.wait_for_line("ROOT ")[-1].split()[1])
    joiners: list[subprocess.Popen[bytes]] = []

    def done() -> int:
        try:
            return progress.read_bytes().count(b"\n")
        except OSError:
            return 0

    made = 0
    try:
        for point in sorted(rng.sample(range(300, SUBTREES * 125 * 3 // 4), kills)):
            if not wait_until(lambda p=point: done() >= p or run.proc.poll() is not None, 120):
                pytest.fail("the run made no progress")
            victims = _workers(run.leftover(), root)
            if run.proc.poll() is not None or not victims:
                break
            os.kill(rng.choice(victims), signal.SIGKILL)
            made += 1
            joiners.append(
                subprocess.Popen(
                    [sys.executable, "-m", "scoop_launch", "--add-workers", "1"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=marked_env(run.marker, env),
                    cwd=ROOT,
                    start_new_session=True,
                )
            )
        code, stdout, stderr = run.finish(timeout=180)
        for joiner in joiners:
            joiner.communicate(timeout=60)
    finally:
        for joiner in joiners:
            if joiner.poll() is None:
                joiner.kill()
                joiner.wait()
    explain = f"exit {code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    assert code == 0, explain
    assert f"OK tree {SUBTREES * 125}" in stdout, explain
    lost = re.findall(r"^scoop: worker \d+ on host \S+ lost \(killed by signal 9\)", stderr, re.M)
    # A kill after the last result needed is no loss: the run was ending.
    assert len(lost) <= made and (made == 0 or lost), explain
    assert not run.leftover(), run.leftover()
    seconds = float(re.search(r"OK tree \d+ in ([\d.]+) s", stdout)[1])
    return seconds, len(lost)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("transport", installed_transport_names())
def test_random_kills_and_joins_never_change_a_result(start_launcher, tmp_path, transport):
    seed = int(os.environ.get("SCOOP_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    rounds = int(os.environ.get("SCOOP_CHAOS_ROUNDS", "1"))
    baseline, _ = _round(start_launcher, tmp_path, transport, rng, kills=0)
    figures = []
    for _ in range(rounds):
        seconds, lost = _round(start_launcher, tmp_path, transport, rng, kills=KILLS)
        figures.append({"seconds": seconds, "lost": lost})
    total_lost = sum(f["lost"] for f in figures)
    extra = sum(f["seconds"] for f in figures) - baseline * rounds
    report = {
        "transport": transport,
        "seed": seed,
        "rounds": rounds,
        "baseline_seconds": baseline,
        "workers_lost": total_lost,
        "seconds_lost_per_kill": round(extra / total_lost, 3) if total_lost else None,
        "rounds_detail": figures,
    }
    print(json.dumps(report))
    if os.environ.get("SCOOP_CHAOS_REPORT"):
        with open(os.environ["SCOOP_CHAOS_REPORT"], "a") as handle:
            handle.write(json.dumps(report) + "\n")
