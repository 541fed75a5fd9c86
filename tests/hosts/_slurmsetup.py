"""Configuration files and daemons of the SLURM test cluster (:mod:`slurm` puts them together).

What works here, and why, is in ``/work/shared/slurm-notes.md``; in short:

- one ``munged`` in the root namespace serves every namespace (a unix socket bound to a path is
  reachable from any network namespace); it needs ``--force`` under the 0700 temp dir;
- each slurm daemon is entered into its network namespace with ``nsenter --net`` (not
  ``ip netns exec``, which remounts /sys, where slurmd then finds no cgroup file system), and
  ``unshare --uts --mount`` gives it its hostname and a private /etc/hosts (bind mount);
- ``SLURM_CONF`` is set for every daemon and client: without it a client asks DNS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._netbase import Host, HostSetupError, netns_problem, run, tcp_ready, wait_until

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
MUNGED = "/usr/sbin/munged"
CLIENTS = ("sbatch", "srun", "scontrol", "scancel", "sinfo", "squeue")
SLURMCTLD_PORT = 6817
#: Seconds between the SIGTERM and the SIGKILL of a cancelled job's processes (30 by default:
#: short here so that a cancelled test job is gone soon).
KILL_WAIT = 5
#: Seconds a finished job stays visible to ``scontrol show job`` (there is no slurmdbd).
MIN_JOB_AGE = 3600
#: Environment variables of an enclosing SLURM job, which the clients would take as options.
CLIENT_VAR_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SINFO_", "SCANCEL_")


@dataclass(frozen=True)
class Layout:
    """Names, addresses and files of one cluster."""

    workdir: Path
    controller: Host
    nodes: tuple[Host, ...]
    bridge_address: str
    cpus_per_node: int

    @property
    def conf(self) -> Path:
        """slurm.conf."""
        return self.workdir / "slurm.conf"

    @property
    def hosts_file(self) -> Path:
        """The /etc/hosts every daemon (and so every job) sees."""
        return self.workdir / "hosts"

    @property
    def munge_dir(self) -> Path:
        """munged's key, socket, pid, seed and log files."""
        return self.workdir / "munge"

    @property
    def munge_socket(self) -> Path:
        """The socket of munged (``AuthInfo=socket=...``)."""
        return self.munge_dir / "munge.socket.2"

    @property
    def jobs_dir(self) -> Path:
        """Job scripts, and the default working directory and output of jobs."""
        return self.workdir / "jobs"

    def log(self, name: str) -> Path:
        """The log file of daemon ``name`` (``slurmctld``, ``munged`` or a node name)."""
        return self.workdir / "log" / f"{name}.log"

    def output(self, name: str) -> Path:
        """What daemon ``name`` wrote on stdout and stderr (before its log file was open)."""
        return self.workdir / "log" / f"{name}.out"


def submit_host_names() -> list[str]:
    """The names of the machine the tests run on (its hostname, and the short form)."""
    name = socket.gethostname()
    short = name.split(".", 1)[0]
    return [name] if short == name else [name, short]


def client_environ(conf: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) for a slurm client or daemon: with
    ``SLURM_CONF``, and without the variables of an enclosing job."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(CLIENT_VAR_PREFIXES)
    }
    env["SLURM_CONF"] = str(conf)
    return env


