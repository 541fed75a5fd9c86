"""Entry point module: tells scoop-core about the zmq transport without importing pyzmq."""

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


def _bind(options: BindOptions) -> BrokerEndpoint:
    from scoop_zmq._transport import bind

    return bind(options)


def _connect(options: ConnectOptions) -> WorkerEndpoint:
    from scoop_zmq._transport import connect

    return connect(options)


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The zmq transport."""
    return [
        TransportInfo(
            name="zmq",
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=_bind,
            connect=_connect,
            description="ZeroMQ ROUTER/DEALER sockets over TCP (pyzmq)",
        )
    ]
