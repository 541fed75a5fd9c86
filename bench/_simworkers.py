"""Simulated SCOOP workers for bench/broker_scale.py: many real endpoints in one process.

Each simulated worker holds a real worker endpoint of the transport plugin
(``scoop._plugins.load_transport(...).connect``) and speaks the real protocol with scoop's own
:class:`~scoop._protocol.Codec`: HELLO (with the versions ``scoop._broker.local_versions``
gives) and WELCOME, numbered messages that acknowledge the broker's stream, a REQUEST when idle,
RESULTS (with ``IDLE_AFTER``) for every TASKS at once, a HEARTBEAT when nothing else went for a
second (as a real worker's communication thread does), and an exit on SHUTDOWN. It runs nothing:
the result payload is a fixed tiny pickle. Its word that it is idle carries its appetite as a
real worker's does (``scoop._balance``): from its own time per task, here the time it takes to
answer a TASKS. Nothing is resent (loopback TCP loses nothing), so no
:class:`~scoop._sequence.Outbox` is kept on this side.

Run as a process by broker_scale.py (``python bench/_simworkers.py``); its standard input
carries a JSON configuration line, then commands, one a line:

* configuration: ``{"secret", "transport", "transport_module", "address", "first_index",
  "count", "payload_digests", "parent_pid"}``; it connects ``count`` workers numbered from
  ``first_index``, has each join and ask for work, then prints ``{"ready": count}``;
* ``stats``: it prints its counters as one JSON line (``{"stats": {...}}``);
* ``stop`` (or standard input closed): it closes its endpoints and exits.

It also exits once every one of its workers was told SHUTDOWN by the broker. With the zmq
transport one thread serves every endpoint through a ``zmq.Poller`` over the endpoints' DEALER
sockets (the endpoint's private ``_socket``: the transport interface has no way to wait on many
endpoints at once); other transports get one thread per endpoint, blocked in its own ``recv``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pickle
import queue
import signal
import socket
import sys
import threading
import time
from typing import Any

from scoop._balance import Pace
from scoop._protocol import (
    BROKER_SENDER,
    Codec,
    Entry,
    Kind,
    Message,
    Status,
    idle_arg,
)
from scoop.errors import ProtocolError
from scoop.transport import Frame, WorkerEndpoint

#: A worker that sent nothing for this long sends a HEARTBEAT (a real worker's interval).
HEARTBEAT_S = 1.0
#: How long a worker waits for its WELCOME.
JOIN_TIMEOUT_S = 120.0
#: Longest wait on the network before commands and heartbeats are looked at.
TURN_S = 0.1
#: Most messages taken from one endpoint in a turn (as a real worker's MESSAGES_PER_TURN).
MESSAGES_PER_TURN = 64
#: The result every simulated task returns: a tiny pickle, as a tiny task's result is.
RESULT_FRAME = pickle.dumps(0, protocol=5)


def die_with_parent(parent_pid: int | None) -> None:
    """Have Linux kill this process when its parent dies (no simulator outlives a bench)."""
    if parent_pid is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


class SimWorker:
    """One simulated worker: a real endpoint, numbered messages, the broker's stream checked."""

    __slots__ = (
        "codec",
        "demands",
        "endpoint",
        "index",
        "joined",
        "last_in",
        "last_sent",
        "next_seq",
        "others",
        "received",
        "refused",
        "results_sent",
        "sent",
        "stopped",
        "task_messages",
        "tasks",
    )

    def __init__(self, endpoint: WorkerEndpoint, codec: Codec, index: int) -> None:
        self.endpoint = endpoint
        self.codec = codec
        self.index = index
        self.next_seq = 1
        #: The number of the last message accepted from the broker (what every message acks).
        self.last_in = 0
        self.last_sent = time.monotonic()
        self.joined = False
        self.stopped = False
        self.tasks = 0
        self.task_messages = 0
        self.demands = 0
        self.others = 0
        self.results_sent = 0
        #: Messages sent to the broker, and accepted from it (all kinds).
        self.sent = 0
        self.received = 0
        #: Messages refused: not the broker's, or not the next of its stream.
        self.refused = 0

    def send(self, kind: Kind, arg: int = 0, entries: list[Entry] | None = None) -> int:
        """Number, encode and send one message to the broker; returns its number."""
        seq = self.next_seq
        self.next_seq += 1
        frames = self.codec.encode_entries(
            kind, self.index, arg, entries or [], seq=seq, ack=self.last_in
        )
        self.endpoint.send(frames)
        self.last_sent = time.monotonic()
        self.sent += 1
        return seq

    def hello(self, versions: dict[str, Any]) -> None:
        """Say HELLO as a real worker does (versions, index and host in a JSON payload)."""
        payload = json.dumps(
            {**versions, "index": self.index, "host": socket.gethostname()}
        ).encode()
        self.send(Kind.HELLO, 0, [Entry(self.index, 0, self.codec.digest([payload]), [payload])])

    def accept(self, frames: list[Frame]) -> Message | None:
        """Decode and check a message of the broker; None if it is refused."""
        try:
            message = self.codec.decode(frames)
        except ProtocolError:
            self.refused += 1
            return None
        if message.sender != BROKER_SENDER or message.seq != self.last_in + 1:
            self.refused += 1  # not the broker's, or sent again (already accepted)
            return None
        self.last_in = message.seq
        self.received += 1
        return message

    def heartbeat_if_quiet(self, now: float) -> None:
        """Send a HEARTBEAT (which acknowledges the broker's stream) after a quiet second."""
        if not self.stopped and now - self.last_sent >= HEARTBEAT_S:
            self.send(Kind.HEARTBEAT)


