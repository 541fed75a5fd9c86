"""What an endpoint sent before ``close()`` leaves the process, even if it exits right after.

The broker tells every worker the run is over (SHUTDOWN), closes its endpoint and exits; libzmq
sends from its own I/O thread, and a process that exits without ending its zmq context takes
whatever that thread had not sent yet with it: workers (an Executor's client) then waited for a
word that never came.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from scoop.transport import BindOptions
from scoop_zmq._transport import bind

MESSAGES = 24
SIZE = 4 << 20  # large enough that the I/O thread is still sending when close() returns

# Connects to the address in argv[1], sends MESSAGES messages of SIZE bytes, closes, exits.
SENDER = f"""
import sys
from scoop.transport import ConnectOptions
from scoop_zmq._transport import connect

endpoint = connect(ConnectOptions(address=sys.argv[1]))
for index in range({MESSAGES}):
    endpoint.send([index.to_bytes(4, "big"), bytes({SIZE})])
endpoint.close()
sys.exit(0)
"""


@pytest.mark.timeout(60)
def test_a_process_that_closes_and_exits_at_once_still_delivers_what_it_sent() -> None:
    broker = bind(BindOptions(host="127.0.0.1", port=0))
    sender = subprocess.Popen([sys.executable, "-c", SENDER, broker.address])
    try:
        got = []
        while len(got) < MESSAGES:
            received = broker.recv(20.0)
            if received is None:
                break  # nothing for 20 s: the rest was lost
            _, frames = received
            got.append(int.from_bytes(bytes(frames[0]), "big"))
            assert len(frames[1]) == SIZE
        assert sender.wait(30) == 0
        assert got == list(range(MESSAGES))
    finally:
        sender.kill()
        sender.wait(10)
        broker.close()
