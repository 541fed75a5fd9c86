"""The ``scoop.transports`` entry point of scoop-nng resolves to the nng transport."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scoop._plugins import choose_transport, installed_transports
from scoop.errors import TransportError
from scoop.testing import check_registration
from scoop.transport import BindOptions, ConnectOptions


def test_nng_is_registered_and_works() -> None:
    info = check_registration("nng", "scoop-nng")
    assert info.schemes == ("tcp",)
    assert info.broker_connects_to_workers  # so the launcher refuses --tunnel with it


def test_nng_is_chosen_through_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SCOOP_TRANSPORT", "nng")
    assert choose_transport().info.name == "nng"


def test_listing_transports_does_not_import_pynng() -> None:
    code = (
        "import sys; from scoop._plugins import installed_transports; "
        "assert 'nng' in installed_transports(); assert 'pynng' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_endpoints_refuse_use_in_a_forked_child() -> None:
    info = installed_transports()["nng"].info
    broker = info.bind(BindOptions())
    worker = info.connect(ConnectOptions(address=broker.address))
    try:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what each call does, never touch nng
            outcome = b""
            for call in (lambda: worker.send([b"x"]), lambda: broker.recv(0)):
                try:
                    call()
                    outcome += b"worked;"
                except TransportError as exc:
                    outcome += b"refused;" if "fork" in str(exc) else b"other;"
                except BaseException:
                    outcome += b"native;"
            os.write(write_fd, outcome)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            outcome = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert outcome == b"refused;refused;"
        worker.send([b"parent still works"])
        received = broker.recv(5.0)
        assert received is not None and [bytes(f) for f in received[1]] == [b"parent still works"]
    finally:
        worker.close()
        broker.close()
