"""Guard of the benchmark harness: every workload once, tiny, so bench/ never rots.

Runs ``bench/run.py --guard`` (SCOOP, ProcessPoolExecutor, multiprocessing.Pool and the pyzmq
floors; one repeat at tiny sizes). The runners check every result themselves and fail the run
when one is wrong; this test checks that each workload produced its figures. No speed is
asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
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


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_multihost_command_line():
    # The real run needs root and sshd and takes a minute: `nox -s bench` runs it.
    done = subprocess.run(
        [sys.executable, str(BENCH / "multihost.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--rounds" in done.stdout and "--layouts" in done.stdout


@pytest.mark.timeout(60)
def test_raw_tcp_floor_on_loopback():
    echo = subprocess.Popen(
        [sys.executable, str(BENCH / "_rawtcp.py"), "echo", "127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = echo.stdout.readline().strip()
        client = [sys.executable, str(BENCH / "_rawtcp.py"), "client", "127.0.0.1", port]
        done = subprocess.run(
            [*client, "--mib", "1", "--pings", "10", "--repeats", "2"],
            capture_output=True,
            text=True,
            timeout=50,
        )
    finally:
        echo.kill()
        echo.wait()
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["rtt_us"]) == len(result["gbps"]) == 2
    assert all(value > 0 for value in result["rtt_us"] + result["gbps"])


def test_multihost_differences_and_goals(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    mh = _bench_module("_multihost_figures")
    figures = mh.Figures()
    trip = 2 * mh.MIB * (1 << 20) / 1e9  # GB moved by one 64 MiB round trip
    for system, seconds in ((mh.ONE, 0.2), (mh.ONE_DIGESTS, 0.3), (mh.ACROSS, 0.35)):
        figures.add(system, mh.BIG, "GB/s", [trip / seconds], "")
        figures.add(system, "forced-remote latency", "us", [600.0], "")
    figures.add(mh.ONE, mh.BIG, "GB/s", [trip / 0.2], "")  # a second round adds its values
    figures.add(mh.DIGEST, f"SHA-256 of {mh.MIB} MiB", "ms", [30.0], "")
    mh.differences(figures)
    assert figures.items[(mh.ONE, mh.BIG)]["values"] == [trip / 0.2] * 2
    difference = {
        metric: item["values"][0]
        for (system, metric), item in figures.items.items()
        if system == mh.DIFFERENCE
    }
    assert difference[f"{mh.MIB} MiB: 4 digests per round trip"] == 120.0
    assert round(difference[f"{mh.MIB} MiB: digests on - off, one host"], 6) == 100.0
    assert round(difference[f"{mh.MIB} MiB: across hosts - one host"], 6) == 150.0
    assert difference["latency: across hosts - one host"] == 0.0
    # every multihost goal of run.py names figures multihost.py makes
    run = _bench_module("run")
    made = {(s, m) for s, m in figures.items} | {
        (mh.RAW_NS, mh.BIG),
        (mh.ONE, "submit tasks/s"),
        (mh.ONE, "map tasks/s"),
        (mh.ACROSS, "submit tasks/s"),
        (mh.ACROSS, "map tasks/s"),
    }
    goals = [g for g in run.GOALS if g.workload == "multihost"]
    assert goals and all({g.numerator, g.denominator} <= made for g in goals)


def test_multihost_skips_with_the_reason_when_not_root(monkeypatch, capsys):
    mh = _bench_module("multihost")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert mh.main([]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("BENCH ")]
    assert len(lines) == 1
    skip = json.loads(lines[0][len("BENCH ") :])
    assert skip["workload"] == "multihost" and "must run as root" in skip["skip"]
