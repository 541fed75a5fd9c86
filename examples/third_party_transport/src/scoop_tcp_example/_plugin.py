"""Entry point module: tells scoop-core about the ``tcp-example`` transport.

It imports nothing of the networking side: the factories import ``_transport`` when a transport
is actually bound or connected, so that listing transports stays cheap.
"""

from __future__ import annotations

from scoop.hookspecs import hookimpl
from scoop.transport import API_VERSION, TransportInfo, lazy_factory

#: The name users pass to ``--transport``.
NAME = "tcp-example"


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The tcp-example transport."""
    return [
        TransportInfo(
            name=NAME,
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=lazy_factory("scoop_tcp_example._transport:bind"),
            connect=lazy_factory("scoop_tcp_example._transport:connect"),
            description="example third-party transport: plain TCP sockets (stdlib)",
        )
    ]
