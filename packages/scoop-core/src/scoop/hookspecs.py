"""The SCOOP plugin contract: every hook a plugin may implement, in one module (pluggy hooks).

A transport plugin is a module registered in the ``scoop.transports`` entry point group::

    # pyproject.toml of the plugin's distribution
    [project.entry-points."scoop.transports"]
    mytransport = "my_package.plugin"

    # my_package/plugin.py
    from scoop.hookspecs import hookimpl
    from scoop.transport import API_VERSION, TransportInfo

    @hookimpl
    def scoop_transports():
        return [TransportInfo(name="mytransport", schemes=("tcp",), api_version=API_VERSION,
                              bind=..., connect=...)]

Hook arguments only ever grow by new fields on the option objects, never by renamed parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from scoop.transport import TransportInfo

__all__ = [
    "PROJECT_NAME",
    "HookMarker",
    "hookimpl",
    "hookspec",
    "marked_options",
    "scoop_transports",
]

#: The pluggy project name that ties hook specifications to implementations.
PROJECT_NAME = "scoop"

_F = TypeVar("_F", bound=Callable[..., Any])


def _attribute(kind: str) -> str:
    # Not pluggy's own attribute (PROJECT_NAME + "_impl"): pluggy reads that one as its own.
    return f"{PROJECT_NAME}_hook{kind}_options"


class HookMarker:
    """A decorator that marks a hook specification or implementation for pluggy.

    It takes the options of pluggy's ``HookspecMarker`` / ``HookimplMarker`` and records them on
    the function without importing pluggy: every worker and the broker import a transport's
    plugin module, and pluggy's import was a tenth of their start. ``scoop._plugins`` gives the
    options to pluggy when it discovers plugins (a ``PluginManager`` that reads this mark, as
    pluggy's own markers' are read).
    """

    def __init__(self, kind: str) -> None:
        #: Where the options go on the function, for ``kind`` "spec" or "impl".
        self.attribute = _attribute(kind)

    def __call__(self, function: _F | None = None, **options: Any) -> Any:
        """Mark ``function`` (``@hookimpl``), or return a marker with options (``@hookimpl(...)``).

        The options are pluggy's (``tryfirst``, ``specname``...), checked when plugins are found.
        """

        def mark(func: _F) -> _F:
            setattr(func, self.attribute, options)
            return func

        return mark if function is None else mark(function)


#: Marker for hook specifications (used by core only).
hookspec = HookMarker("spec")
#: Marker for hook implementations: decorate your plugin's ``scoop_transports`` with it.
hookimpl = HookMarker("impl")


def marked_options(holder: Any, kind: str) -> dict[str, Any] | None:
    """The options ``hookspec`` or ``hookimpl`` (``kind``) recorded on ``holder``, if marked.

    ``holder`` may be a staticmethod or classmethod whose function was marked.
    """
    attribute = _attribute(kind)
    options = getattr(holder, attribute, None)
    if options is None:
        options = getattr(getattr(holder, "__func__", None), attribute, None)
    return options if isinstance(options, dict) else None


@hookspec
def scoop_transports() -> list[TransportInfo]:  # type: ignore[empty-body]
    """Return the transports this plugin provides.

    Called once per process, when SCOOP first needs a transport (by the launcher, the broker and
    every worker). All plugins are asked and their lists joined. Return a list of
    :class:`scoop.transport.TransportInfo`; do not import the networking library here, only
    inside the ``bind`` and ``connect`` factories, so that listing transports stays cheap and a
    missing native library shows up as a clear error when the transport is actually used.
    """
