"""Transport discovery through pluggy and the ``scoop.transports`` entry point group."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

from scoop import hookspecs
from scoop.errors import NoTransportError, UnknownTransportError
from scoop.transport import API_VERSION, TransportInfo

if TYPE_CHECKING:
    import pluggy

ENTRY_POINT_GROUP = "scoop.transports"
#: Environment variable naming the transport when ``--transport`` is not given.
TRANSPORT_ENV_VAR = "SCOOP_TRANSPORT"
#: With no transport named, the first installed one of these is used, then any other by name.
DEFAULT_ORDER = ("zmq", "nng")
#: Distributions that provide our own transports, for install hints.
KNOWN_DISTRIBUTIONS = {"zmq": "scoop-zmq", "nng": "scoop-nng"}


class InstalledTransport(NamedTuple):
    """A transport found through the plugin hook, with where it came from.

    (A NamedTuple, not a dataclass: making a dataclass at import costs every worker ~1 ms.)
    """

    info: TransportInfo
    plugin_name: str
    distribution: str
    version: str
    #: The plugin's module, so that other processes of the run can load it directly.
    module: str = ""


def _install_hint(name: str) -> str:
    dist = KNOWN_DISTRIBUTIONS.get(name)
    if dist:
        return f"install it with: pip install {dist}"
    return f"install the package that provides the {name!r} transport"


def new_manager() -> pluggy.PluginManager:
    """A pluggy ``PluginManager`` for SCOOP's hooks that knows ``scoop.hookspecs``' markers.

    pluggy is imported here, not at the top: workers and the broker load their transport's
    plugin module directly and never need it.
    """
    import inspect

    import pluggy

    def from_mark(owner: Any, name: str, kind: str, marker: Any) -> Any:
        # The options scoop.hookspecs' marker recorded on owner.name (None: not marked), as
        # pluggy's own marker records them in this pluggy version: applied to a stand-in.
        options = hookspecs.marked_options(inspect.getattr_static(owner, name, None), kind)
        if options is None:
            return None

        def probe() -> None:
            """A stand-in the real marker records its options on."""

        marker(hookspecs.PROJECT_NAME)(probe, **options)
        return getattr(probe, f"{hookspecs.PROJECT_NAME}_{kind}")

    class Manager(pluggy.PluginManager):
        def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
            found = super().parse_hookimpl_opts(plugin, name)
            if found is not None:
                return found
            return from_mark(plugin, name, "impl", pluggy.HookimplMarker)

        def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
            found = super().parse_hookspec_opts(module_or_class, name)
            if found is not None:
                return found
            return from_mark(module_or_class, name, "spec", pluggy.HookspecMarker)

    manager = Manager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _plugin_manager() -> pluggy.PluginManager:
    manager = new_manager()
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


@functools.cache
def installed_transports() -> dict[str, InstalledTransport]:
    """Return the installed transports by name, asking every plugin once per process.

    A plugin built for another version of the transport interface is refused with an error
    naming the plugin, its distribution and both versions.
    """
    return collect(_plugin_manager())


def collect(manager: pluggy.PluginManager) -> dict[str, InstalledTransport]:
    """Ask every plugin of ``manager`` for its transports and check what they return."""
    distributions = {
        id(plugin): (dist.project_name, dist.version)
        for plugin, dist in manager.list_plugin_distinfo()
    }
    found: dict[str, InstalledTransport] = {}
    for impl in manager.hook.scoop_transports.get_hookimpls():
        dist_name, dist_version = distributions.get(id(impl.plugin), ("?", "?"))
        module = getattr(impl.plugin, "__name__", "")
        plugin = _Plugin(impl.plugin_name, dist_name, dist_version, module)
        found.update(_checked(plugin, impl.function()))
    return found


class _Plugin(NamedTuple):
    """Where a plugin came from: its entry point's name, its distribution, its module."""

    name: str
    distribution: str
    version: str
    module: str


def _checked(plugin: _Plugin, returned: Any) -> dict[str, InstalledTransport]:
    """The transports a plugin's hook returned, by name; raises for any that cannot be used."""
    found = {}
    for info in _as_list(returned):
        if not isinstance(info, TransportInfo):
            raise TypeError(
                f"plugin {plugin.name!r} ({plugin.distribution}) returned {info!r} from "
                "scoop_transports(); expected scoop.transport.TransportInfo objects"
            )
        if info.api_version != API_VERSION:
            raise UnknownTransportError(
                f"transport {info.name!r} from plugin {plugin.name!r} ({plugin.distribution} "
                f"{plugin.version}) implements transport API version {info.api_version}, but "
                f"this scoop-core supports version {API_VERSION}; upgrade one of them"
            )
        found[info.name] = InstalledTransport(
            info, plugin.name, plugin.distribution, plugin.version, plugin.module
        )
    return found


