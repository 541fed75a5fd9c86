"""The SLURM test cluster itself: multi-node jobs, exit codes, cancellation, no ssh, the
project's python in jobs, what srun does with stdin and when it is killed, and a teardown
(also after a crash or a SIGTERM) that leaves nothing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from . import _netbase, _runs, _slurmsetup, slurm
from .netns import TestHosts
from .slurm import SlurmCluster

pytestmark = pytest.mark.timeout(60)

PY = sys.executable  # the file system is shared: the nodes can run the dev venv's python
SRUN_EACH_NODE = "srun --nodes=3 --ntasks=3 --ntasks-per-node=1 --overlap"


def wait_for(what: str, found: Callable[[], bool], timeout: float = 15) -> None:
    """Poll ``found`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    assert _netbase.wait_until(found, time.monotonic() + timeout), f"not seen in time: {what}"


def running(cluster: SlurmCluster, nodes: Iterable[str], *argv: str) -> dict[str, list[int]]:
    """The pids running ``argv`` (the program by its name or path) on each of ``nodes``."""

    def matches(pid: int) -> bool:
        program, *args = _netbase.cmdline(pid).split()
        return [Path(program).name, *args] == list(argv)

    return {n: [p for p in cluster.processes_on(n) if matches(p)] for n in nodes}


def test_layout(slurm_cluster: SlurmCluster) -> None:
    c = slurm_cluster
    assert c.nodes == ["node1", "node2", "node3"]
    addresses = [c.node_address(n) for n in [c.controller, *c.nodes]]
    assert len(set(addresses)) == 4
    assert c.bridge_address.startswith("10.213.")
    assert set(c.namespaces) <= set(_netbase.netns_list())
    assert c.env() == {"SLURM_CONF": str(c.conf)}
    assert c.conf.is_file()
    states = c.client("sinfo", "--noheader", "--Node", "--format=%N %T %c").split("\n")
    assert sorted(filter(None, states)) == [f"node{k} idle 2" for k in (1, 2, 3)]
    for name in [c.controller, *c.nodes]:
        # Each daemon has its own hostname, address, /etc/hosts and no way off the bridge.
        assert c.run(name, "hostname").stdout.strip() == name
        assert f" {c.node_address(name)}/" in c.run(name, "ip -4 -o addr show dev eth0").stdout
        assert "default" not in c.run(name, "ip -4 route").stdout
        hosts = c.run(name, ["getent", "hosts", "node1", "node3", c.submit_host]).stdout
        addresses = [line.split()[0] for line in hosts.splitlines()]
        assert addresses == [c.node_address("node1"), c.node_address("node3"), c.bridge_address]


def test_coexists_with_the_ssh_hosts(slurm_cluster: SlurmCluster, test_hosts: TestHosts) -> None:
    """Both sets in one session: their own /24s and names, each reachable."""
    assert slurm_cluster.subnet != test_hosts.subnet
    assert not set(slurm_cluster.namespaces) & set(test_hosts.namespaces)
    assert slurm_cluster.bridge != test_hosts.bridge
    assert test_hosts.run("h0", "hostname").stdout.strip() == "h0"
    assert slurm_cluster.run("node1", "hostname").stdout.strip() == "node1"


def test_three_node_job_runs_srun_on_every_node(clean_slurm_cluster: SlurmCluster) -> None:
    c = clean_slurm_cluster
    job = c.sbatch(f"{SRUN_EACH_NODE} hostname\necho SLURM_JOB_NODELIST=$SLURM_JOB_NODELIST\n")
    result = c.wait_job(job, timeout=30)
    assert (result.state, result.exit_code, result.exit_signal) == ("COMPLETED", 0, 0), result
    lines = result.output.split()
    assert sorted(lines[:3]) == ["node1", "node2", "node3"], result.output
    assert lines[3:] == ["SLURM_JOB_NODELIST=node[1-3]"]
    assert result.output_path == c.jobs_dir / f"slurm-{job}.out"
    assert result.info["NodeList"] == "node[1-3]"


def test_several_tasks_per_node(clean_slurm_cluster: SlurmCluster) -> None:
    c = clean_slurm_cluster
    script = "srun --ntasks=6 --ntasks-per-node=2 --overlap hostname\n"
    result = c.wait_job(c.sbatch(script, extra=["--ntasks-per-node=2"]), timeout=30)
    assert result.state == "COMPLETED", result
    assert sorted(result.output.split()) == sorted(c.nodes * 2)


def test_failing_job_reports_its_exit_code(clean_slurm_cluster: SlurmCluster) -> None:
    c = clean_slurm_cluster
    result = c.wait_job(c.sbatch("echo failing on $(hostname)\nexit 3\n", nodes=1), timeout=30)
    assert (result.state, result.exit_code, result.exit_signal) == ("FAILED", 3, 0), result
    assert result.output == "failing on node1\n"


def test_job_arguments_environment_and_workdir(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    c = clean_slurm_cluster
    script = tmp_path / "args.sh"
    script.write_text('#!/bin/sh\necho "$1|$2|$SCOOP_TEST_VALUE|$(pwd)"\n')
    job = c.sbatch(script, "a b", "c", nodes=1, env={"SCOOP_TEST_VALUE": "v"}, workdir=tmp_path)
    result = c.wait_job(job, timeout=30)
    assert result.output == f"a b|c|v|{tmp_path}\n", result
    assert result.output_path == tmp_path / f"slurm-{job}.out"


def test_scancel_leaves_no_process_on_any_node(clean_slurm_cluster: SlurmCluster) -> None:
    c = clean_slurm_cluster
    job = c.sbatch(f"{SRUN_EACH_NODE} sleep 300\n")
    c.wait_running(job)
    wait_for("sleep on every node", lambda: all(running(c, c.nodes, "sleep", "300").values()))
    c.scancel(job)
    result = c.wait_job(job, timeout=30)
    assert result.state == "CANCELLED", result
    left = c.leftover_processes(timeout=15)
    assert left == {}, {n: c.describe_processes(n) for n in left}


def test_no_ssh_on_the_nodes(slurm_cluster: SlurmCluster) -> None:
    c = slurm_cluster
    for name in [c.controller, *c.nodes]:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((c.node_address(name), 22), timeout=2)
        pids = c.processes_on(name, include_daemon=True)
        assert not [p for p in pids if "sshd" in _netbase.cmdline(p)]


def test_jobs_run_the_project_python(clean_slurm_cluster: SlurmCluster) -> None:
    c = clean_slurm_cluster
    code = "import scoop_launch, socket; print(socket.gethostname())"
    result = c.wait_job(c.sbatch(f"{SRUN_EACH_NODE} {PY} -c '{code}'\n"), timeout=30)
    assert result.state == "COMPLETED", result
    assert sorted(result.output.split()) == ["node1", "node2", "node3"]


def test_srun_forwards_its_stdin_to_the_tasks(clean_slurm_cluster: SlurmCluster) -> None:
    """One task gets srun's stdin; with several, each gets a copy (srun's default --input=all)."""
    c = clean_slurm_cluster
    script = (
        "echo hi | srun -N1 -n1 --overlap cat\n"
        "echo hello | srun -N3 -n3 --overlap sh -c 'echo $(hostname) $(cat)'\n"
    )
    result = c.wait_job(c.sbatch(script), timeout=30)
    assert result.state == "COMPLETED", result
    first, *rest = result.output.splitlines()
    assert first == "hi"
    assert sorted(rest) == [f"{n} hello" for n in c.nodes]


@pytest.mark.timeout(90)
def test_killed_srun_ends_its_remote_tasks(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """SIGKILL to srun (the launcher's view of a step) ends the step's tasks on every node,
    while the job goes on."""
    c = clean_slurm_cluster
    script = (
        f"{SRUN_EACH_NODE} sleep 301 &\n"
        "echo $! > srun.pid\n"
        "wait $!\n"
        "echo srun ended $?\n"
        "exec sleep 302\n"
    )
    job = c.sbatch(script, workdir=tmp_path)
    wait_for("sleep 301 on every node", lambda: all(running(c, c.nodes, "sleep", "301").values()))
    os.kill(int((tmp_path / "srun.pid").read_text()), signal.SIGKILL)
    start = time.monotonic()
    wait_for("no sleep 301 left", lambda: not any(running(c, c.nodes, "sleep", "301").values()))
    ended_after = time.monotonic() - start
    assert running(c, ["node1"], "sleep", "302")["node1"], "the job should still run"
    assert c.job_info(job)["JobState"] == "RUNNING"
    c.scancel(job)
    output = c.wait_job(job, timeout=30).output
    assert "srun ended 137" in output.splitlines(), output  # 128 + SIGKILL
    assert ended_after < 10, ended_after


@pytest.mark.timeout(90)
def test_srun_killed_with_its_shepherd_leaves_the_tasks(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """What ends the step when srun is SIGKILLed is srun's forked child (its "shepherd"): kill
    both at once (as a kill of their whole process group would) and the tasks run on, until
    the step (or the job) is cancelled."""
    c = clean_slurm_cluster
    script = f"{SRUN_EACH_NODE} sleep 301 &\necho $! > srun.pid\nwait $!\nexec sleep 302\n"
    job = c.sbatch(script, workdir=tmp_path)
    wait_for("sleep 301 on every node", lambda: all(running(c, c.nodes, "sleep", "301").values()))
    srun = int((tmp_path / "srun.pid").read_text())
    shepherd = [p for p in c.processes_on("node1") if _parent(p) == srun]
    assert len(shepherd) == 1, c.describe_processes("node1")
    # Both at once, as a kill of the process group would: stopped first, because the shepherd
    # cancels the step as soon as srun is gone, and it may run in the gap between two kills.
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in (*shepherd, srun):
            os.kill(pid, sig)
    # An observation window, not a synchronisation: nothing must end the tasks in it.
    assert not _netbase.wait_until(
        lambda: not all(running(c, c.nodes, "sleep", "301").values()), time.monotonic() + 3
    ), "the tasks ended without their step being cancelled"
    c.scancel(f"{job}.0")
    wait_for("no sleep 301 left", lambda: not any(running(c, c.nodes, "sleep", "301").values()))
    assert c.job_info(job)["JobState"] == "RUNNING"
    c.scancel(job)
    assert c.wait_job(job, timeout=30).state == "CANCELLED"


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def test_clean_slurm_cluster_fixture(clean_slurm_cluster: SlurmCluster) -> None:
    assert clean_slurm_cluster.leftover_processes(timeout=1) == {}


def test_prerequisites_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_slurmsetup, "SLURMD", "/nonexistent/slurmd")
    monkeypatch.setattr(_slurmsetup, "CLIENTS", ("sbatch", "no-such-slurm-client"))
    with pytest.raises(_netbase.HostSetupError) as info:
        slurm.create_cluster(1)
    message = str(info.value)
    assert "/nonexistent/slurmd not found (the slurmd package)" in message
    assert "no-such-slurm-client not found on PATH (the slurm-client package)" in message
    assert ".ci/setup-slurm.sh" in message
    assert "sbatch" not in message
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(_netbase.HostSetupError, match="must run as root"):
        slurm.create_cluster(1)


# --------------------------------------------------------------------------- teardown


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _assert_all_gone(info: dict[str, Any], pids: Iterable[int]) -> None:
    assert not set(info["namespaces"]) & set(_netbase.netns_list())
    runid = str(info["runid"])
    assert not [name for name in _netbase.link_names() if runid in name]
    assert not Path(str(info["workdir"])).exists()
    assert not slurm.FAMILY.state_path(runid).exists()
    left = [pid for pid in pids if not _gone(pid)]
    assert left == [], [_netbase.cmdline(p) for p in left]


def _all_pids(info: dict[str, Any]) -> list[int]:
    """The daemons' pids (munged included) and every process in the cluster's namespaces."""
    in_namespaces = [p for ns in info["namespaces"] for p in _netbase.netns_pids(ns)]
    return [*info["pids"].values(), *in_namespaces]


@pytest.mark.timeout(90)
def test_teardown_removes_everything(slurm_cluster: SlurmCluster) -> None:
    cluster = slurm.create_cluster(1)
    try:
        info = cluster.describe()
        assert cluster.bridge_address != slurm_cluster.bridge_address
        cluster.sbatch("sleep 300\n", nodes=1)
        wait_for(
            "sleep on node1", lambda: bool(running(cluster, ["node1"], "sleep", "300")["node1"])
        )
        pids = _all_pids(info)
        assert len(pids) >= 6  # munged, slurmctld, slurmd, slurmstepd, the script, sleep
        start = time.monotonic()
        assert cluster.teardown() == []
        assert time.monotonic() - start < 2.5
    finally:
        cluster.teardown()
    _assert_all_gone(info, pids)
    assert cluster.teardown() == []  # idempotent
    # The session's cluster was not touched.
    assert slurm_cluster.wait_job(slurm_cluster.sbatch("true\n", nodes=1)).state == "COMPLETED"


def _start_up_command() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(slurm.__file__)), "up", "-n", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "slurm.py up printed nothing"
    return proc, json.loads(line)


@pytest.mark.timeout(90)
def test_cleanup_stale_removes_a_crashed_run(slurm_cluster: SlurmCluster) -> None:
    """A run killed with SIGKILL leaves its cluster; the next setup's cleanup removes it."""
    proc, info = _start_up_command()
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pids = _all_pids(info)
    assert set(info["namespaces"]) <= set(_netbase.netns_list()), "the crash left nothing?"
    assert all(not _gone(pid) for pid in info["pids"].values())

    removed = slurm.cleanup_stale()

    assert set(info["namespaces"]) <= set(removed)
    _assert_all_gone(info, pids)
    # A live run's cluster is never taken for a stale one.
    assert set(slurm_cluster.namespaces) <= set(_netbase.netns_list())
    assert slurm_cluster.wait_job(slurm_cluster.sbatch("true\n", nodes=1)).state == "COMPLETED"


@pytest.mark.timeout(60)
def test_sigterm_tears_down(slurm_cluster: SlurmCluster) -> None:
    """A run ended by a plain SIGTERM (no atexit) removes its cluster itself."""
    proc, info = _start_up_command()
    try:
        pids = _all_pids(info)
        proc.terminate()
        assert proc.wait(20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _assert_all_gone(info, pids)


@pytest.mark.timeout(60)
def test_failed_setup_removes_what_it_built(
    monkeypatch: pytest.MonkeyPatch, slurm_cluster: SlurmCluster
) -> None:
    runid = secrets.token_hex(3)  # fixed for this test, unique to this run
    monkeypatch.setattr(secrets, "token_hex", lambda _n: runid)
    monkeypatch.setattr(_slurmsetup, "SLURMD", "/bin/false")
    with pytest.raises(_netbase.HostSetupError, match="node1 exited 1 while starting"):
        slurm.create_cluster(1)
    assert not [ns for ns in _netbase.netns_list() if runid in ns]
    assert not [link for link in _netbase.link_names() if runid in link]
    assert not list(Path(tempfile.gettempdir()).glob(f"{slurm.TMP_PREFIX}{runid}-*"))
    assert not slurm.FAMILY.state_path(runid).exists()
    assert runid not in _runs.LIVE
    # munged (root namespace) named the run's temp dir in its command line.
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    assert not [p for p in pids if runid in _netbase.cmdline(p)]
