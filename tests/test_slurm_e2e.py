"""The launcher inside jobs of a real SLURM cluster (tests/hosts/slurm.py): no ssh anywhere.

Each test submits a batch job of 3 nodes (2 tasks each) that runs ``python -m scoop_launch``;
the launcher finds the allocation and starts the agents of node2 and node3 with srun. Every test
checks that nothing of the job is left on any node afterwards (``clean_slurm_cluster``).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from hosts._netbase import cmdline, wait_until
from hosts.slurm import SlurmCluster
from scoop_e2e_support import ROOT

pytestmark = pytest.mark.timeout(180)

PY = sys.executable  # the file system is shared: the nodes run the test's own Python
SCRIPT = Path(__file__).parent / "scripts" / "where_tasks_ran.py"
NODES = ["node1", "node2", "node3"]

# pbsdsh as Torque has it, played by srun with no standard input: the agent must connect back.
PBSDSH_STAND_IN = """#!/bin/sh
[ "$1" = -h ] || { echo "pbsdsh stand-in: expected -h HOST" >&2; exit 2; }
host=$2; shift 2
exec srun --nodes=1 --ntasks=1 --nodelist="$host" --overlap --input=none --quiet "$@" </dev/null
"""


def submit(cluster: SlurmCluster, *args: str, before: str = "", tasks_per_node: int = 2) -> int:
    """Submit a 3-node job that runs the launcher with ``args``; its job id."""
    text = f"#!/bin/sh\ncd {shlex.quote(str(ROOT))}\n{before}exec {PY} -m scoop_launch "
    text += shlex.join(args) + "\n"
    return cluster.sbatch(text, nodes=3, extra=[f"--ntasks-per-node={tasks_per_node}"])


def where(output: str) -> dict:
    line = next((x for x in output.splitlines() if x.startswith("WHERE ")), None)
    assert line is not None, output
    return json.loads(line[len("WHERE ") :])


def started(cluster: SlurmCluster, *args: str) -> int:
    """Submit a job running the launcher with ``args``; return once it printed ``started``."""
    job = submit(cluster, *args)
    cluster.wait_running(job)
    output = Path(cluster.job_info(job)["StdOut"])

    def printed() -> bool:
        return output.exists() and "started" in output.read_text(errors="replace")

    assert wait_until(printed, time.monotonic() + 90), cluster.job_info(job)
    return job


def assert_nothing_left(cluster: SlurmCluster) -> None:
    left = cluster.leftover_processes(timeout=15)
    assert not left, {node: cluster.describe_processes(node) for node in left}


def test_workers_run_on_every_node_started_by_srun(clean_slurm_cluster: SlurmCluster) -> None:
    cluster = clean_slurm_cluster
    dry_run = f"{PY} -m scoop_launch --dry-run {SCRIPT}\n"
    job = submit(cluster, str(SCRIPT), "where", before=dry_run)
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("COMPLETED", 0), result.output
    # --dry-run showed what the run did: srun for node2 and node3, the root here on node1.
    assert "hosts from: SLURM allocation" in result.output
    assert "agents, one per host, started with srun" in result.output
    assert "  node2: srun --nodes=1 --ntasks=1 --nodelist=node2 --overlap" in result.output
    report = where(result.output)
    assert report["root"] == "node1"
    assert report["hosts"] == {"node1": [0, 1], "node2": [2, 3], "node3": [4, 5]}
    # node2's and node3's workers ran inside a job step of their own node; node1's in the batch
    # step, where the launcher started them as local processes.
    # Every worker may use both CPUs of its node: srun bound none of them to one.
    assert report["steps"]["node1"] == ["None None cpus=2"]
    for node in ("node2", "node3"):
        (step,) = report["steps"][node]
        step_id, nodelist, cpus = step.split()
        assert step_id.isdigit() and nodelist == node and cpus == "cpus=2", report["steps"]
    assert "srun:" not in result.output  # no message of srun's reaches the user
    assert "RuntimeWarning" not in result.output
    for node in NODES:  # and no ssh server could have done it
        with pytest.raises(OSError):
            socket.create_connection((cluster.node_address(node), 22), timeout=2).close()
    assert_nothing_left(cluster)


@pytest.mark.parametrize(
    ("mode", "code", "shown"),
    [(["exit", "3"], 3, ""), (["raise"], 1, "RuntimeError: failing on purpose")],
    ids=["exit-3", "raise"],
)
def test_the_scripts_exit_code_is_the_jobs(
    clean_slurm_cluster: SlurmCluster, mode: list[str], code: int, shown: str
) -> None:
    cluster = clean_slurm_cluster
    result = cluster.wait_job(submit(cluster, str(SCRIPT), *mode), timeout=120)
    assert (result.state, result.exit_code) == ("FAILED", code), result.output
    assert shown in result.output
    assert_nothing_left(cluster)


def test_scancel_mid_run_leaves_nothing_on_any_node(clean_slurm_cluster: SlurmCluster) -> None:
    cluster = clean_slurm_cluster
    job = started(cluster, str(SCRIPT), "hang")
    assert all(cluster.processes_on(node) for node in NODES)
    cluster.scancel(job)
    result = cluster.wait_job(job, timeout=60)
    assert result.state == "CANCELLED", result.info
    assert_nothing_left(cluster)


def test_ctrl_c_on_the_launcher_ends_every_process_on_every_node(
    clean_slurm_cluster: SlurmCluster,
) -> None:
    cluster = clean_slurm_cluster
    job = started(cluster, str(SCRIPT), "hang")
    assert all(cluster.processes_on(node) for node in NODES)

    def launcher() -> int | None:
        for pid in cluster.processes_on("node1"):
            if f"-m scoop_launch {SCRIPT}" in cmdline(pid):
                return pid
        return None

    pid = launcher()
    assert pid is not None, cluster.describe_processes("node1")
    os.kill(pid, signal.SIGINT)
    result = cluster.wait_job(job, timeout=60)
    assert (result.state, result.exit_code) == ("FAILED", 130), result.output
    assert "scoop: SIGINT: stopping the run" in result.output
    assert_nothing_left(cluster)


def test_a_node_lost_mid_run_has_its_tasks_run_elsewhere(
    clean_slurm_cluster: SlurmCluster,
) -> None:
    cluster = clean_slurm_cluster
    job = started(cluster, str(SCRIPT), "long", "3")
    # node3's agent and workers are the job step srun started there: end that step.
    steps = cluster.client("squeue", "--steps", "--noheader", "--format=%i %N", f"--job={job}")
    (node3_step,) = [
        step for step, *nodes in map(str.split, steps.splitlines()) if nodes == ["node3"]
    ]
    cluster.scancel(node3_step)
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("COMPLETED", 0), result.output
    assert "DONE" in result.output
    assert "lost" in result.output and "node3" in result.output
    assert_nothing_left(cluster)


def test_a_node_that_cannot_run_scoop_is_named(clean_slurm_cluster: SlurmCluster) -> None:
    cluster = clean_slurm_cluster
    job = submit(cluster, "--python-executable", "/usr/bin/python3", str(SCRIPT), "where")
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("FAILED", 1), result.output
    assert "host node2: scoop is not installed for '/usr/bin/python3' there" in result.output
    assert_nothing_left(cluster)


def test_pbsdsh_agents_connect_back_without_standard_input(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    cluster = clean_slurm_cluster
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "pbsdsh").write_text(PBSDSH_STAND_IN)
    (tools / "pbsdsh").chmod(0o755)
    job = submit(
        cluster,
        "--launcher",
        "pbsdsh",
        str(SCRIPT),
        "where",
        before=f"export PATH={shlex.quote(str(tools))}:$PATH\n",
    )
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("COMPLETED", 0), result.output
    assert where(result.output)["hosts"] == {"node1": [0, 1], "node2": [2, 3], "node3": [4, 5]}
    assert_nothing_left(cluster)
