"""pytest fixtures for the ssh test hosts, as a plugin: ``pytest_plugins = ["hosts.fixtures"]``.

``test_hosts`` (session scope) is a :class:`~hosts.netns.TestHosts` of three hosts
``h0``, ``h1``, ``h2`` plus a "down" address where nothing listens. Where the machine cannot
build them (not root, no ``ip netns``, no sshd), the fixture fails with the reason: it does not
skip, since CI runs these tests as root.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so this package is ``hosts`` (the name
``--import-mode=importlib`` then gives the test modules here too: ``hosts.test_...``). Without
the plugin line, ``tests/hosts/conftest.py`` offers these fixtures to the tests of this folder.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import netns
from .netns import HostSetupError, TestHosts

N_HOSTS = 3


@pytest.fixture(scope="session")
def test_hosts() -> Iterator[TestHosts]:
    """Three real ssh hosts ``h0..h2`` in network namespaces, for the whole session."""
    error = ""
    try:
        hosts = netns.create_hosts(N_HOSTS)
    except HostSetupError as exc:
        error = str(exc)
    if error:  # failed outside the except block: no "during handling" noise
        pytest.fail(f"test hosts: {error}", pytrace=False)
    try:
        yield hosts
    finally:
        problems = hosts.teardown()
        if problems:
            pytest.fail(f"test hosts teardown left: {'; '.join(problems)}", pytrace=False)


@pytest.fixture
def clean_test_hosts(test_hosts: TestHosts) -> Iterator[TestHosts]:
    """``test_hosts``, checked to have no process on any host before and after the test.

    For launcher tests: a run must leave nothing behind on any host.
    """
    before = test_hosts.leftover_processes(timeout=5)
    if before:
        pytest.fail(f"processes already on the test hosts: {before}", pytrace=False)
    yield test_hosts
    after = test_hosts.leftover_processes(timeout=10)
    if after:
        detail = "; ".join(f"{n}: {test_hosts.describe_processes(n)}" for n in after)
        pytest.fail(f"processes left on the test hosts: {detail}", pytrace=False)