class Taker(SimWorker):
    """A simulated worker that asks for tasks and answers each TASKS with RESULTS at once."""

    __slots__ = ("pace", "result_entry_digest")

    def __init__(self, endpoint: WorkerEndpoint, codec: Codec, index: int) -> None:
        super().__init__(endpoint, codec, index)
        self.result_entry_digest = codec.digest([RESULT_FRAME])
        #: Its time per task, whence how many tasks it asks for (as a real worker's).
        self.pace = Pace()

    def request(self) -> None:
        """Say it is idle, as a real worker with nothing to run does."""
        self.send(Kind.REQUEST, self.pace.appetite())

    def handle(self, frames: list[Frame]) -> None:
        """Act on one message of the broker."""
        message = self.accept(frames)
        if message is None:
            return
        kind = message.kind
        if kind == Kind.TASKS:
            started = time.perf_counter()
            entries = message.entries
            self.tasks += len(entries)
            self.task_messages += 1
            digest = self.result_entry_digest
            results = [Entry(e.id, Status.OK, digest, [RESULT_FRAME]) for e in entries]
            self.pace.observe(time.perf_counter() - started, len(entries))
            self.send(Kind.RESULTS, idle_arg(self.pace.appetite()), results)
            self.results_sent += len(results)
        elif kind == Kind.DEMAND:
            self.demands += 1
        elif kind == Kind.WELCOME:
            self.joined = True
        elif kind == Kind.SHUTDOWN:
            self.stopped = True
        elif kind == Kind.REJECT:
            reason = bytes(message.entries[0].frames[0]).decode(errors="replace")
            raise SystemExit(f"simulated worker {self.index} was rejected: {reason}")
        else:
            self.others += 1


def _socket_of(endpoint: WorkerEndpoint) -> Any:
    """The zmq socket behind a zmq worker endpoint, or None (another transport)."""
    try:
        import zmq
    except ImportError:
        return None
    sock = getattr(endpoint, "_socket", None)
    return sock if isinstance(sock, zmq.Socket) else None


