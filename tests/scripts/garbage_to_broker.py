"""Root script: throws garbage at the broker's port, then checks the run still works.

The argument names the run's transport: ``zmq`` or ``nng``.
"""

import os
import socket
import sys

import scoop
from scoop import futures


def square(x):
    return x * x


def attack_zmq(address: str) -> None:
    import zmq

    # 1. Well-framed ZeroMQ messages that are not SCOOP's: random, truncated, forged, empty.
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(address)
    dealer.send_multipart([os.urandom(64)])
    dealer.send_multipart([b"SC"])
    dealer.send_multipart([b"\x00" * 16 + b"SC\x01\x04" + b"\x00" * 16, b"payload"])
    dealer.send_multipart([b""])
    dealer.close(linger=2000)
    context.term()


def attack_nng(address: str) -> None:
    import pynng

    from scoop.transport import ConnectOptions
    from scoop_nng._transport import connect

    # 1. nng messages that are not in the transport's framing, from a plain Push0 socket.
    with pynng.Push0(send_timeout=5000) as stranger:
        stranger.dial(address, block=True)
        for payload in (b"", b"x", b"\xff" * 64):
            stranger.send(payload)
        # 2. Well-framed transport messages that are not SCOOP's: random, truncated, forged,
        # empty, from a peer that speaks the transport but has no secret.
        impostor = connect(ConnectOptions(address=address))
        impostor.send([os.urandom(64)])
        impostor.send([b"SC"])
        impostor.send([b"\x00" * 16 + b"SC\x01\x04" + b"\x00" * 16, b"payload"])
        impostor.send([b""])
        impostor.close()  # waits until nng has written them


def attack_raw_tcp(address: str) -> None:
    # Bytes that are not even the transport's handshake.
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: scoop\r\n\r\n" * 64)


if __name__ == "__main__":
    {"zmq": attack_zmq, "nng": attack_nng}[sys.argv[1]](scoop.BROKER_ADDRESS)
    attack_raw_tcp(scoop.BROKER_ADDRESS)
    assert list(futures.map(square, range(200))) == [x * x for x in range(200)]
    print("run unaffected")
