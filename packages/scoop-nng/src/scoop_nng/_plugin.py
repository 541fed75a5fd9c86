"""Entry point module: tells scoop-core about the nng transport without importing pynng."""

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
    from scoop_nng._transport import bind

    return bind(options)


def _connect(options: ConnectOptions) -> WorkerEndpoint:
    from scoop_nng._transport import connect

    return connect(options)


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The nng transport."""
    return [
        TransportInfo(
            name="nng",
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=_bind,
            connect=_connect,
            description="nng Push0/Pull0 sockets over TCP, one channel each way per worker (pynng)",
            broker_connects_to_workers=True,
        )
    ]
