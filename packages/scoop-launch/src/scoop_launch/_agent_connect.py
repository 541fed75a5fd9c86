"""An agent started by a tool that carries no standard input (pbsdsh): its streams over TCP.

``python -m scoop_launch._agent --connect HOST:PORT --ticket-file FILE --host NAME`` (see
scoop_launch._agent): the agent connects back to the launcher, shows its ticket, and uses the
connections as its standard input and output, and its standard error.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading

#: In --connect mode, the threads that copy this process's output to the launcher.
relays: list[threading.Thread] = []


def connect_back(argv: list[str]) -> None:
    """``--connect HOST:PORT --ticket-file FILE --host NAME``: streams over TCP, not stdin.

    For starters that carry no standard input (pbsdsh): two connections to the launcher carry
    this process's standard input and output, and its standard error. The ticket, from a file
    only the user can read, shows the launcher that this agent is the user's: only then does it
    send the configuration and the secret. The workers write to pipes, as they would under the
    other starters (a write of a line up to PIPE_BUF is never split by another process's), and
    one thread per stream copies each pipe to its connection.
    """
    options = dict(zip(argv[0::2], argv[1::2], strict=False))
    address, ticket_file, name = options["--connect"], options["--ticket-file"], options["--host"]
    with open(ticket_file, encoding="ascii") as handle:
        ticket = handle.read().strip()
    host, _, port = address.rpartition(":")
    for stream, fd in (("io", 1), ("err", 2)):
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        connection.settimeout(None)  # blocking: descriptors made from it share its flags
        hello = {"ticket": ticket, "host": name, "stream": stream}
        connection.sendall(json.dumps(hello).encode() + b"\n")
        if stream == "io":
            os.dup2(connection.fileno(), 0)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        relay = threading.Thread(target=_relay, args=(read_end, connection), daemon=True)
        relay.start()
        relays.append(relay)


def _relay(fd: int, connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := os.read(fd, 65536):
            connection.sendall(data)
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
