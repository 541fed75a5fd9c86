"""The nng transport for SCOOP: Push0/Pull0 sockets of pynng, one channel each way per worker.

Installed, it is found through the ``scoop.transports`` entry point; select it with
``--transport nng`` (zmq comes first in the default order when both are installed). See
``scoop_nng._transport`` for the design and its reasons.

Layout::

    _plugin.py      the entry point: the scoop_transports hook, no pynng import
    _transport.py   the endpoints on pynng (imported on first use of a name below)

The names below are loaded lazily, so that importing the package (as the entry point does)
does not import pynng.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoop_nng._transport import (
        NngBrokerEndpoint,
        NngPeer,
        NngWorkerEndpoint,
        bind,
        connect,
    )

__all__ = [
    "NngBrokerEndpoint",
    "NngPeer",
    "NngWorkerEndpoint",
    "__version__",
    "bind",
    "connect",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # pynng is imported only when an endpoint name is asked for.
    if name in __all__:
        from scoop_nng import _transport

        return getattr(_transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
