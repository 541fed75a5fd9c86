"""Entry point module: tells scoop-core about the nng transport without importing pynng."""

from __future__ import annotations

from scoop.hookspecs import hookimpl
from scoop.transport import API_VERSION, TransportInfo, lazy_factory


@hookimpl
def scoop_transports() -> list[TransportInfo]:
    """The nng transport."""
    return [
        TransportInfo(
            name="nng",
            schemes=("tcp",),
            api_version=API_VERSION,
            bind=lazy_factory("scoop_nng._transport:bind"),
            connect=lazy_factory("scoop_nng._transport:connect"),
            description="nng Push0/Pull0 sockets over TCP, one channel each way per worker (pynng)",
            broker_connects_to_workers=True,
        )
    ]
