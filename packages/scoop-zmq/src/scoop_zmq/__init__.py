"""The ZeroMQ transport for SCOOP: a ROUTER socket in the broker, a DEALER in each worker.

Installed, it is found through the ``scoop.transports`` entry point; select it with
``--transport zmq`` (it is the default when installed).
"""

from __future__ import annotations

from scoop_zmq._transport import ZmqBrokerEndpoint, ZmqWorkerEndpoint, bind, connect

__all__ = ["ZmqBrokerEndpoint", "ZmqWorkerEndpoint", "__version__", "bind", "connect"]

__version__ = "0.1.0"
