"""A wakeup() that lands while recv() drains an earlier one must not be lost.

recv() used to clear its "a wake byte is on its way" flag before draining the wake pair: a
wakeup() from another thread landing between the two wrote a byte the drain swallowed, left the
flag set with nothing to read, and every later wakeup() was ignored (the worker's results then
left a whole idle-check interval late, for the rest of the run). The interleaving is forced here
by a wake socket whose recv lets the other thread's wakeup() in first.
"""

from __future__ import annotations

import time

from scoop.transport import BindOptions, ConnectOptions
from scoop_zmq._transport import bind, connect


class _WakeupLandsDuringDrain:
    """Stands for the wake pair's read end; another thread's wakeup() lands in its recv."""

    def __init__(self, endpoint, real):
        self.endpoint = endpoint
        self.real = real

    def fileno(self):
        return self.real.fileno()

    def recv(self, size):
        self.endpoint._wake_r = self.real  # once only
        self.endpoint.wakeup()
        return self.real.recv(size)


def test_a_wakeup_during_the_drain_of_another_is_not_lost():
    broker = bind(BindOptions())
    endpoint = connect(ConnectOptions(address=broker.address))
    try:
        endpoint.wakeup()
        endpoint._wake_r = _WakeupLandsDuringDrain(endpoint, endpoint._wake_r)
        assert endpoint.recv(5.0) is None  # woken
        endpoint.wakeup()  # a new message to send: the next recv must return at once
        start = time.monotonic()
        assert endpoint.recv(5.0) is None
        assert time.monotonic() - start < 1.0, "a wakeup() was ignored: recv waited its timeout"
    finally:
        endpoint.close()
        broker.close()
