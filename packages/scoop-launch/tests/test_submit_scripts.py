"""The batch scripts in examples/submit/: run each one in a fake allocation of its scheduler.

Each script is run with bash, with a fake ``python`` first on PATH. The fake records its
arguments, its working directory and what :func:`hosts_from_environment` detects in the
environment the script gave it. So the test checks that the script really ends in
``python -m scoop_launch examples/full_tree.py`` and that, under an allocation shaped like the
one its directives ask for, detection yields the expected hosts and worker count.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scoop_launch._hosts import Host, hosts_from_environment, place

SUBMIT_DIR = Path(__file__).resolve().parents[3] / "examples" / "submit"
EXPECTED_ARGV = ["-m", "scoop_launch", "examples/full_tree.py"]

RECORDER = """\
import json, os, sys
from scoop_launch._hosts import hosts_from_environment

detected = hosts_from_environment(os.environ)
record = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "scheduler": detected and detected[0],
    "hosts": detected and [[host.name, host.slots] for host in detected[1]],
}
with open(os.environ["FAKE_PYTHON_RECORD"], "w", encoding="utf-8") as out:
    json.dump(record, out)
"""


def requested_slurm(script: str) -> int:
    nodes = re.search(r"^#SBATCH --nodes=(\d+)$", script, re.MULTILINE)
    per_node = re.search(r"^#SBATCH --ntasks-per-node=(\d+)$", script, re.MULTILINE)
    assert nodes and per_node, "slurm.sh should ask for --nodes and --ntasks-per-node"
    return int(nodes[1]) * int(per_node[1])


def requested_pbs(script: str) -> int:
    match = re.search(r"^#PBS -l nodes=(\d+):ppn=(\d+)$", script, re.MULTILINE)
    assert match, "pbs.sh should ask for nodes=N:ppn=P"
    return int(match[1]) * int(match[2])


def requested_sge(script: str) -> int:
    match = re.search(r"^#\$ -pe \S+ (\d+)$", script, re.MULTILINE)
    assert match, "sge.sh should ask for a parallel environment with a slot count"
    return int(match[1])


def requested_lsf(script: str) -> int:
    match = re.search(r"^#BSUB -n (\d+)$", script, re.MULTILINE)
    assert match, "lsf.sh should ask for a slot count"
    return int(match[1])


def slurm_env(tmp: Path) -> dict[str, str]:
    return {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "cn[07-08]",
        "SLURM_NODELIST": "cn[07-08]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NTASKS": "8",
        "SLURM_TASKS_PER_NODE": "4(x2)",
        "SLURM_JOB_CPUS_PER_NODE": "4(x2)",
        "SLURM_SUBMIT_DIR": str(tmp / "workdir"),
    }


def pbs_env(tmp: Path) -> dict[str, str]:
    nodefile = tmp / "4243.server"
    nodefile.write_text("n001\n" * 4 + "n002\n" * 4, encoding="utf-8")
    return {
        "PBS_JOBID": "4243.server",
        "PBS_ENVIRONMENT": "PBS_BATCH",
        "PBS_NODEFILE": str(nodefile),
        "PBS_NP": "8",
        "PBS_O_WORKDIR": str(tmp / "workdir"),
    }


def sge_env(tmp: Path) -> dict[str, str]:
    pe_hostfile = tmp / "pe_hostfile"
    pe_hostfile.write_text(
        "sge-a.cluster 5 all.q@sge-a.cluster UNDEFINED\n"
        "sge-b.cluster 3 all.q@sge-b.cluster UNDEFINED\n",
        encoding="utf-8",
    )
    return {
        "JOB_ID": "4244",
        "PE": "mpi",
        "PE_HOSTFILE": str(pe_hostfile),
        "NSLOTS": "8",
    }


def lsf_env(tmp: Path) -> dict[str, str]:
    return {
        "LSB_JOBID": "4245",
        "LSB_MCPU_HOSTS": "lsf-a 4 lsf-b 4",
        "LSB_HOSTS": "lsf-a lsf-a lsf-a lsf-a lsf-b lsf-b lsf-b lsf-b",
        "LSB_DJOB_NUMPROC": "8",
        "LS_SUBCWD": str(tmp / "workdir"),
    }


CASES = [
    pytest.param(
        "slurm.sh",
        slurm_env,
        requested_slurm,
        "SLURM",
        [Host("cn07", 4), Host("cn08", 4)],
        "SLURM_NTASKS",
        id="slurm",
    ),
    pytest.param(
        "pbs.sh",
        pbs_env,
        requested_pbs,
        "PBS",
        [Host("n001", 4), Host("n002", 4)],
        "PBS_NP",
        id="pbs",
    ),
    pytest.param(
        "sge.sh",
        sge_env,
        requested_sge,
        "SGE",
        [Host("sge-a.cluster", 5), Host("sge-b.cluster", 3)],
        "NSLOTS",
        id="sge",
    ),
    pytest.param(
        "lsf.sh",
        lsf_env,
        requested_lsf,
        "LSF",
        [Host("lsf-a", 4), Host("lsf-b", 4)],
        "LSB_DJOB_NUMPROC",
        id="lsf",
    ),
]


@pytest.mark.parametrize(
    ("script_name", "make_env", "requested", "scheduler", "expected", "count_variable"), CASES
)
def test_submit_script_in_fake_allocation(
    tmp_path: Path,
    script_name: str,
    make_env: Callable[[Path], dict[str, str]],
    requested: Callable[[str], int],
    scheduler: str,
    expected: list[Host],
    count_variable: str,
) -> None:
    script = SUBMIT_DIR / script_name
    text = script.read_text(encoding="utf-8")
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER, encoding="utf-8")
    fake_python = fake_bin / "python"
    fake_python.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(recorder))} "$@"\n',
        encoding="utf-8",
    )
    fake_python.chmod(0o755)
    record_path = tmp_path / "record.json"

    scheduler_env = make_env(tmp_path)
    # The fake allocation has as many slots as the script's directives ask for.
    workers = requested(text)
    assert sum(host.slots or 0 for host in expected) == workers
    assert scheduler_env[count_variable] == str(workers)

    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_PYTHON_RECORD": str(record_path),
        **scheduler_env,
    }
    bash = shutil.which("bash")
    assert bash is not None
    completed = subprocess.run(
        [bash, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr

    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["argv"] == EXPECTED_ARGV
    assert Path(record["cwd"]) == workdir
    assert record["scheduler"] == scheduler
    assert [Host(name, slots) for name, slots in record["hosts"]] == expected

    # The same detection in this process, and the placement it leads to without -n.
    assert hosts_from_environment(scheduler_env) == (scheduler, expected)
    placed = place(expected, None, lambda name: 1)
    assert sum(count for _, count in placed) == workers
    assert placed[0][0] == expected[0].name  # the root worker's host


@pytest.mark.parametrize("script_name", ["slurm.sh", "pbs.sh", "sge.sh", "lsf.sh"])
def test_submit_script_is_valid_bash(script_name: str) -> None:
    script = SUBMIT_DIR / script_name
    bash = shutil.which("bash")
    assert bash is not None
    completed = subprocess.run(
        [bash, "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n")
    assert "\npython -m scoop_launch examples/full_tree.py\n" in text
