"""Guard of the benchmark harness: every workload once, tiny, so bench/ never rots.

Runs ``bench/run.py --guard`` (SCOOP, ProcessPoolExecutor, multiprocessing.Pool and the pyzmq
floors; one repeat at tiny sizes). The runners check every result themselves and fail the run
when one is wrong; this test checks that each workload produced its figures. No speed is
asserted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _workloads():
    spec = importlib.util.spec_from_file_location("bench_workloads", BENCH / "workloads.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tree_is_the_original_full_tree():
    w = _workloads()
    assert w.tree_tasks(20) == 1772
    assert w.tree_expected(2) == 1 + (1 + (1 + 4))  # func3(1); func3(1) + func3(2)
    durations = w.lognormal_durations(2000)
    assert durations == w.lognormal_durations(2000)  # the same every run
    assert 0.0015 < sum(durations) / len(durations) < 0.0025


@pytest.mark.timeout(150)
def test_guard_run_measures_every_workload(tmp_path):
    report_path = tmp_path / "guard.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--guard", "--json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["errors"] == []
    figures = {(f["workload"], f["system"], f["metric"]): f for f in report["figures"]}
    for figure in report["figures"]:
        assert {"workload", "system", "metric", "median", "min", "max"} <= set(figure)
        assert figure["min"] <= figure["median"] <= figure["max"]
        assert figure["median"] > 0
    expected = [
        ("submit", "scoop", "tasks/s"),
        ("map", "scoop", "tasks/s"),
        ("latency", "scoop", "latency"),
        ("latency", "scoop (forced remote)", "latency"),
        ("tree", "scoop", "wall time"),
        ("lognormal", "scoop", "efficiency"),
        ("bytes", "scoop", "throughput"),
        ("shared", "scoop", "received per worker"),
        ("startup", "scoop", "first result"),
        ("startup", "scoop", "end of run"),
        ("submit", "ProcessPoolExecutor", "tasks/s"),
        ("map", "ProcessPoolExecutor map(chunksize=1)", "tasks/s"),
        ("bytes", "ProcessPoolExecutor", "throughput"),
        ("startup", "ProcessPoolExecutor", "first result"),
        ("submit", "multiprocessing.Pool", "tasks/s"),
        ("latency", "pyzmq ping-pong (floor)", "latency"),
        ("submit", "pyzmq farm (floor)", "tasks/s"),
    ]
    missing = [key for key in expected if key not in figures]
    assert not missing, f"no figure for {missing}\n{done.stdout[-4000:]}"
    # the shared constant reached the other worker, and only once
    assert 1.0 <= figures[("shared", "scoop", "received per worker")]["max"] < 2.0
    goals = {(g["workload"], g["goal"]): g for g in report["goals"]}
    assert goals[("submit", ">= 2x ProcessPoolExecutor")]["status"] in ("pass", "MISS")
