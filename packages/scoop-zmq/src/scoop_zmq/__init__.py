"""The ZeroMQ transport for SCOOP: a ROUTER socket in the broker, a DEALER in each worker.

Installed, it is found through the ``scoop.transports`` entry point; select it with
``--transport zmq`` (it is the default when installed).

Layout::

    _plugin.py      the entry point: the scoop_transports hook, no pyzmq import
    _transport.py   the endpoints on pyzmq (imported on first use of a name below)

The names below are loaded lazily: the launcher imports this package (through the entry point)
only to learn of the transport, and importing pyzmq there would delay every run's start by the
~25 ms it takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoop_zmq._transport import ZmqBrokerEndpoint, ZmqWorkerEndpoint, bind, connect

__all__ = ["ZmqBrokerEndpoint", "ZmqWorkerEndpoint", "__version__", "bind", "connect"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # pyzmq is imported only when an endpoint name is asked for.
    if name in __all__:
        from scoop_zmq import _transport

        return getattr(_transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