class Group:
    """The simulated workers of one process, and how they are served.

    zmq: one thread (the caller's) waits on every DEALER socket with a ``zmq.Poller``. Other
    transports: one thread per endpoint, which owns it (joins, asks for work, serves).
    """

    def __init__(self, takers: list[Taker], versions: dict[str, Any]) -> None:
        self.takers = takers
        self.versions = versions
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        sockets = [_socket_of(t.endpoint) for t in takers]
        self.polled = all(s is not None for s in sockets)
        self._by_socket = dict(zip(sockets, takers, strict=True)) if self.polled else {}
        self._poller: Any = None
        self._next_heartbeat = 0.0

    def join(self, timeout: float) -> None:
        """Have every worker join (HELLO, WELCOME) and ask for work; raise after ``timeout``."""
        deadline = time.monotonic() + timeout
        if self.polled:
            import zmq

            self._poller = zmq.Poller()
            for sock in self._by_socket:
                self._poller.register(sock, zmq.POLLIN)
            for taker in self.takers:
                taker.hello(self.versions)
            while not all(t.joined for t in self.takers):
                if time.monotonic() > deadline:
                    raise SystemExit(f"simulated workers: joining took more than {timeout:g} s")
                self.turn(TURN_S)
            for taker in self.takers:  # idle from the start, as a real worker with nothing to do
                taker.request()
            return
        threading.stack_size(256 * 1024)
        self.threads = [
            threading.Thread(target=self._own, args=(t,), daemon=True, name=f"sim-{t.index}")
            for t in self.takers
        ]
        for thread in self.threads:
            thread.start()
        while not all(t.joined for t in self.takers):
            if time.monotonic() > deadline:
                raise SystemExit(f"simulated workers: joining took more than {timeout:g} s")
            time.sleep(0.01)

    def turn(self, timeout: float) -> None:
        """Wait for messages at most ``timeout`` seconds and answer them; then heartbeats.

        Threaded transports: only waits (their threads do the rest).
        """
        if not self.polled:
            time.sleep(timeout)
            return
        for sock, _ in self._poller.poll(int(timeout * 1000)):
            taker = self._by_socket[sock]
            for _ in range(MESSAGES_PER_TURN):  # bounded: heartbeats are not held back long
                frames = taker.endpoint.recv(0)
                if frames is None:
                    break
                taker.handle(frames)
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + TURN_S
            for taker in self.takers:
                taker.heartbeat_if_quiet(now)

    def _own(self, taker: Taker) -> None:
        """A thread that owns one endpoint: join, ask for work, serve until the end."""
        endpoint = taker.endpoint
        taker.hello(self.versions)
        requested = False
        while not self.stop.is_set() and not taker.stopped:
            frames = endpoint.recv(TURN_S)
            while frames is not None:
                taker.handle(frames)
                frames = endpoint.recv(0)
            if taker.joined and not requested:
                requested = True
                taker.request()
            taker.heartbeat_if_quiet(time.monotonic())

    def close(self) -> None:
        """Stop the threads (if any) and close every endpoint."""
        self.stop.set()
        for thread in self.threads:
            thread.join(2 * TURN_S + 1)
        for taker in self.takers:
            with contextlib.suppress(Exception):
                taker.endpoint.close()

    def stats(self) -> dict[str, float]:
        """Totals of this process's workers, and its own CPU time."""
        totals: dict[str, float] = {
            key: sum(getattr(t, key) for t in self.takers)
            for key in (
                "tasks",
                "task_messages",
                "demands",
                "others",
                "results_sent",
                "refused",
                "sent",
                "received",
            )
        }
        totals["cpu_s"] = time.process_time()
        totals["stopped"] = sum(t.stopped for t in self.takers)
        return totals


def _commands() -> queue.SimpleQueue[str]:
    """Lines of standard input (``stop`` when it closes), read by a thread of their own."""
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put("stop")

    threading.Thread(target=read, daemon=True).start()
    return lines


def _say(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def main() -> int:
    """Serve ``count`` simulated workers until told to stop (see the module docstring)."""
    config = json.loads(sys.stdin.readline())
    die_with_parent(config.get("parent_pid"))
    from scoop._broker import local_versions
    from scoop._plugins import load_transport
    from scoop.transport import ConnectOptions

    transport = load_transport(config["transport"], config.get("transport_module"))
    codec = Codec(
        bytes.fromhex(config["secret"]), payload_digests=bool(config.get("payload_digests"))
    )
    first, count = int(config["first_index"]), int(config["count"])
    lines = _commands()
    takers: list[Taker] = []
    group: Group | None = None
    try:
        for index in range(first, first + count):
            endpoint = transport.connect(ConnectOptions(address=config["address"]))
            takers.append(Taker(endpoint, codec, index))
        group = Group(takers, local_versions(transport.name))
        group.join(JOIN_TIMEOUT_S)
        _say({"ready": count, "pid": os.getpid(), "polled": group.polled})
        while not all(t.stopped for t in takers):
            group.turn(TURN_S)
            command = _next_command(lines)
            if command == "stats":
                _say({"stats": group.stats()})
            elif command == "stop":
                break
    finally:
        if group is not None:
            group.close()
        else:
            for taker in takers:
                with contextlib.suppress(Exception):
                    taker.endpoint.close()
    return 0


def _next_command(lines: queue.SimpleQueue[str]) -> str:
    try:
        return lines.get_nowait()
    except queue.Empty:
        return ""


if __name__ == "__main__":
    sys.exit(main())
