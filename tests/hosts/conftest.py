"""Offer the fixtures of the test networks (ssh hosts, SLURM cluster) to this folder's tests.

When ``tests/conftest.py`` loads :mod:`fixtures` as a plugin (``pytest_plugins =
["hosts.fixtures"]``), its fixtures are everyone's and this file adds nothing: defining them
here as well would make a second set of hosts.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FIXTURES_FILE = str(Path(__file__).with_name("fixtures.py"))
_LOADED_AS_PLUGIN = any(
    getattr(module, "__file__", None) == _FIXTURES_FILE for module in list(sys.modules.values())
)

if not _LOADED_AS_PLUGIN:
    from .fixtures import clean_slurm_cluster, clean_test_hosts, slurm_cluster, test_hosts

    __all__ = ["clean_slurm_cluster", "clean_test_hosts", "slurm_cluster", "test_hosts"]
