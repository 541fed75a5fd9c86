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

# The other schedulers' tools, played by srun on the SLURM cluster, each with its own argument
# layout and ways: they check the launcher's commands by running them, agents and workers
# included. pbsdsh carries no standard input and exits with 0 whatever its task did, as the real
# one does: the agent must connect back and say its own exit status.
SRUN_ONE = 'srun --nodes=1 --ntasks=1 --nodelist="$host" --overlap --quiet'
STAND_INS = {
    "pbsdsh": f"""
[ "$1" = -n ] && [ "$3" = -- ] || {{ echo "pbsdsh stand-in: $*" >&2; exit 2; }}
host=$(sed -n "$(($2 + 1))p" "$PBS_NODEFILE"); shift 3
{SRUN_ONE} --input=none "$@" </dev/null
exit 0
""",
    "qrsh": f"""
[ "$1" = -inherit ] && [ $# -eq 3 ] || {{ echo "qrsh stand-in: $*" >&2; exit 2; }}
host=$2
exec {SRUN_ONE} sh -c "$3"
""",
    "blaunch": f"""
[ $# -eq 2 ] || {{ echo "blaunch stand-in: $*" >&2; exit 2; }}
host=$1
exec {SRUN_ONE} sh -c "$2"
""",
    "mpiexec": f"""
[ "$1 $2 $3 $5 $6" = "-n 1 --host --bind-to none" ] || {{ echo "mpiexec stand-in: $*" >&2
    exit 2; }}
host=$4; shift 6
exec {SRUN_ONE} "$@"
""",
}
# What each tool's job would have set (SLURM's own variables stay: they give the hosts).
JOB_ENVIRONMENT = {
    "pbsdsh": "export PBS_JOBID=7.pbs PBS_NODEFILE={dir}/nodefile",
    "qrsh": "export JOB_ID=7",
    "blaunch": "export LSB_JOBID=7",
    "mpiexec": "",
}


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


@pytest.mark.parametrize("tool", ["pbsdsh", "qrsh", "blaunch", "mpiexec"])
def test_the_other_schedulers_tools_start_the_agents_as_built(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path, tool: str
) -> None:
    cluster = clean_slurm_cluster
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls"
    stand_in = tools / tool
    stand_in.write_text(f"#!/bin/sh\necho {tool} >> {calls}\n{STAND_INS[tool]}")
    stand_in.chmod(0o755)
    (tmp_path / "nodefile").write_text("".join(f"{n}\n{n}\n" for n in NODES))
    before = f"export PATH={shlex.quote(str(tools))}:$PATH\n"
    before += JOB_ENVIRONMENT[tool].format(dir=tmp_path) + "\n"
    job = submit(cluster, "--launcher", tool, str(SCRIPT), "where", before=before)
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("COMPLETED", 0), result.output
    assert where(result.output)["hosts"] == {"node1": [0, 1], "node2": [2, 3], "node3": [4, 5]}
    assert calls.read_text().split() == [tool, tool]  # node2's agent and node3's
    assert "stand-in" not in result.output
    assert_nothing_left(cluster)


def test_an_agent_that_cannot_connect_back_is_named(
    clean_slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    cluster = clean_slurm_cluster
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "pbsdsh").write_text("#!/bin/sh\n" + STAND_INS["pbsdsh"])
    (tools / "pbsdsh").chmod(0o755)
    (tmp_path / "nodefile").write_text("".join(f"{n}\n{n}\n" for n in NODES))
    before = f"export PATH={shlex.quote(str(tools))}:$PATH\n"
    before += JOB_ENVIRONMENT["pbsdsh"].format(dir=tmp_path) + "\n"
    # The ticket is written where the nodes cannot read it (as with an unshared home).
    before += f"export SCOOP_RUNS_DIR={tmp_path / 'private'}\nmkdir -m 700 {tmp_path / 'private'}\n"
    before += f"mount -t tmpfs none {tmp_path / 'private'} || exit 99\n"
    job = submit(cluster, "--launcher", "pbsdsh", str(SCRIPT), "where", before=before)
    result = cluster.wait_job(job, timeout=120)
    assert (result.state, result.exit_code) == ("FAILED", 1), result.output
    assert "host node2: the agent started with pbsdsh never connected back" in result.output
    assert_nothing_left(cluster)
