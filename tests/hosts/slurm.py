"""A real SLURM cluster on this machine, for end-to-end tests of the launcher in SLURM jobs.

Layout of one cluster (``runid`` is 6 random hex digits)::

    root namespace: the submitting machine     namespace sslurm-<runid>-ctl, hostname slurmctl
    (sbatch, scontrol, scancel; munged)        eth0 10.213.K.2: slurmctld
    bridge ssb-<runid> 10.213.K.1/24 --------- veth ssv<runid>ctl
                                     --------- veth ssv<runid>node<k> <-> namespace
                                               sslurm-<runid>-node<k>, hostname node<k>
                                               eth0 10.213.K.(10+k): slurmd

No sshd anywhere: jobs reach the nodes through slurm only. The namespaces have no default route,
so nothing they send can leave the bridge. ``K`` is the first free ``10.213.K.0/24``: a set of
ssh test hosts (:mod:`netns`) in the same session gets another. Every daemon sees a private
/etc/hosts naming the controller, the nodes and the submitting machine (the bridge address, under
this machine's hostname), so the names in ``SLURM_JOB_NODELIST`` resolve inside jobs. One
``munged`` in the root namespace serves all. The file system is shared: a job can run the test
process's python (``sys.executable``) and write where the test reads.

Like :mod:`netns`, a cluster is recorded in a state file (:data:`STATE_DIR`) before it is built,
so that :func:`cleanup_stale` removes what a crashed run left (munged included, by its recorded
pid), and :meth:`SlurmCluster.teardown` also runs from ``atexit`` and on SIGTERM.

Needs root and the packages ``slurmctld slurmd slurm-client munge`` (``.ci/setup-slurm.sh``);
without them :func:`create_cluster` raises :class:`HostSetupError` naming what is missing.

Also a command line, for trying things by hand (``export SLURM_CONF=`` the printed ``conf``)::

    python tests/hosts/slurm.py up [-n 3]    # create a cluster, print it as JSON, wait for Ctrl-C
    python tests/hosts/slurm.py cleanup      # remove what crashed runs left behind
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: import the siblings below as the package "hosts"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "hosts"

from ._netbase import (
    SUPERNET,
    Host,
    HostSetupError,
    build_network,
    cmdline,
    kill_pids,
    locked,
    netns_pids,
    proc_start_time,
    wait_until,
)
from ._runs import Claim, Family, command_line, register_live, unregister_live
from ._slurmjobs import FINAL_STATES, JobResult, SlurmError, SlurmJobs
from ._slurmsetup import (
    Layout,
    check_prerequisites,
    client_environ,
    log_tail,
    start_munged,
    start_slurm_daemons,
    submit_host_names,
    wait_munged,
    wait_nodes_idle,
    write_files,
)

__all__ = [
    "FINAL_STATES",
    "HostSetupError",
    "JobResult",
    "SlurmCluster",
    "SlurmError",
    "cleanup_stale",
    "create_cluster",
]

NS_PREFIX = "sslurm-"
BRIDGE_PREFIX = "ssb-"
VETH_PREFIX = "ssv"
TMP_PREFIX = "scoop-slurm-"
STATE_DIR = Path("/run/scoop-test-slurm")
CONTROLLER = "slurmctl"
CONTROLLER_OFFSET = 2  # slurmctl is .2
NODE_OFFSET = 10  # node<k> is .(10+k)
MAX_NODES = 99  # a veth name "ssv<runid>node<k>" must fit in 15 characters

#: The names and state files of the clusters' runs (a veth is named like its namespace).
FAMILY = Family(
    ns_prefix=NS_PREFIX,
    ns_suffix=r"ctl|node\d+",
    bridge_prefix=BRIDGE_PREFIX,
    veth_prefix=VETH_PREFIX,
    veth_suffix=r"ctl|node\d+",
    tmp_prefix=TMP_PREFIX,
    state_dir=STATE_DIR,
)


@dataclass
class SlurmCluster(SlurmJobs):
    """A running cluster; made by :func:`create_cluster`, removed by :meth:`teardown`."""

    runid: str
    layout: Layout
    bridge: str
    subnet: str
    setup_seconds: float = 0.0
    teardown_seconds: float = 0.0
    _daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _torn_down: bool = field(default=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # ----- lookup

    @property
    def nodes(self) -> list[str]:
        """The compute nodes' names, ``["node1", "node2", ...]``."""
        return [h.name for h in self.layout.nodes]

    @property
    def controller(self) -> str:
        """The controller's name (and hostname), ``slurmctl``."""
        return self.layout.controller.name

    @property
    def bridge_address(self) -> str:
        """The submitting machine's address on the bridge (what jobs can connect back to)."""
        return self.layout.bridge_address

    @property
    def submit_host(self) -> str:
        """The submitting machine's name, as the nodes' /etc/hosts has it."""
        return submit_host_names()[0]

    @property
    def conf(self) -> Path:
        """slurm.conf (``SLURM_CONF``)."""
        return self.layout.conf

    @property
    def workdir(self) -> Path:
        """The cluster's temp dir (removed by :meth:`teardown`)."""
        return self.layout.workdir

    @property
    def jobs_dir(self) -> Path:
        """The default working directory of jobs, where their ``slurm-<id>.out`` go."""
        return self.layout.jobs_dir

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the cluster, the controller's first."""
        return [h.namespace for h in self._hosts()]

    def _hosts(self) -> list[Host]:
        return [self.layout.controller, *self.layout.nodes]

    def host(self, name: str) -> Host:
        """The :class:`Host` of ``name`` (a node, or the controller), by name or address."""
        for h in self._hosts():
            if name in {h.name, h.address, h.namespace}:
                return h
        raise KeyError(f"no node {name!r}; there are {self.nodes} and {self.controller!r}")

    def node_address(self, name: str) -> str:
        """The address of node (or controller) ``name``."""
        return self.host(name).address

    def namespace(self, name: str) -> str:
        """The network namespace of node (or controller) ``name``."""
        return self.host(name).namespace

    def daemon_pid(self, name: str) -> int:
        """The pid of the slurmd of node ``name`` (of slurmctld for the controller)."""
        h = self.host(name)
        return self._daemons["slurmctld" if h == self.layout.controller else h.name].pid

    def log(self, name: str) -> str:
        """The end of the log of ``slurmctld``, ``munged`` or a node's slurmd, for messages."""
        return log_tail(self.layout, name, chars=20_000)

    def run(
        self, name: str, cmd: str | Sequence[str], *, timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on node ``name`` outside slurm (its network, UTS and mount namespaces,
        so its hostname and /etc/hosts): the back door, for inspecting a node.

        ``cmd`` is a shell command line if a string, else an argv.
        """
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        pid = str(self.daemon_pid(name))
        return subprocess.run(
            ["nsenter", "--target", pid, "--net", "--uts", "--mount", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            stdin=subprocess.DEVNULL,
        )

    # ----- processes on the nodes

    def processes_on(self, name: str, *, include_daemon: bool = False) -> list[int]:
        """Pids of the processes on node ``name`` (its network namespace): slurmstepd and what
        jobs run there; the node's slurmd only if ``include_daemon``."""
        pids = netns_pids(self.namespace(name))
        if include_daemon:
            return pids
        daemon = self.daemon_pid(name)
        # slurmctld's helper slurmscriptd is the controller's daemon too.
        return [p for p in pids if p != daemon and "slurmscriptd" not in cmdline(p)]

    def describe_processes(self, name: str, *, include_daemon: bool = False) -> str:
        """``pid cmdline`` lines of :meth:`processes_on`, for assertion messages."""
        pids = self.processes_on(name, include_daemon=include_daemon)
        return "\n".join(f"{pid} {cmdline(pid)}" for pid in pids) or "(none)"

    def leftover_processes(self, timeout: float = 10.0) -> dict[str, list[int]]:
        """Wait for every node to run no job process; ``{node: pids}`` of those that still do."""
        wait_until(
            lambda: not any(self.processes_on(n) for n in self.nodes),
            time.monotonic() + timeout,
        )
        return {n: pids for n in self.nodes if (pids := self.processes_on(n))}

    def kill_leftovers(self) -> None:
        """Cancel every job and SIGKILL what still runs on the nodes (slurmd is kept)."""
        with contextlib.suppress(SlurmError, subprocess.SubprocessError):
            self.client("scancel", "--partition=test", "--full")
        for node in self.nodes:
            kill_pids(self.processes_on(node))
        self.leftover_processes(timeout=5)

    # ----- teardown

    def teardown(self) -> list[str]:
        """Kill the daemons and everything on the nodes at once, delete namespaces, links and
        files. Idempotent. Returns the problems met (empty if all went away)."""
        with self._lock:
            if self._torn_down:
                return []
            self._torn_down = True
        unregister_live(self.runid, self)
        start = time.monotonic()
        problems = FAMILY.finish_run(
            self.runid,
            list(self._daemons.items()),
            self.namespaces,
            [*_links(self.runid, self.namespaces), self.bridge],
            [self.workdir],
        )
        self.teardown_seconds = time.monotonic() - start
        return problems

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def describe(self) -> dict[str, Any]:
        """The cluster as plain data (what ``slurm.py up`` prints)."""
        return {
            "runid": self.runid,
            "conf": str(self.conf),
            "env": self.env(),
            "controller": {"name": self.controller, "address": self.layout.controller.address},
            "nodes": [{"name": h.name, "address": h.address} for h in self.layout.nodes],
            "namespaces": self.namespaces,
            "bridge": self.bridge,
            "bridge_address": self.bridge_address,
            "submit_host": self.submit_host,
            "workdir": str(self.workdir),
            "pids": {name: proc.pid for name, proc in self._daemons.items()},
            "setup_seconds": round(self.setup_seconds, 3),
        }


def _suffix(namespace: str) -> str:
    """``ctl`` or ``node<k>``: a veth is named like its namespace."""
    return namespace.rsplit("-", 1)[1]


def _link(runid: str, namespace: str) -> str:
    return FAMILY.veth(runid, _suffix(namespace))


def _links(runid: str, namespaces: Sequence[str]) -> list[str]:
    return [_link(runid, ns) for ns in namespaces]


# --------------------------------------------------------------------------- creation


def cleanup_stale() -> list[str]:
    """Remove the namespaces, links, temp dirs, munged and state files of clusters whose owner
    is gone (a crashed run); those of a live run are left alone. Returns the names removed."""
    return FAMILY.cleanup_stale()


def create_cluster(
    n_nodes: int = 3, *, cpus_per_node: int = 2, ready_timeout: float = 20.0
) -> SlurmCluster:
    """Start a cluster of ``n_nodes`` nodes ``node1..``, ``cpus_per_node`` CPUs each; all idle
    on return.

    Removes first what crashed earlier runs left (:func:`cleanup_stale`). Raises
    :class:`HostSetupError` if this machine cannot (not root, packages missing) or a daemon
    does not come up; whatever was built by then is removed again.
    """
    if not 1 <= n_nodes <= MAX_NODES:
        raise ValueError(f"n_nodes must be in 1..{MAX_NODES}")
    start = time.monotonic()
    check_prerequisites(f"{NS_PREFIX}probe-{os.getpid()}")
    claim: Claim | None = None
    cluster: SlurmCluster | None = None
    try:
        with locked():
            FAMILY.cleanup_stale_locked()
            claim = FAMILY.claim(["ctl", *(f"node{k}" for k in range(1, n_nodes + 1))], SUPERNET)
            base = claim.subnet.network_address
            ctl_ns, *node_ns = claim.namespaces
            layout = Layout(
                workdir=claim.workdir,
                controller=Host(CONTROLLER, str(base + CONTROLLER_OFFSET), ctl_ns),
                nodes=tuple(
                    Host(_suffix(ns), str(base + NODE_OFFSET + k), ns)
                    for k, ns in enumerate(node_ns, 1)
                ),
                bridge_address=str(base + 1),
                cpus_per_node=cpus_per_node,
            )
            cluster = SlurmCluster(claim.runid, layout, claim.bridge, str(claim.subnet))
            register_live(claim.runid, cluster)
            members = [
                (_link(claim.runid, h.namespace), h.namespace, h.address) for h in cluster._hosts()
            ]
            build_network(claim.bridge, layout.bridge_address, claim.subnet.prefixlen, members)
        _start(cluster, time.monotonic() + ready_timeout)
    except BaseException:
        if cluster is not None:
            cluster.teardown()
        elif claim is not None:
            links = [*_links(claim.runid, claim.namespaces), claim.bridge]
            FAMILY.finish_run(claim.runid, [], claim.namespaces, links, [claim.workdir])
        raise
    cluster.setup_seconds = time.monotonic() - start
    return cluster


def _start(cluster: SlurmCluster, deadline: float) -> None:
    layout = cluster.layout
    write_files(layout)
    env = client_environ(layout.conf)
    munged = start_munged(layout, env)
    cluster._daemons["munged"] = munged
    # munged lives in the root namespace: only its recorded pid lets a stale cleanup find it.
    FAMILY.update_state(cluster.runid, root_pids=[[munged.pid, proc_start_time(munged.pid)]])
    wait_munged(layout, munged, deadline)
    cluster._daemons.update(start_slurm_daemons(layout, env))
    wait_nodes_idle(layout, cluster._daemons, env, deadline)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``up`` (a cluster until stdin closes or Ctrl-C) or ``cleanup`` (of crashed runs)."""
    return command_line(
        argv, doc=__doc__, what="a cluster", create=create_cluster, cleanup_stale=cleanup_stale
    )


if __name__ == "__main__":
    sys.exit(main())
