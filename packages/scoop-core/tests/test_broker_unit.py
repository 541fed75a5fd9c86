"""The broker on its own, driven message by message over the in-memory transport."""

import json
import os

from scoop._broker import Broker, local_versions
from scoop._protocol import Codec, Kind
from scoop.testing import memory_transport
from scoop.transport import BindOptions, ConnectOptions

SECRET = os.urandom(32)


def hello(codec, index, **versions):
    payload = json.dumps({**local_versions("memory"), **versions, "index": index, "host": "t"})
    return codec.encode(Kind.HELLO, index, 0, [(index, 0, [payload.encode()])])


def test_worker_gone_before_the_welcome_does_not_crash_the_broker():
    transport = memory_transport()
    endpoint = transport.bind(BindOptions())
    codec = Codec(SECRET)
    broker = Broker(endpoint, codec, "memory", size=2)
    try:
        hungry = transport.connect(ConnectOptions(address=endpoint.address))
        hungry.send(hello(codec, 1))
        broker.handle(*endpoint.recv(5))
        hungry.send(codec.encode(Kind.REQUEST, 1, 1))
        broker.handle(*endpoint.recv(5))
        assert broker.hungry == {1: None}
        leaving = transport.connect(ConnectOptions(address=endpoint.address))
        leaving.send(hello(codec, 0))
        peer, frames = endpoint.recv(5)
        leaving.close()  # gone before the broker answers (WELCOME, then DEMAND)
        broker.handle(peer, frames)
        assert 0 not in broker.workers and broker.index_of[peer] == 0
        hungry.close()
    finally:
        endpoint.close()


def test_messages_before_hello_and_garbage_are_dropped_and_counted():
    transport = memory_transport()
    endpoint = transport.bind(BindOptions())
    codec = Codec(SECRET)
    broker = Broker(endpoint, codec, "memory", size=1)
    try:
        stranger = transport.connect(ConnectOptions(address=endpoint.address))
        stranger.send(codec.encode(Kind.REQUEST, 3, 1))  # authenticated but never said HELLO
        stranger.send([b"garbage"])
        stranger.send(Codec(os.urandom(32)).encode(Kind.HELLO, 0))  # another run's secret
        for _ in range(3):
            broker.handle(*endpoint.recv(5))
        assert broker.dropped == 3 and not broker.workers
        stranger.close()
    finally:
        endpoint.close()


def test_termination_requested_from_a_signal_handler_is_acted_on_by_the_serve_loop():
    transport = memory_transport()
    endpoint = transport.bind(BindOptions())
    codec = Codec(SECRET)
    broker = Broker(endpoint, codec, "memory", size=2)
    try:
        worker = transport.connect(ConnectOptions(address=endpoint.address))
        worker.send(hello(codec, 1))
        broker.handle(*endpoint.recv(5))
        assert codec.decode(worker.recv(5)).kind == Kind.WELCOME
        # The handler only records the request: nothing is sent until the loop runs, so a
        # signal landing while the endpoint is in use or being closed cannot break it.
        broker.request_termination(143)
        assert worker.recv(0.05) is None
        broker.serve()
        shutdown = codec.decode(worker.recv(5))
        assert (shutdown.kind, shutdown.arg) == (Kind.SHUTDOWN, 143)
        assert broker.stopped and broker.exit_code == 143
        worker.close()
    finally:
        endpoint.close()


def test_a_replayed_message_is_dropped_not_acted_on():
    """Someone who captured a worker's messages sends them again: nothing runs twice."""
    transport = memory_transport()
    endpoint = transport.bind(BindOptions())
    codec = Codec(SECRET)
    broker = Broker(endpoint, codec, "memory", size=2)
    try:
        worker = transport.connect(ConnectOptions(address=endpoint.address))
        hello_frames = hello(codec, 1)
        worker.send(hello_frames)
        worker_peer, frames = endpoint.recv(5)
        broker.handle(worker_peer, frames)
        tasks = codec.encode(Kind.TASKS, 1, 0, [((1 << 40) | 7, 0, [b"fn", b"args"])])
        worker.send(tasks)
        broker.handle(*endpoint.recv(5))
        assert len(broker.queue) == 1 and broker.dropped == 0
        attacker = transport.connect(ConnectOptions(address=endpoint.address))
        for frames in (tasks, hello_frames):  # over its own connection, and over the worker's
            attacker.send(frames)
            broker.handle(*endpoint.recv(5))
            worker.send(frames)
            broker.handle(*endpoint.recv(5))
        assert len(broker.queue) == 1, "a replayed task was queued again"
        assert broker.dropped == 4
        assert broker.workers[1] == worker_peer  # the replayed HELLO did not take its place
        attacker.close()
        worker.close()
    finally:
        endpoint.close()


def test_a_worker_drops_a_replayed_broker_message_and_one_not_from_the_broker():
    from scoop._protocol import BROKER_SENDER
    from scoop._worker import WorkerScheduler

    transport = memory_transport()
    endpoint = transport.bind(BindOptions())
    codec = Codec(SECRET)
    link = transport.connect(ConnectOptions(address=endpoint.address))
    worker = WorkerScheduler(link, Codec(SECRET), 1, 2, hostname="t")
    try:
        link.send([b"hello"])
        peer, _ = endpoint.recv(5)
        demand = codec.encode(Kind.DEMAND, BROKER_SENDER, 3)
        for frames in (demand, demand, codec.encode(Kind.DEMAND, 0, 5)):
            endpoint.send(peer, frames)
        while worker.receive(0.5):
            pass
        assert worker.demand == 3 and worker.dropped == 2
    finally:
        link.close()
        endpoint.close()