def check_prerequisites(probe: str) -> None:
    """Raise :class:`HostSetupError` naming what is missing to run the cluster here."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"must run as root (euid is {os.geteuid()})")
    for tool in ("ip", "unshare", "nsenter", "mount", "hostname"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH")
    packages = {SLURMCTLD: "slurmctld", SLURMD: "slurmd", MUNGED: "munge"}
    for path, package in packages.items():
        if not os.access(path, os.X_OK):
            problems.append(f"{path} not found (the {package} package)")
    for tool in CLIENTS:
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH (the slurm-client package)")
    if not problems and (problem := netns_problem(probe)):
        problems.append(problem)
    if problems:
        hint = ""
        if any("package" in p for p in problems):
            hint = " (.ci/setup-slurm.sh installs them)"
        raise HostSetupError("cannot build the SLURM test cluster: " + "; ".join(problems) + hint)


# --------------------------------------------------------------------------- files


def hosts_text(layout: Layout) -> str:
    """The private /etc/hosts: the submitting machine, the controller and the nodes."""
    lines = [
        "127.0.0.1 localhost",
        "::1 localhost ip6-localhost ip6-loopback",
        f"{layout.bridge_address} {' '.join(submit_host_names())}",
        *(f"{h.address} {h.name}" for h in (layout.controller, *layout.nodes)),
    ]
    return "\n".join(lines) + "\n"


def slurm_conf(layout: Layout) -> str:
    """slurm.conf: every path under the work dir, one partition ``test`` of all nodes."""
    w, ctl = layout.workdir, layout.controller
    settings = {
        "ClusterName": "scooptest",
        "SlurmctldHost": f"{ctl.name}({ctl.address})",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={layout.munge_socket}",
        # No cgroups: a process is the job's if it descends from the job's slurmstepd.
        "ProctrackType": "proctrack/linuxproc",
        # CPU binding as most clusters have it (the launcher's srun must not pin workers).
        "TaskPlugin": "task/affinity",
        "SelectType": "select/cons_tres",
        # CPUs only: with memory counted too, every job would take a whole node.
        "SelectTypeParameters": "CR_Core",
        "MpiDefault": "none",
        "ReturnToService": "2",
        # The nodes' CPUs as configured, whatever this machine has (else they are drained).
        "SlurmdParameters": "config_overrides",
        # Without it back-to-back jobs wait 3 s each.
        "SchedulerParameters": "batch_sched_delay=0",
        "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "JobCompType": "jobcomp/none",
        "MinJobAge": str(MIN_JOB_AGE),
        "KillWait": str(KILL_WAIT),
        "InactiveLimit": "0",
        "MailProg": "/bin/true",
        "StateSaveLocation": str(w / "state"),
        "SlurmdSpoolDir": str(w / "spool" / "%n"),
        "SlurmctldPidFile": str(w / "run" / "slurmctld.pid"),
        "SlurmdPidFile": str(w / "run" / "slurmd-%n.pid"),
        "SlurmctldLogFile": str(layout.log("slurmctld")),
        "SlurmdLogFile": str(layout.log("%n")),
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines += [
        f"NodeName={h.name} NodeAddr={h.address} CPUs={layout.cpus_per_node} State=UNKNOWN"
        for h in layout.nodes
    ]
    lines.append("PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def write_files(layout: Layout) -> None:
    """The directories, munge key, hosts file and slurm.conf of ``layout``."""
    for sub in ("state", "spool", "run", "log", "jobs"):
        (layout.workdir / sub).mkdir()
    layout.munge_dir.mkdir(mode=0o700)
    key = layout.munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)  # munged refuses a key others can read
    layout.hosts_file.write_text(hosts_text(layout))
    layout.conf.write_text(slurm_conf(layout))


# --------------------------------------------------------------------------- daemons


def _spawn(argv: Sequence[str], out: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    with open(out, "wb") as out_file:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # a Ctrl-C at the terminal is for the owner, not for them
        )


def start_munged(layout: Layout, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """munged in the foreground (its pid is the Popen's), all its files under munge_dir."""
    d = layout.munge_dir
    argv = [
        MUNGED,
        "--foreground",
        "--force",  # the temp dir is 0700: munged finds its socket "inaccessible" otherwise
        f"--key-file={d / 'munge.key'}",
        f"--socket={layout.munge_socket}",
        f"--pid-file={d / 'munged.pid'}",
        f"--log-file={layout.log('munged')}",
        f"--seed-file={d / 'munged.seed'}",
    ]
    return _spawn(argv, layout.output("munged"), env)


def start_in_namespace(
    layout: Layout, host: Host, name: str, argv: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start daemon ``name`` (``argv``) in ``host``'s network namespace with its hostname and
    the private /etc/hosts; each step ``exec``s the next, so the Popen's pid is the daemon's."""
    script = 'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
    wrapped = [
        "nsenter",
        f"--net=/run/netns/{host.namespace}",
        "unshare",
        "--uts",
        "--mount",  # private mount propagation: the bind mount stays in there
        "--",
        "sh",
        "-c",
        script,
        "sh",
        host.name,
        str(layout.hosts_file),
        *argv,
    ]
    return _spawn(wrapped, layout.output(name), env)


def start_slurm_daemons(
    layout: Layout, env: Mapping[str, str]
) -> dict[str, subprocess.Popen[bytes]]:
    """slurmctld and a slurmd per node, all at once (a slurmd retries until slurmctld is up)."""
    ctl = layout.controller
    daemons = {"slurmctld": start_in_namespace(layout, ctl, "slurmctld", [SLURMCTLD, "-D"], env)}
    for h in layout.nodes:
        daemons[h.name] = start_in_namespace(layout, h, h.name, [SLURMD, "-D", "-N", h.name], env)
    return daemons


def log_tail(layout: Layout, name: str, chars: int = 1500) -> str:
    """The end of what daemon ``name`` wrote (its output, then its log), for messages."""
    texts = []
    for path in (layout.output(name), layout.log(name)):
        try:
            texts.append(path.read_text(errors="replace").strip())
        except OSError:
            continue
    return "\n".join(t for t in texts if t)[-chars:] or "(nothing)"


def _check_alive(layout: Layout, daemons: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for name, proc in daemons.items():
        if proc.poll() is not None:
            raise HostSetupError(
                f"{name} exited {proc.returncode} while starting: {log_tail(layout, name)}"
            )


def wait_munged(layout: Layout, munged: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait for munged's socket."""

    def up() -> bool:
        _check_alive(layout, {"munged": munged})
        return layout.munge_socket.exists()

    if not wait_until(up, deadline):
        raise HostSetupError(f"munged made no socket in time: {log_tail(layout, 'munged')}")


def wait_nodes_idle(
    layout: Layout,
    daemons: Mapping[str, subprocess.Popen[bytes]],
    env: Mapping[str, str],
    deadline: float,
) -> None:
    """Wait until slurmctld answers and every node is registered and idle."""
    ctl = layout.controller
    # A TCP probe first: a client started before slurmctld listens retries for 9 s. (slurmctld
    # logs the probe as "Zero Bytes were transmitted or received": harmless.)

    def listening() -> bool:
        _check_alive(layout, daemons)
        return tcp_ready(ctl.address, SLURMCTLD_PORT)

    if not wait_until(listening, deadline):
        raise HostSetupError(
            f"slurmctld does not listen on {ctl.address}:{SLURMCTLD_PORT}: "
            f"{log_tail(layout, 'slurmctld')}"
        )
    states: dict[str, str] = {}

    def all_idle() -> bool:
        _check_alive(layout, daemons)
        out = run(
            ["sinfo", "--noheader", "--Node", "--format=%N %T"],
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
            env=env,
        )
        states.clear()
        for line in out.splitlines():
            name, _, state = line.partition(" ")
            states[name] = state.strip()
        return all(states.get(h.name) == "idle" for h in layout.nodes)

    if not wait_until(all_idle, deadline, most=0.05):
        detail = "; ".join(f"{h.name}: {log_tail(layout, h.name, 400)}" for h in layout.nodes)
        raise HostSetupError(f"the nodes are not all idle in time: {states}; {detail}")