def choose_transport(name: str | None = None) -> InstalledTransport:
    """Return the transport named ``name``, or from ``$SCOOP_TRANSPORT``, or the default.

    Raises NoTransportError when none is installed and UnknownTransportError when the named one
    is missing; both messages list what is installed and the pip command that fixes it.
    """
    name = name or os.environ.get(TRANSPORT_ENV_VAR) or None
    scanned = _scanned_transports()
    if scanned:
        chosen = _pick(scanned, name)
        if chosen is not None:
            return chosen
    available = installed_transports()
    if not available:
        raise NoTransportError(
            "no SCOOP transport is installed; install one with: pip install scoop-zmq"
        )
    chosen = _pick(available, name)
    if chosen is not None:
        return chosen
    raise UnknownTransportError(
        f"transport {name!r} is not installed (installed: {', '.join(sorted(available))}); "
        f"{_install_hint(str(name))}"
    )


def _pick(available: dict[str, InstalledTransport], name: str | None) -> InstalledTransport | None:
    if name is None:
        for candidate in (*DEFAULT_ORDER, *sorted(available)):
            if candidate in available:
                return available[candidate]
    return available.get(str(name))


@functools.cache
def _scanned_transports() -> dict[str, InstalledTransport] | None:
    """The installed transports as a scan of ``sys.path`` finds them; None if it cannot tell.

    This is the launcher's fast path: importing ``importlib.metadata`` alone (email, zipfile,
    csv...) costs more than the rest of the launcher's work before it starts the run's
    processes. The scan reads only the ``entry_points.txt`` of the distributions installed as
    directories, and gives up (full discovery then decides, and raises what it raises) on
    anything else: a ``sys.path`` entry that is a zip file, an entry point naming an object in a
    module, a plugin that fails to load or returns what discovery would refuse.
    """
    try:
        found: dict[str, InstalledTransport] = {}
        for plugin in _scan_entry_points(ENTRY_POINT_GROUP):
            if ":" in plugin.module:
                return None
            hook = importlib.import_module(plugin.module).scoop_transports
            for name, transport in _checked(plugin, hook()).items():
                found.setdefault(name, transport)
        return found
    except Exception:
        return None


def _scan_entry_points(group: str) -> list[_Plugin]:
    """The entry points of ``group`` declared by the distributions on ``sys.path``.

    As ``importlib.metadata`` orders them: by ``sys.path`` entry, the first of a name wins.
    Raises OSError for an entry that is not a directory (a zip file): only the full discovery
    reads those.
    """
    plugins: dict[str, _Plugin] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except FileNotFoundError:
            continue  # as importlib.metadata: an entry that is not there holds nothing
        for folder in listing:
            if not folder.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", folder, "entry_points.txt"), "rb") as file:
                    text = file.read().decode()
            except OSError:
                continue
            stem = folder.removesuffix(".dist-info").removesuffix(".egg-info")
            distribution, _, version = stem.partition("-")
            for name, value in _entry_points_in(text, group):
                plugins.setdefault(name, _Plugin(name, distribution, version, value))
    return list(plugins.values())


def _entry_points_in(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the entry points of ``group`` in an ``entry_points.txt``."""
    found = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def load_transport(name: str, module: str | None = None) -> TransportInfo:
    """The transport ``name``, from the plugin ``module`` the launcher found it in if given.

    Importing that one module skips scanning every installed distribution's entry points (a
    good part of a worker's start-up); if it cannot be used, discovery runs as usual.
    """
    if module:
        try:
            info = transport_from_module(name, module)
        except Exception:
            info = None
        if info is not None:
            return info
    return choose_transport(name).info


def transport_from_module(name: str, module: str) -> TransportInfo | None:
    """Transport ``name`` as plugin ``module``'s hook returns it (the workers' fast path).

    None if the hook returns no usable transport of that name; importing the module or calling
    the hook may raise.
    """
    for info in _as_list(importlib.import_module(module).scoop_transports()):
        if (
            isinstance(info, TransportInfo)
            and info.api_version == API_VERSION
            and info.name == name
        ):
            return info
    return None


def _as_list(returned: Any) -> list[object]:
    """What a ``scoop_transports()`` hook returned (one TransportInfo, or several) as a list."""
    return [returned] if isinstance(returned, TransportInfo) else list(returned)
