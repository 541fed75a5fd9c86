"""Which tool starts the agent on each remote host, and its exact command line.

Inside a batch allocation the scheduler's own remote-start tool is used, so that a cluster that
forbids ssh to its compute nodes can still run SCOOP, and so that the job step's end takes
everything with it (``--launcher``, default ``auto``):

=========  ======================================================  ==========================
starter    command (``LINE`` is the shell line of agent_command)   used by ``auto`` when
=========  ======================================================  ==========================
ssh        paramiko: ``LINE`` on an ssh channel                     hosts come from --hosts,
                                                                   --hostfile, or no tool
srun       ``srun --nodes=1 --ntasks=1 --nodelist=HOST --overlap   a SLURM allocation
           --whole --cpu-bind=none --export=ALL --quiet
           --job-name=scoop-agent sh -c LINE``
pbsdsh     ``pbsdsh -n INDEX -- sh -c LINE`` (LINE with          a PBS/Torque allocation
           --connect; INDEX: the host's line in $PBS_NODEFILE)
qrsh       ``qrsh -inherit HOST LINE``                              an SGE allocation
blaunch    ``blaunch HOST LINE``                                    an LSF allocation
mpiexec    ``mpiexec -n 1 --host HOST --bind-to none sh -c LINE``   never (ask for it)
=========  ======================================================  ==========================

Each starts one agent per host, which starts that host's workers. The run's secret travels on
the agent's standard input (never on a command line); ``pbsdsh`` forwards no standard input, so
there the agent connects back to the launcher over TCP and proves itself with a ticket read from
a file only the user can read (see :mod:`scoop_launch._command_agent`).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from scoop_launch._options import SshOptions

#: Every starter, in the order ``--launcher`` lists them.
STARTERS = ("auto", "ssh", "srun", "pbsdsh", "qrsh", "blaunch", "mpiexec")
#: The tool ``auto`` picks inside each allocation (scoop_launch._allocations.SCHEDULERS).
SCHEDULER_STARTERS = {"SLURM": "srun", "PBS": "pbsdsh", "SGE": "qrsh", "LSF": "blaunch"}
#: Starters that carry no standard input to the agent: it connects back to the launcher.
CONNECTING_BACK = frozenset({"pbsdsh"})
#: Exit statuses of the shell line before the agent runs (the agent's own are 0-3).
EXIT_BAD_PATH = 64
EXIT_PROLOG_FAILED = 65


class StarterError(ValueError):
    """The starter asked for cannot be used here; the message says why."""


#: What shows that this process runs inside each tool's allocation (its job id).
JOB_VARIABLES = {
    "srun": ("SLURM", "SLURM_JOB_ID"),
    "pbsdsh": ("PBS", "PBS_JOBID"),
    "qrsh": ("SGE", "JOB_ID"),
    "blaunch": ("LSF", "LSB_JOBID"),
}


def choose_starter(
    requested: str,
    scheduler: str | None,
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
) -> str:
    """The starter to use: ``requested``, or for ``auto`` the allocation's own tool.

    ``scheduler`` is the allocation the hosts came from (``"SLURM"``...), None for hosts given
    by --hosts or --hostfile (then ``auto`` means ssh). ``auto`` inside an allocation whose tool
    is not on PATH falls back to ssh. A starter asked for by name must be on PATH, and a
    scheduler's tool works only inside one of its jobs (``env`` says whether this is one).
    """
    if requested not in STARTERS:
        raise StarterError(f"unknown --launcher {requested!r}; choose one of {', '.join(STARTERS)}")
    if requested == "auto":
        tool = SCHEDULER_STARTERS.get(scheduler or "")
        return tool if tool is not None and which(tool) else "ssh"
    if requested != "ssh" and which(requested) is None:
        raise StarterError(
            f"--launcher {requested}: {requested!r} is not on PATH here (it is run on this "
            "machine, inside the allocation, to start the agent on each other host)"
        )
    if requested in JOB_VARIABLES:
        name, variable = JOB_VARIABLES[requested]
        if not env.get(variable, "").strip():
            raise StarterError(
                f"--launcher {requested} works only inside a {name} job ({variable} is not "
                "set); run the launcher from the job's batch script"
            )
    return requested


def pbs_node_indices(env: Mapping[str, str]) -> dict[str, int]:
    """Each host's first line in ``$PBS_NODEFILE``, counted from 0: what ``pbsdsh -n`` takes.

    PBS Pro's pbsdsh cannot name a host, only an index into the job's list of vnodes, which is
    also the node file's order (one line per slot, Torque's too).
    """
    path = env.get("PBS_NODEFILE", "")
    indices: dict[str, int] = {}
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
        except OSError:
            lines = []
        for number, line in enumerate(lines):
            host = line.strip()
            if host:
                indices.setdefault(host, number)
    return indices


def agent_command(options: SshOptions, agent_args: Sequence[str] = ()) -> str:
    """The shell line that starts the agent on a host (nothing secret in it)."""
    parts = [f"cd {shlex.quote(options.path)} || exit {EXIT_BAD_PATH};"]
    if options.pythonpath:
        parts.append(f"PYTHONPATH={shlex.quote(options.pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}};")
        parts.append("export PYTHONPATH;")
    if options.prolog:
        parts.append(f". {shlex.quote(options.prolog)} || exit {EXIT_PROLOG_FAILED};")
    parts.append("exec env")
    parts.extend(f"{k}={shlex.quote(v)}" for k, v in options.extra_env.items())
    if options.nice is not None:
        parts.append(f"nice -n {int(options.nice)}")
    parts.append(f"{shlex.quote(options.python)} -m scoop_launch._agent")
    parts.extend(shlex.quote(arg) for arg in agent_args)
    return " ".join(parts)


def start_argv(
    starter: str,
    host: str,
    options: SshOptions,
    agent_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The command run on this machine that starts the agent on ``host`` (not for ssh).

    ``env``: the job's environment (pbsdsh's node index is read from its node file).
    """
    line = agent_command(options, agent_args)
    if starter == "srun":
        # One task on that node only; --overlap: beside the batch step, which holds the CPUs;
        # --whole: the step gets every CPU of the job there (the default since 21.08, not in
        # 20.11), and --cpu-bind=none leaves the workers free to use them (a step of one task
        # is otherwise bound to one CPU); --export=ALL even where SLURM_EXPORT_ENV=NONE.
        return [
            "srun",
            "--nodes=1",
            "--ntasks=1",
            f"--nodelist={host}",
            "--overlap",
            "--whole",
            "--cpu-bind=none",
            "--export=ALL",
            "--quiet",
            "--job-name=scoop-agent",
            "sh",
            "-c",
            line,
        ]
    if starter == "pbsdsh":
        # -n (an index into the job's nodes) is what both Torque's and PBS Pro's pbsdsh take.
        index = pbs_node_indices(os.environ if env is None else env).get(host)
        if index is None:
            raise StarterError(f"host {host} is not in $PBS_NODEFILE: pbsdsh cannot reach it")
        return ["pbsdsh", "-n", str(index), "--", "sh", "-c", line]
    if starter == "qrsh":
        # qrsh -inherit runs its command line through the user's shell, as ssh does.
        return ["qrsh", "-inherit", host, line]
    if starter == "blaunch":
        return ["blaunch", host, line]
    if starter == "mpiexec":
        # Open MPI binds a lone process to one core by default: the workers need them all.
        return ["mpiexec", "-n", "1", "--host", host, "--bind-to", "none", "sh", "-c", line]
    raise StarterError(f"no command for starter {starter!r}")


