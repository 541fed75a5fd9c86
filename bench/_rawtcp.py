"""Raw TCP floors for bench/multihost.py: an echo server, a relay, a client. Standard library only.

    python bench/_rawtcp.py echo ADDRESS                 # prints its port, echoes messages
    python bench/_rawtcp.py relay ADDRESS UP_ADDR UP_PORT   # prints its port, store and forward
    python bench/_rawtcp.py client ADDRESS PORT [--mib 64] [--pings 2000] [--repeats 3]

multihost.py starts them inside the network namespaces (``ip netns exec``). A message is a
length (8 bytes) and its bytes; every socket has TCP_NODELAY, as zmq's do. The echo sends each
message back once it has all of it (as a SCOOP worker answers a task), the relay forwards a
whole message before it reads the next (as SCOOP's broker forwards a whole message). The
client prints one JSON line: ``rtt_us`` (mean round trip of a 64-byte message, per repeat)
and ``gbps`` (a ``--mib`` MiB message there and back, counted twice, per repeat), each after a
warm-up.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

HEADER = struct.Struct("<Q")
SMALL = 64 * 1024


def recv_exact(sock: socket.socket, size: int) -> bytearray:
    """Exactly ``size`` bytes from ``sock``."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if not count:
            raise ConnectionError("the peer closed the connection")
        got += count
    return buffer


def recv_message(sock: socket.socket) -> bytearray:
    """One length-prefixed message."""
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size))
    return recv_exact(sock, size)


def send_message(sock: socket.socket, data: bytes | bytearray) -> None:
    """One length-prefixed message (a small one in one send: one segment, as zmq sends it)."""
    if len(data) < SMALL:
        sock.sendall(HEADER.pack(len(data)) + bytes(data))
    else:
        sock.sendall(HEADER.pack(len(data)))
        sock.sendall(data)


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _listen(address: str) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, 0))
    server.listen(4)
    print(server.getsockname()[1], flush=True)  # the parent waits for the port
    return server


def serve_echo(address: str) -> None:
    """Echo every message of one connection at a time, until killed."""
    server = _listen(address)
    while True:
        conn, _ = server.accept()
        with _nodelay(conn):
            try:
                while True:
                    send_message(conn, recv_message(conn))
            except ConnectionError:
                pass


def serve_relay(address: str, up_address: str, up_port: int) -> None:
    """Forward each message to the upstream echo and its answer back, whole, until killed."""
    server = _listen(address)
    while True:
        conn, _ = server.accept()
        upstream = _nodelay(socket.create_connection((up_address, up_port)))
        with _nodelay(conn), upstream:
            try:
                while True:
                    send_message(upstream, recv_message(conn))
                    send_message(conn, recv_message(upstream))
            except ConnectionError:
                pass


def client(address: str, port: int, mib: int, pings: int, repeats: int) -> dict[str, list[float]]:
    """Round trips of 64 bytes and of ``mib`` MiB; each after one warm-up."""
    sock = _nodelay(socket.create_connection((address, port), timeout=120))
    small = b"x" * 64
    big = (bytes(range(256)) * 4096 * mib)[: mib << 20]

    def ping() -> float:
        start = time.perf_counter()
        for _ in range(pings):
            send_message(sock, small)
            if recv_message(sock) != small:
                raise AssertionError("ping: wrong message back")
        return (time.perf_counter() - start) / pings * 1e6

    def transfer() -> float:
        start = time.perf_counter()
        send_message(sock, big)
        back = recv_message(sock)
        elapsed = time.perf_counter() - start
        if len(back) != len(big) or back[-4096:] != big[-4096:]:
            raise AssertionError("transfer: wrong message back")
        return 2 * len(big) / elapsed / 1e9

    with sock:
        ping()
        rtt = [ping() for _ in range(repeats)]
        transfer()
        gbps = [transfer() for _ in range(repeats)]
    return {"rtt_us": rtt, "gbps": gbps}


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("echo").add_argument("address")
    relay = sub.add_parser("relay")
    relay.add_argument("address")
    relay.add_argument("up_address")
    relay.add_argument("up_port", type=int)
    run = sub.add_parser("client")
    run.add_argument("address")
    run.add_argument("port", type=int)
    run.add_argument("--mib", type=int, default=64)
    run.add_argument("--pings", type=int, default=2000)
    run.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args(argv)
    if options.cmd == "echo":
        serve_echo(options.address)
    elif options.cmd == "relay":
        serve_relay(options.address, options.up_address, options.up_port)
    else:
        result = client(options.address, options.port, options.mib, options.pings, options.repeats)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
