"""The transport interface: what a transport plugin implements.

A transport moves opaque lists of byte frames between one broker and many workers. Everything
above bytes (framing of messages, authentication, pickling, routing) belongs to scoop-core.

Shape of the interface::

    TransportInfo(name, schemes, api_version, bind, connect)   <- returned by the plugin hook
        bind(BindOptions)       -> BrokerEndpoint  (binds, recv (peer, frames), send(peer, frames))
        connect(ConnectOptions) -> WorkerEndpoint  (connects, send(frames), recv -> frames,
                                                    wakeup() from any thread)

Rules every implementation follows (``scoop.testing`` checks them):

* Frames are delivered whole, in order per peer, as a list; a message of N frames arrives as N
  frames. Frames may arrive as ``bytes`` or ``memoryview``; senders may pass either.
* ``recv(timeout)`` waits at most ``timeout`` seconds (``None``: forever, ``0``: poll) and returns
  ``None`` on timeout. The scheduler owns all waiting, so no call blocks longer than asked.
* ``send`` never blocks for long and never drops a message silently: a broker sending to a peer it
  has never heard from, or that is gone, gets :class:`~scoop.errors.PeerUnreachable`.
* A worker's first ``send`` makes it known to the broker; the broker sees it as an opaque, hashable
  ``peer`` value that it passes back to ``send``.
* Once ``send`` returns, the caller may change or reuse the buffers it passed: the message carries
  their content at the time of the call. Frames returned by ``recv`` are valid input to ``send``
  (the broker forwards what it receives). A message has at least one frame; sending none raises
  ``ValueError``.
* Messages sent before ``close()`` are still delivered, by a worker (it sends its last results
  and closes) and by the broker (its last message to each worker is the run's SHUTDOWN), also
  when the process exits right after ``close()`` returns. A worker endpoint may also have
  ``close_discarding()``: the same close, without waiting for what is queued; core calls it,
  when there is one, once the broker's SHUTDOWN came (nobody reads what the worker sends then,
  and waiting on a broker that is gone would hold up the worker's exit).
* Native errors are mapped to :mod:`scoop.errors`: ``TransportClosed`` after ``close()`` (only
  "you closed it"; a broker that went away is never ``TransportClosed`` on a worker),
  ``AddressInUse``, ``InvalidAddress``, ``PeerUnreachable``.
* Threads: an endpoint has one owner at a time. ``send``, ``recv``, ``close`` and ``address`` are
  called by one thread at a time (core's communication thread owns a worker's endpoint), never
  concurrently. The one exception is ``WorkerEndpoint.wakeup``: any thread may call it at any
  time, also while the owner is blocked in ``recv`` and after ``close`` (then it does nothing).
  It makes that ``recv`` (or, if none is in progress, the next one) return promptly, with
  ``None`` if no message came; wakeups that pile up before a ``recv`` return coalesce into one
  early return. A ``recv`` that returns a message may consume a pending wakeup or leave it for
  the next ``recv``. ``wakeup`` never raises and never drops or reorders a message.
* ``BrokerEndpoint.address`` is the real address workers connect to, even when port 0 was asked.
* Import the networking library inside the factories, not at module import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "API_VERSION",
    "BindOptions",
    "BrokerEndpoint",
    "ConnectOptions",
    "Frame",
    "TransportInfo",
    "WorkerEndpoint",
    "lazy_factory",
]

#: Version of this interface. A plugin declares the version it implements in its TransportInfo;
#: core refuses a plugin with another version, naming it.
API_VERSION = 1

#: A frame as it travels: any contiguous bytes-like object.
Frame = bytes | bytearray | memoryview


@dataclass(frozen=True)
class BindOptions:
    """Where and how a broker endpoint binds.

    New options are added here as fields with defaults, never as new factory parameters, so
    that plugins written against an older core keep working.
    """

    #: Interface address to bind: an IPv4 or IPv6 literal or a host name.
    #: ``127.0.0.1`` for a run on one machine, ``0.0.0.0`` to accept workers on other hosts.
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (the endpoint's ``address`` then tells which).
    port: int = 0
    #: Free-form options for one transport, keyed by option name.
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectOptions:
    """Where a worker endpoint connects."""

    #: The broker's address, as its ``BrokerEndpoint.address`` reported it, possibly with the
    #: host replaced by the one workers use to reach the broker (``--broker-hostname``).
    address: str
    #: Free-form options for one transport, keyed by option name.
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class BrokerEndpoint(Protocol):
    """The broker's side: one bound endpoint that talks to many workers."""

    @property
    def address(self) -> str:
        """The address workers connect to, with the real port."""
        ...

    def recv(self, timeout: float | None) -> tuple[Hashable, list[Frame]] | None:
        """Return ``(peer, frames)`` of the next message, or ``None`` after ``timeout`` seconds."""
        ...

    def send(self, peer: Hashable, frames: Sequence[Frame]) -> None:
        """Queue one message of ``frames`` to ``peer``; raise PeerUnreachable if it is unknown."""
        ...

    def close(self) -> None:
        """Close the endpoint; later calls raise TransportClosed. Closing twice is allowed."""
        ...


