"""Root script: throws garbage at the broker's port, then checks the run still works."""

import os
import socket

import zmq

import scoop
from scoop import futures


def square(x):
    return x * x


def attack(address: str) -> None:
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
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
    # 2. Raw TCP bytes that are not even a ZeroMQ handshake.
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: scoop\r\n\r\n" * 64)


if __name__ == "__main__":
    attack(scoop.BROKER_ADDRESS)
    assert list(futures.map(square, range(200))) == [x * x for x in range(200)]
    print("run unaffected")