def describe(starter: str, host: str, options: SshOptions, env: Mapping[str, str]) -> str:
    """How the agent on ``host`` is started, as ``--dry-run`` shows it."""
    if starter == "ssh":
        return f"ssh {host} {shlex.quote(agent_command(options))}   (paramiko)"
    agent_args = ["--connect", "ADDRESS:PORT", "--ticket-file", "FILE", "--host", host]
    extra = agent_args if starter in CONNECTING_BACK else []
    try:
        return shlex.join(start_argv(starter, host, options, extra, env))
    except StarterError as exc:
        return f"cannot be started: {exc}"


def remote_shell_failure(status: int, errors: str, options: SshOptions) -> str | None:
    """Why the shell line of :func:`agent_command` failed before the agent ran, or None."""
    if status == 127 or ("not found" in errors and options.python in errors):
        return f"no Python at {options.python!r} (--python-executable)"
    if status == EXIT_BAD_PATH:
        return f"cannot use working directory {options.path!r} there (--path)"
    if status == EXIT_PROLOG_FAILED:
        return f"the prolog {options.prolog!r} failed there (--prolog)"
    if "No module named" in errors:
        return (
            f"scoop is not installed for {options.python!r} there "
            "(pip install scoop-core scoop-zmq scoop-launch)"
        )
    return None


__all__ = [
    "CONNECTING_BACK",
    "SCHEDULER_STARTERS",
    "STARTERS",
    "StarterError",
    "agent_command",
    "choose_starter",
    "describe",
    "remote_shell_failure",
    "start_argv",
]
