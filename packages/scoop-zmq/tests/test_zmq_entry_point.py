"""The ``scoop.transports`` entry point of scoop-zmq resolves to the zmq transport."""

from __future__ import annotations

from scoop._plugins import choose_transport
from scoop.testing import check_registration


def test_zmq_is_registered_and_works() -> None:
    info = check_registration("zmq", "scoop-zmq")
    assert info.schemes == ("tcp",)
    assert not info.broker_connects_to_workers


def test_zmq_is_the_default(monkeypatch) -> None:
    monkeypatch.delenv("SCOOP_TRANSPORT", raising=False)
    assert choose_transport().info.name == "zmq"
