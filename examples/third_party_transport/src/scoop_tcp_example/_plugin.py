"""Entry point module: tells scoop-core about the ``tcp-example`` transport.

It imports nothing of the networking side: the factories import ``_transport`` when a transport
is actually bound or connected, so that listing transports stays cheap.
"""

from __future__ import annotations

from scoop.hookspecs import hookimpl
from scoop.transport import (
    API_VERSION,
    BindOptions,
    BrokerEndpoint,
    ConnectOptions,
    TransportInfo,
    WorkerEndpoint,
)

#: The name users pass to ``--transport``.
NAME = "tcp-example"


def _bind(options: BindOptions) -> BrokerEndpoint:
    from scoop_tcp_example._transport import bind

    return bind(options)


def _connect(options: ConnectOptions) -> WorkerEndpoint:
    from scoop_tcp_example._transport import connect

    return connect(options)


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The tcp-example transport."""
    return [
        TransportInfo(
            name=NAME,
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=_bind,
            connect=_connect,
            description="example third-party transport: plain TCP sockets (stdlib)",
        )
    ]
