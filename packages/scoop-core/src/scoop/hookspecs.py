"""The SCOOP plugin contract: every hook a plugin may implement, in one module.

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

import pluggy

from scoop.transport import TransportInfo

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "scoop_transports"]

#: The pluggy project name that ties hook specifications to implementations.
PROJECT_NAME = "scoop"

#: Marker for hook specifications (used by core only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for hook implementations: decorate your plugin's ``scoop_transports`` with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def scoop_transports() -> list[TransportInfo]:  # type: ignore[empty-body]
    """Return the transports this plugin provides.

    Called once per process, when SCOOP first needs a transport (by the launcher, the broker and
    every worker). All plugins are asked and their lists joined. Return a list of
    :class:`scoop.transport.TransportInfo`; do not import the networking library here, only
    inside the ``bind`` and ``connect`` factories, so that listing transports stays cheap and a
    missing native library shows up as a clear error when the transport is actually used.
    """
