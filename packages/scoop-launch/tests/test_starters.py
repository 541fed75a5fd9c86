"""Which tool starts the agents, and the exact commands built inside each scheduler's allocation.

No PBS, SGE or LSF can run on this machine: the commands are checked against environments as
those schedulers set them (variables and files recorded from real jobs), with stand-ins for
their tools on PATH, through ``--dry-run``. SLURM's srun is run for real in
tests/test_slurm_e2e.py.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from scoop_launch._options import SshOptions
from scoop_launch._starters import (
    StarterError,
    agent_command,
    choose_starter,
    start_argv,
)

PYTHON = sys.executable


def on_path(*tools: str):
    return lambda name: f"/usr/bin/{name}" if name in tools else None


@pytest.mark.parametrize(
    ("requested", "scheduler", "tools", "expected"),
    [
        ("auto", "SLURM", ["srun"], "srun"),
        ("auto", "PBS", ["pbsdsh"], "pbsdsh"),
        ("auto", "SGE", ["qrsh"], "qrsh"),
        ("auto", "LSF", ["blaunch"], "blaunch"),
        ("auto", "SLURM", [], "ssh"),  # the allocation's tool is not here: ssh, as before
        ("auto", None, ["srun"], "ssh"),  # hosts given by hand: ssh
        ("ssh", "SLURM", ["srun"], "ssh"),
        ("mpiexec", "PBS", ["mpiexec", "pbsdsh"], "mpiexec"),
        ("auto", "PBS", [], "ssh"),
        ("srun", None, ["srun"], "srun"),
    ],
)
def test_the_starter_is_the_allocations_own_tool_unless_asked(
    requested, scheduler, tools, expected
):
    assert choose_starter(requested, scheduler, IN_A_JOB, on_path(*tools)) == expected


IN_A_JOB = {"SLURM_JOB_ID": "7", "PBS_JOBID": "7.s", "JOB_ID": "7", "LSB_JOBID": "7"}


def test_a_starter_asked_for_must_be_on_path_known_and_in_its_job():
    with pytest.raises(StarterError, match="'qrsh' is not on PATH here"):
        choose_starter("qrsh", "SGE", IN_A_JOB, on_path())
    with pytest.raises(StarterError, match="unknown --launcher 'rsh'; choose one of auto, ssh"):
        choose_starter("rsh", None, IN_A_JOB, on_path("rsh"))
    # srun outside a job would ask SLURM for a new allocation per host.
    with pytest.raises(StarterError, match="srun works only inside a SLURM job"):
        choose_starter("srun", None, {}, on_path("srun"))
    assert choose_starter("mpiexec", None, {}, on_path("mpiexec")) == "mpiexec"


def options(**overrides):
    return SshOptions(python="/opt/py/bin/python", path="/home/ann/work", **overrides)


def test_the_agent_line_carries_the_remote_options_and_no_secret():
    line = agent_command(options(pythonpath="/lib a", prolog="/etc/env.sh", nice=5))
    assert line == (
        "cd /home/ann/work || exit 64; PYTHONPATH='/lib a'${PYTHONPATH:+:$PYTHONPATH}; "
        "export PYTHONPATH; . /etc/env.sh || exit 65; exec env nice -n 5 "
        "/opt/py/bin/python -m scoop_launch._agent"
    )


def test_srun_starts_one_unbound_task_beside_the_batch_step():
    argv = start_argv("srun", "node7", options())
    assert argv[:10] == [
        "srun",
        "--nodes=1",
        "--ntasks=1",  # SLURM_NTASKS of the job would win over --ntasks-per-node
        "--nodelist=node7",
        "--overlap",
        "--whole",
        "--cpu-bind=none",
        "--export=ALL",
        "--quiet",
        "--job-name=scoop-agent",
    ]
    assert argv[10:] == ["sh", "-c", agent_command(options())]


# Environments as the schedulers set them in a job of 3 nodes (recorded from real jobs; the
# files they name are written by the test).
RECORDED = {
    "PBS": (
        {
            "PBS_JOBID": "4711.pbs-server",
            "PBS_O_WORKDIR": "/home/ann/work",
            "PBS_NODEFILE": "{dir}/aux/4711.pbs-server",
            "PBS_NUM_NODES": "3",
            "PBS_NUM_PPN": "2",
            "PBS_ENVIRONMENT": "PBS_BATCH",
        },
        {"aux/4711.pbs-server": "cn01\ncn01\ncn02\ncn02\ncn03\ncn03\n"},
    ),
    "SGE": (
        {
            "JOB_ID": "815",
            "NSLOTS": "6",
            "NHOSTS": "3",
            "PE": "mpi",
            "PE_HOSTFILE": "{dir}/active_jobs/815.1/pe_hostfile",
            "SGE_ROOT": "/opt/sge",
            "SGE_CELL": "default",
        },
        {
            "active_jobs/815.1/pe_hostfile": (
                "cn01.cluster 2 all.q@cn01.cluster UNDEFINED\n"
                "cn02.cluster 2 all.q@cn02.cluster UNDEFINED\n"
                "cn03.cluster 2 all.q@cn03.cluster UNDEFINED\n"
            )
        },
    ),
    "LSF": (
        {
            "LSB_JOBID": "2024",
            "LSB_MCPU_HOSTS": "cn01 2 cn02 2 cn03 2",
            "LSB_HOSTS": "cn01 cn01 cn02 cn02 cn03 cn03",
            "LSB_DJOB_NUMPROC": "6",
        },
        {},
    ),
}
TOOLS = {"PBS": "pbsdsh", "SGE": "qrsh", "LSF": "blaunch"}


def stand_in_tools(folder: Path, *names: str) -> str:
    folder.mkdir()
    for name in names:
        path = folder / name
        path.write_text("#!/bin/sh\nexit 99\n")  # never run by a dry run
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def dry_run(tmp_path, scheduler, *args):
    variables, files = RECORDED[scheduler]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PBS_", "LSB_"))}
    env.pop("PE_HOSTFILE", None)
    env.update({k: v.format(dir=tmp_path) for k, v in variables.items()})
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    tools = stand_in_tools(tmp_path / "bin", TOOLS[scheduler], "mpiexec")
    env["PATH"] = tools + os.pathsep + env["PATH"]
    script = tmp_path / "job.py"
    script.write_text("print('never run')\n")
    return subprocess.run(
        [PYTHON, "-m", "scoop_launch", "--dry-run", "--path", "/home/ann/work", *args, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def commands(output: str) -> dict[str, list[str]]:
    """The ``  host: command`` lines of a dry run, split as a shell would."""
    found = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("agents, one per host"))
    for line in lines[start + 1 :]:
        host, _, command = line.strip().partition(": ")
        found[host] = shlex.split(command)
    return found


LINE = f"cd /home/ann/work || exit 64; exec env {PYTHON} -m scoop_launch._agent"


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (
            "SGE",
            {
                host: ["qrsh", "-inherit", host, LINE]
                for host in ("cn01.cluster", "cn02.cluster", "cn03.cluster")
            },
        ),
        ("LSF", {host: ["blaunch", host, LINE] for host in ("cn01", "cn02", "cn03")}),
        (
            "PBS",
            {
                host: [
                    "pbsdsh",
                    "-n",
                    str(index),  # the host's first line in $PBS_NODEFILE
                    "--",
                    "sh",
                    "-c",
                    f"{LINE} --connect ADDRESS:PORT --ticket-file FILE --host {host}",
                ]
                for host, index in (("cn01", 0), ("cn02", 2), ("cn03", 4))
            },
        ),
    ],
)
def test_inside_an_allocation_the_schedulers_tool_starts_each_hosts_agent(
    tmp_path, scheduler, expected
):
    result = dry_run(tmp_path, scheduler)
    assert result.returncode == 0, result.stderr
    assert f"hosts from: {scheduler} allocation" in result.stdout
    assert f"started with {TOOLS[scheduler]} " in result.stdout
    assert commands(result.stdout) == expected


def test_mpiexec_is_used_when_asked(tmp_path):
    result = dry_run(tmp_path, "PBS", "--launcher", "mpiexec", "-n", "4")
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout) == {
        host: ["mpiexec", "-n", "1", "--host", host, "--bind-to", "none", "sh", "-c", LINE]
        for host in ("cn01", "cn02")
    }


def test_ssh_can_still_be_asked_for_inside_an_allocation(tmp_path):
    result = dry_run(tmp_path, "LSF", "--launcher", "ssh")
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout)["cn02"] == ["ssh", "cn02", LINE, "(paramiko)"]


def test_tunnel_needs_ssh(tmp_path):
    result = dry_run(tmp_path, "SGE", "--tunnel")
    assert result.returncode == 2
    assert "--tunnel needs ssh to the hosts, not qrsh" in result.stderr


def test_a_host_without_a_count_needs_ssh_to_be_counted(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("cn01 2\ncn02\n")
    stand_in_tools(tmp_path / "bin", "srun")
    script = tmp_path / "job.py"
    script.write_text("print('never run')\n")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, PATH=path, SLURM_JOB_ID="7")
    argv = ["--dry-run", "--launcher", "srun", "--hostfile", str(hosts), str(script)]
    result = subprocess.run(
        [PYTHON, "-m", "scoop_launch", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert "host cn02 has no worker count, and only ssh can ask" in result.stderr
