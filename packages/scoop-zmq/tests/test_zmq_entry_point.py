"""The ``scoop.transports`` entry point of scoop-zmq resolves to the zmq transport."""

from __future__ import annotations

import subprocess
import sys

from scoop._plugins import choose_transport
from scoop.testing import check_registration


def test_zmq_is_registered_and_works() -> None:
    info = check_registration("zmq", "scoop-zmq")
    assert info.schemes == ("tcp",)
    assert not info.broker_connects_to_workers


def test_zmq_is_the_default(monkeypatch) -> None:
    monkeypatch.delenv("SCOOP_TRANSPORT", raising=False)
    assert choose_transport().info.name == "zmq"


def test_choosing_the_transport_does_not_import_pyzmq() -> None:
    # The launcher chooses the transport only to name it to its processes: pyzmq there would
    # delay every run's start.
    code = (
        "import sys; from scoop._plugins import choose_transport; "
        "assert choose_transport('zmq').module == 'scoop_zmq._plugin'; "
        "assert 'zmq' not in sys.modules, sorted(m for m in sys.modules if 'zmq' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
