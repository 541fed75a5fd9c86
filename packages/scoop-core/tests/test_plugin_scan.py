"""The launcher's fast transport discovery agrees with full discovery, or steps aside."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from scoop import _plugins

PLUGIN = """
from scoop.hookspecs import hookimpl
from scoop.testing import memory_transport
from dataclasses import replace

@hookimpl
def scoop_transports():
    return [replace(memory_transport(), name={name!r})]
"""


def _install(folder: Path, distribution: str, entry_points: str, modules: dict[str, str]) -> None:
    """A distribution installed as a directory, as pip and uv lay one out."""
    info = folder / f"{distribution}-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _plugins._scanned_transports.cache_clear()
    _plugins.installed_transports.cache_clear()
    yield tmp_path
    _plugins._scanned_transports.cache_clear()
    _plugins.installed_transports.cache_clear()
    for name in [m for m in sys.modules if m.startswith("fake_plugin")]:
        del sys.modules[name]


def test_the_scan_finds_what_full_discovery_finds(on_path) -> None:
    _install(
        on_path,
        "fake_carrier",
        """
        # a comment, and a group of another tool
        [console_scripts]
        carrier = not_a_transport:main

        [scoop.transports]
        carrier = fake_plugin_carrier
        """,
        {"fake_plugin_carrier": PLUGIN.format(name="carrier")},
    )
    scanned = _plugins._scanned_transports()
    full = _plugins.installed_transports()
    assert scanned is not None
    assert {name: (t.module, t.plugin_name) for name, t in scanned.items()} == {
        name: (t.module, t.plugin_name) for name, t in full.items()
    }
    carrier = _plugins.choose_transport("carrier")
    assert carrier is scanned["carrier"]  # the fast path chose it
    assert (carrier.distribution, carrier.version) == ("fake_carrier", "1.2")


def test_the_first_distribution_on_the_path_wins_a_name(on_path, tmp_path_factory) -> None:
    later = tmp_path_factory.mktemp("later")
    sys.path.append(str(later))
    try:
        _install(on_path, "first", "[scoop.transports]\nc = fake_plugin_a\n", {})
        _install(later, "second", "[scoop.transports]\nc = fake_plugin_b\n", {})
        found = [p for p in _plugins._scan_entry_points("scoop.transports") if p.name == "c"]
        assert [(p.distribution, p.module) for p in found] == [("first", "fake_plugin_a")]
    finally:
        sys.path.remove(str(later))


@pytest.mark.parametrize(
    ("entry_points", "modules"),
    [
        # An entry point naming an object in a module: full discovery resolves those.
        ("[scoop.transports]\nodd = fake_plugin_odd:Plugin\n", {"fake_plugin_odd": ""}),
        # A plugin that cannot be imported: full discovery reports it.
        ("[scoop.transports]\ngone = fake_plugin_gone\n", {}),
        # A plugin whose hook returns what discovery refuses.
        (
            "[scoop.transports]\nbad = fake_plugin_bad\n",
            {"fake_plugin_bad": "def scoop_transports():\n    return ['not a TransportInfo']\n"},
        ),
    ],
)
def test_the_scan_steps_aside_for_what_it_does_not_handle(on_path, entry_points, modules) -> None:
    _install(on_path, "fake_odd", entry_points, modules)
    assert _plugins._scanned_transports() is None


def test_a_zip_file_on_the_path_is_left_to_full_discovery(on_path) -> None:
    archive = on_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fake_plugin_zipped.py", "")
    sys.path.append(str(archive))
    try:
        assert _plugins._scanned_transports() is None
    finally:
        sys.path.remove(str(archive))


def test_egg_info_directories_are_read_too(on_path) -> None:
    info = on_path / "fake_egg-0.3.egg-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[scoop.transports]\negg = fake_plugin_egg\n")
    (on_path / "fake_plugin_egg.py").write_text(PLUGIN.format(name="egg"))
    scanned = _plugins._scanned_transports()
    assert scanned is not None and scanned["egg"].distribution == "fake_egg"


def test_choosing_a_transport_does_not_import_importlib_metadata() -> None:
    """What the fast path saves: the launcher's first spawn waited ~20 ms on this import."""
    if not _plugins.installed_transports():
        pytest.skip("no transport is installed")
    code = (
        "import sys; from scoop import _plugins; t = _plugins.choose_transport(); "
        "print(t.info.name, 'importlib.metadata' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    name, imported = done.stdout.split()
    named = os.environ.get(_plugins.TRANSPORT_ENV_VAR)
    full = _plugins._pick(_plugins.installed_transports(), named)
    assert full is not None and name == full.info.name
    assert imported == "False", done.stdout
