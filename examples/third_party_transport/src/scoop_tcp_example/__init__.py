"""An example third-party SCOOP transport on plain TCP sockets of the standard library.

Layout::

    _plugin.py     the ``scoop.transports`` entry point: the ``scoop_transports`` hook
    _transport.py  the endpoints: length-prefixed framing, one I/O thread per endpoint

Installed, it is found through the ``scoop.transports`` entry point; select it with
``--transport tcp-example``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
