"""The in-memory transport: the conformance kit, and the behaviour it documents beyond it."""

from __future__ import annotations

import itertools
import threading

import pytest

from scoop.errors import AddressInUse, InvalidAddress, PeerUnreachable, TransportClosed
from scoop.testing import (
    MemoryPeer,
    TransportConformance,
    _memory,
    memory_transport,
    run_conformance,
)
from scoop.transport import BindOptions, ConnectOptions


class TestMemoryConformance(TransportConformance):
    transport_info = memory_transport()
    listens_on_tcp = False  # memory:// addresses name no real port
    invalid_addresses = (
        *TransportConformance.invalid_addresses,
        "tcp://127.0.0.1:5555",
        "memory://",
        "memory://a/b",
    )


@pytest.fixture
def info():
    return memory_transport()


@pytest.fixture
def opened():
    endpoints = []
    yield endpoints
    for endpoint in reversed(endpoints):
        endpoint.close()


def test_info(info) -> None:
    assert info.name == "memory"
    assert info.schemes == ("memory",)


def test_addresses(info, opened) -> None:
    broker = info.bind(BindOptions(host="node-a", port=4242))
    opened.append(broker)
    assert broker.address == "memory://node-a:4242"
    with pytest.raises(AddressInUse):
        info.bind(BindOptions(host="node-a", port=4242))
    other = info.bind(BindOptions(host="node-b", port=4242))
    opened.append(other)
    v6 = info.bind(BindOptions(host="::1", port=0))
    opened.append(v6)
    assert v6.address.startswith("memory://[::1]:")
    with pytest.raises(InvalidAddress):
        info.bind(BindOptions(host="a/b"))


def test_rebind_after_close(info, opened) -> None:
    broker = info.bind(BindOptions())
    address = broker.address
    port = int(address.rsplit(":", 1)[1])
    broker.close()
    again = info.bind(BindOptions(port=port))
    opened.append(again)
    assert again.address == address


def test_connect_before_bind_queues_until_bound(info, opened) -> None:
    worker = info.connect(ConnectOptions(address="memory://later:7000"))
    opened.append(worker)
    worker.send([b"early", b"1"])
    worker.send([b"early", b"2"])
    assert worker.recv(0) is None
    broker = info.bind(BindOptions(host="later", port=7000))
    opened.append(broker)
    first = broker.recv(0)
    second = broker.recv(0)
    assert first is not None and first[1] == [b"early", b"1"]
    assert second is not None and second[1] == [b"early", b"2"]
    assert first[0] == second[0] == worker.peer
    broker.send(first[0], [b"welcome"])
    assert worker.recv(0) == [b"welcome"]


def test_port_zero_avoids_names_in_use(info, opened, monkeypatch) -> None:
    # A fresh name is neither bound nor one a worker already waits on.
    monkeypatch.setattr(_memory, "_next_port", itertools.cycle([40000, 40001, 40002]))
    bound = info.bind(BindOptions(host="fresh", port=40001))
    opened.append(bound)
    waiting = info.connect(ConnectOptions(address="memory://fresh:40000"))
    opened.append(waiting)
    broker = info.bind(BindOptions(host="fresh"))
    opened.append(broker)
    assert broker.address == "memory://fresh:40002"
    with pytest.raises(AddressInUse, match="no free port"):
        info.bind(BindOptions(host="fresh"))


def test_broker_closed_then_rebound_reaches_waiting_workers(info, opened) -> None:
    broker = info.bind(BindOptions())
    address = broker.address
    worker = info.connect(ConnectOptions(address=address))
    opened.append(worker)
    worker.send([b"one"])
    assert broker.recv(0) is not None
    broker.close()
    worker.send([b"two"])  # queued for the next broker of this name
    port = int(address.rsplit(":", 1)[1])
    again = info.bind(BindOptions(port=port))
    opened.append(again)
    received = again.recv(0)
    assert received is not None and received[1] == [b"two"]


def test_frames_are_copied_on_send(info, opened) -> None:
    broker = info.bind(BindOptions())
    opened.append(broker)
    worker = info.connect(ConnectOptions(address=broker.address))
    opened.append(worker)
    buffer = bytearray(b"before")
    worker.send([buffer, memoryview(buffer)])
    buffer[:] = b"after!"
    received = broker.recv(0)
    assert received is not None and received[1] == [b"before", b"before"]


def test_empty_message_is_refused(info, opened) -> None:
    broker = info.bind(BindOptions())
    opened.append(broker)
    worker = info.connect(ConnectOptions(address=broker.address))
    opened.append(worker)
    with pytest.raises(ValueError, match="at least one frame"):
        worker.send([])


def test_closed_worker_is_unreachable_at_once(info, opened) -> None:
    broker = info.bind(BindOptions())
    opened.append(broker)
    worker = info.connect(ConnectOptions(address=broker.address))
    worker.send([b"hi"])
    received = broker.recv(0)
    assert received is not None
    peer = received[0]
    assert isinstance(peer, MemoryPeer)
    worker.close()
    with pytest.raises(PeerUnreachable, match="gone"):
        broker.send(peer, [b"bye"])


def test_close_wakes_a_blocked_recv(info, opened) -> None:
    broker = info.bind(BindOptions())
    opened.append(broker)
    worker = info.connect(ConnectOptions(address=broker.address))
    errors: list[BaseException] = []
    started = threading.Event()

    def wait_forever() -> None:
        started.set()
        try:
            worker.recv(None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_forever)
    thread.start()
    assert started.wait(5)
    worker.close()
    thread.join(5)
    assert not thread.is_alive()
    # The thread either was already waiting (woken, TransportClosed) or started after close.
    assert len(errors) == 1 and isinstance(errors[0], TransportClosed)


def test_many_threads(info, opened) -> None:
    broker = info.bind(BindOptions())
    opened.append(broker)
    workers = [info.connect(ConnectOptions(address=broker.address)) for _ in range(8)]
    opened.extend(workers)
    rounds = 200
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            received = broker.recv(0.05)
            if received is not None:
                broker.send(received[0], received[1])

    def client(index: int, results: list[bool]) -> None:
        worker = workers[index]
        ok = True
        for number in range(rounds):
            worker.send([b"%d" % index, b"%d" % number])
            ok = ok and worker.recv(5) == [b"%d" % index, b"%d" % number]
        results.append(ok)

    server = threading.Thread(target=serve)
    server.start()
    results: list[bool] = []
    clients = [threading.Thread(target=client, args=(i, results)) for i in range(len(workers))]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(20)
    stop.set()
    server.join(5)
    assert results == [True] * len(workers)


def test_run_conformance_without_pytest_runner() -> None:
    report = run_conformance(memory_transport(), only=["test_round_trip", "test_address_in_use"])
    assert report.ok, str(report)
    assert [r.outcome for r in report.results] == ["passed", "passed"]
    assert "2 passed" in str(report)


def test_run_conformance_reports_failures() -> None:
    # A transport that claims another scheme fails the address check, and the report says so.
    info = memory_transport()
    wrong = type(info)(
        name="wrong",
        schemes=("tcp",),
        api_version=info.api_version,
        bind=info.bind,
        connect=info.connect,
    )
    report = run_conformance(wrong, only=["test_bind_reports_real_address"])
    assert not report.ok
    assert report.failures[0].name == "test_bind_reports_real_address"
    assert "FAILED test_bind_reports_real_address" in str(report)
    with pytest.raises(TypeError, match="no_such_setting"):
        run_conformance(info, no_such_setting=1)
