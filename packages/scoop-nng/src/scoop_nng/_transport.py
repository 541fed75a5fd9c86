"""pynng sockets behind the SCOOP transport interface.

The factories are here; the endpoints are in ``_endpoints.py`` (a worker's) and
``_broker_endpoint.py``, the message framing, addresses, error mapping and lingering in
``_wire.py``. This docstring is the design of them all.

Design
------
nng has no ROUTER socket. Its only many-peer socket that can address one peer, polyamorous
Pair1, is deprecated and *drops* a message whenever the chosen pipe's two-message send queue is
full (nng ``pair1_poly.c``: "Try a non-blocking send. If this fails we just discard the
message"; nanomsg/nng#1274, #995, #878, codypiersall/pynng#41), which breaks the rule that a
transport never drops a message silently. So this transport uses only reliable, back-pressured
one-way sockets::

    worker                                   broker
    Push0 --dial--> tcp://host:port ------> Pull0 (listens; every message carries its pipe)
    Pull0 <--------- tcp://worker:port <--dial-- Push0 (one per worker, made when first used)

A worker dials the broker's Pull0, listens on an ephemeral port of the interface it uses to
reach the broker, and sends a HELLO naming that port (again on each connection nng re-dials).
The broker notes it, and on its first send to that peer dials a Push0 to that port at the
address the worker's connection comes from (never to a host a HELLO names: it is not
authenticated). Core sends only to a worker that authenticated itself, so a stranger's HELLO
costs the broker no outgoing connection. The peer value the broker sees is an
:class:`NngPeer` (this broker's token and the pipe id of the worker's connection). When that
connection goes, nng's pipe-removed callback marks the peer gone and ``send`` to it raises
PeerUnreachable. The broker must be able to open TCP connections to the workers' hosts (on one
machine: loopback).

nng messages are single-part: a message is one nng_msg whose body is a small header (kind byte,
frame count, frame lengths) then the frames. Sending copies each frame once, straight into the
nng_msg (so the caller may reuse its buffers at once); receiving returns small frames as bytes
and frames of at least :data:`ZERO_COPY_MIN_BYTES` as memoryviews of the nng_msg itself, which
is freed when the last view goes.

Pitfalls handled here
---------------------
* ``recv_max_size`` defaults to 1 MiB and larger messages are dropped silently: set to 0.
* Push0's send buffer defaults to 0 messages: set to its maximum, and a send that still finds
  it full waits at most :data:`SEND_TIMEOUT_MS`, then raises.
* ``nng_close`` does not linger: queued messages are lost. ``close`` waits (at most
  :data:`LINGER_S`) until the transmitted-message counters of its outgoing pipes cover every
  message it sent: a worker's to the broker (its last results), a broker's to each worker (the
  SHUTDOWN that ends a run). It stops waiting for a connection as soon as that connection is
  gone (a pipe-removed callback records it): nothing can go out on it any more, and nng drops a
  removed pipe's counters, so waiting would only ever end at the time limit (a worker whose
  broker had closed first used to take the full 2 s to close). Between checks it waits on an
  event those callbacks set, with pauses growing from 0.5 ms to 2 ms: each check takes a
  snapshot of all of nng's statistics.
* ``SockAddr.port`` of pynng is in network byte order.
* Every pynng exception is mapped to scoop.errors at this boundary (``_mapped_errors``).

Waiting and waking
------------------
``recv`` blocks in ``nng_recvmsg`` (the GIL released) in slices of at most
:data:`_WAIT_SLICE_MS`, so that signals (Ctrl-C) are handled between slices. A worker's
``wakeup``, from any thread, sends a private one-frame message (kind ``_WAKE``) through an
inproc Push0 dialed to an extra inproc listener of the worker's own Pull0; ``recv`` swallows
it and returns ``None``. nng sockets are thread-safe, so this needs no lock with ``recv``; a
flag coalesces a burst (one wake message at a time), and a lock orders ``wakeup`` against
``close``. The message never leaves the process: the tcp listener only takes DATA and HELLO
from outside, and a wake message from outside could do no more than end a wait early.

Why not the alternatives: polling the socket's ``NNG_OPT_RECVFD`` together with a wake pipe,
then receiving without blocking, made every wait cost a pollable raise and clear in nng and a
``poll`` in Python: a receive in a stream of messages went from 30 to 43 us. Cancelling an aio
that recv waits on (``nng_aio_cancel``) was tried and, under load, now and then handed ``recv``
an empty message (seen in 2 of 9 runs of the API suite at ``-n 4`` with three runs at once):
the plain blocking receive has no such history.

Fork safety
-----------
nng is not fork-safe (its threads do not survive fork). SCOOP's launcher starts workers and the
broker with fork+exec (``subprocess``) and creates no nng socket itself, so this never bites.
Should an endpoint be used in a child forked after it was created, every call raises
TransportError instead of hanging or corrupting nng's state (``close`` then only marks it
closed).
"""

from __future__ import annotations

from scoop.transport import BindOptions, ConnectOptions
from scoop_nng._broker_endpoint import NngBrokerEndpoint, NngPeer
from scoop_nng._endpoints import NngWorkerEndpoint

__all__ = ["NngBrokerEndpoint", "NngPeer", "NngWorkerEndpoint", "bind", "connect"]


def bind(options: BindOptions) -> NngBrokerEndpoint:
    """Bind a broker endpoint."""
    return NngBrokerEndpoint(options)


def connect(options: ConnectOptions) -> NngWorkerEndpoint:
    """Connect a worker endpoint."""
    return NngWorkerEndpoint(options)
