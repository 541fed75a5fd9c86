"""pytest fixtures for the test networks, as a plugin: ``pytest_plugins = ["hosts.fixtures"]``.

``test_hosts`` (session scope) is a :class:`~hosts.netns.TestHosts` of three ssh hosts
``h0``, ``h1``, ``h2`` plus a "down" address where nothing listens. ``slurm_cluster`` (session
scope) is a :class:`~hosts.slurm.SlurmCluster`: a real SLURM controller and three compute nodes
``node1..node3``. Where the machine cannot build them (not root, no ``ip netns``, no sshd or
slurm), the fixtures fail with the reason: they do not skip, since CI runs these tests as root.
The ``clean_*`` variants also check that no process is left on any host or node, before and
after the test.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so this package is ``hosts`` (the name
``--import-mode=importlib`` then gives the test modules here too: ``hosts.test_...``). Without
the plugin line, ``tests/hosts/conftest.py`` offers these fixtures to the tests of this folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest

from . import netns, slurm
from .netns import HostSetupError, TestHosts
from .slurm import SlurmCluster

N_HOSTS = 3
N_SLURM_NODES = 3

_Set = TypeVar("_Set", TestHosts, SlurmCluster)


class _Machines(Protocol):
    def leftover_processes(self, timeout: float = ...) -> dict[str, list[int]]: ...

    def describe_processes(self, name: str, /) -> str: ...

    def kill_leftovers(self) -> None: ...


def _session_set(what: str, create: Callable[[], _Set]) -> Iterator[_Set]:
    """Create a set for the session, tear it down at its end; fail (not skip) if either fails."""
    error = ""
    try:
        made = create()
    except HostSetupError as exc:
        error = str(exc)
    if error:  # failed outside the except block: no "during handling" noise
        pytest.fail(f"{what}: {error}", pytrace=False)
    try:
        yield made
    finally:
        problems = made.teardown()
        if problems:
            pytest.fail(f"{what} teardown left: {'; '.join(problems)}", pytrace=False)


@contextlib.contextmanager
def _no_leftovers(machines: _Machines, what: str, after_timeout: float) -> Iterator[None]:
    """Fail if a process runs on ``machines`` before the block, or is still there after it."""
    before = machines.leftover_processes(timeout=5)
    if before:
        pytest.fail(f"processes already on the {what}: {before}", pytrace=False)
    yield
    after = machines.leftover_processes(timeout=after_timeout)
    if after:
        detail = "; ".join(f"{n}: {machines.describe_processes(n)}" for n in after)
        # Cleared so that this test's failure is not also every later test's.
        machines.kill_leftovers()
        pytest.fail(f"processes left on the {what}: {detail}", pytrace=False)


@pytest.fixture(scope="session")
def test_hosts() -> Iterator[TestHosts]:
    """Three real ssh hosts ``h0..h2`` in network namespaces, for the whole session."""
    yield from _session_set("test hosts", lambda: netns.create_hosts(N_HOSTS))


@pytest.fixture
def clean_test_hosts(test_hosts: TestHosts) -> Iterator[TestHosts]:
    """``test_hosts``, checked to have no process on any host before and after the test.

    For launcher tests: a run must leave nothing behind on any host.
    """
    with _no_leftovers(test_hosts, "test hosts", after_timeout=10):
        yield test_hosts


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A real SLURM cluster (controller ``slurmctl``, nodes ``node1..node3`` of 2 CPUs), for
    the whole session; submit with its ``sbatch`` from the test process."""
    yield from _session_set("SLURM cluster", lambda: slurm.create_cluster(N_SLURM_NODES))


@pytest.fixture
def clean_slurm_cluster(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """``slurm_cluster``, checked to run no job process on any node before and after the test.

    For launcher tests: a job must leave nothing behind on any node. A cancelled job's
    processes get SIGKILL ``KillWait`` (5 s) after SIGTERM, hence the longer wait after.
    """
    with _no_leftovers(slurm_cluster, "SLURM nodes", after_timeout=15):
        yield slurm_cluster
