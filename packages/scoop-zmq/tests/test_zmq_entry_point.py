"""The ``scoop.transports`` entry point of scoop-zmq resolves to the zmq transport."""

from __future__ import annotations

from importlib.metadata import entry_points

from scoop._plugins import ENTRY_POINT_GROUP, choose_transport, installed_transports
from scoop.transport import API_VERSION, TransportInfo


def test_entry_point_is_declared() -> None:
    (entry_point,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "zmq"]
    assert entry_point.value == "scoop_zmq._plugin"
    assert entry_point.dist is not None and entry_point.dist.name == "scoop-zmq"


def test_installed_transports_finds_zmq() -> None:
    installed = installed_transports()["zmq"]
    assert installed.distribution == "scoop-zmq"
    assert installed.plugin_name == "zmq"
    info = installed.info
    assert isinstance(info, TransportInfo)
    assert info.name == "zmq"
    assert info.schemes == ("tcp",)
    assert info.api_version == API_VERSION
    assert info.description


def test_zmq_is_chosen_by_name_and_by_default(monkeypatch) -> None:
    monkeypatch.delenv("SCOOP_TRANSPORT", raising=False)
    assert choose_transport("zmq").info.name == "zmq"
    assert choose_transport().info.name == "zmq"


def test_factories_make_working_endpoints() -> None:
    from scoop.transport import BindOptions, ConnectOptions

    info = installed_transports()["zmq"].info
    broker = info.bind(BindOptions())
    try:
        assert broker.address.startswith("tcp://127.0.0.1:")
        worker = info.connect(ConnectOptions(address=broker.address))
        try:
            worker.send([b"hello"])
            received = broker.recv(5.0)
            assert received is not None and [bytes(f) for f in received[1]] == [b"hello"]
        finally:
            worker.close()
    finally:
        broker.close()