@runtime_checkable
class WorkerEndpoint(Protocol):
    """A worker's side: one connection to the broker.

    ``wakeup`` joined the interface after the other methods, within :data:`API_VERSION` 1: core
    calls it when an endpoint has it and otherwise polls (``recv`` with a 1 ms timeout), so a
    plugin written before it keeps working, only less efficiently. The conformance kit requires
    it, and so does ``isinstance(endpoint, WorkerEndpoint)``.
    """

    def send(self, frames: Sequence[Frame]) -> None:
        """Queue one message of ``frames`` to the broker."""
        ...

    def recv(self, timeout: float | None) -> list[Frame] | None:
        """Return the frames of the next message, or ``None`` after ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Close the connection; later calls raise TransportClosed. Closing twice is allowed."""
        ...

    def wakeup(self) -> None:
        """Make a recv() in progress in another thread return promptly (None if no message came).

        Thread-safe: any thread may call it at any time, also while another thread is blocked in
        recv() and after close() (then it does nothing). If no recv() is in progress, the next
        recv() returns promptly instead (wakeups that pile up before a recv coalesce: at most one
        early return for all of them). Never raises, never drops or reorders a message.
        """
        ...


@dataclass(frozen=True)
class TransportInfo:
    """What a plugin's ``scoop_transports`` hook returns for each transport it provides."""

    #: Short name users pass to ``--transport`` (``zmq``, ``nng``...).
    name: str
    #: URL schemes of the addresses it serves (``tcp``...).
    schemes: tuple[str, ...]
    #: The version of this interface the plugin implements: :data:`API_VERSION`.
    api_version: int
    #: Factory of the broker side.
    bind: Callable[[BindOptions], BrokerEndpoint]
    #: Factory of the worker side.
    connect: Callable[[ConnectOptions], WorkerEndpoint]
    #: One line for ``--list-transports``.
    description: str = ""
    #: True if the broker also opens connections to the workers (workers must then be reachable
    #: from the broker's host, and the launcher's ``--tunnel`` cannot carry the transport).
    broker_connects_to_workers: bool = False


def lazy_factory(target: str) -> Callable[[Any], Any]:
    """A ``bind`` or ``connect`` factory that imports ``"package.module:function"`` when called.

    Plugins use it so that listing transports never imports a networking library::

        TransportInfo(..., bind=lazy_factory("my_package._transport:bind"), ...)
    """
    module_name, separator, attribute = target.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"expected 'package.module:function', got {target!r}")

    def factory(options: Any) -> Any:
        return getattr(importlib.import_module(module_name), attribute)(options)

    factory.__qualname__ = factory.__name__ = f"lazy_factory({target!r})"
    return factory
