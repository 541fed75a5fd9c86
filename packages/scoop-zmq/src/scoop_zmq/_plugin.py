"""Entry point module: tells scoop-core about the zmq transport without importing pyzmq."""

from __future__ import annotations

from scoop.hookspecs import hookimpl
from scoop.transport import API_VERSION, TransportInfo, lazy_factory


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The zmq transport."""
    return [
        TransportInfo(
            name="zmq",
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=lazy_factory("scoop_zmq._transport:bind"),
            connect=lazy_factory("scoop_zmq._transport:connect"),
            description="ZeroMQ ROUTER/DEALER sockets over TCP (pyzmq)",
        )
    ]
