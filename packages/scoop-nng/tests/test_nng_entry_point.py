"""The ``scoop.transports`` entry point of scoop-nng resolves to the nng transport."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from scoop._plugins import ENTRY_POINT_GROUP, choose_transport, installed_transports
from scoop.errors import TransportError
from scoop.transport import API_VERSION, BindOptions, ConnectOptions, TransportInfo


def test_entry_point_is_declared() -> None:
    (entry_point,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "nng"]
    assert entry_point.value == "scoop_nng._plugin"
    assert entry_point.dist is not None and entry_point.dist.name == "scoop-nng"


def test_installed_transports_finds_nng() -> None:
    installed = installed_transports()["nng"]
    assert installed.distribution == "scoop-nng"
    assert installed.version == "0.1.0"
    assert installed.plugin_name == "nng"
    info = installed.info
    assert isinstance(info, TransportInfo)
    assert info.name == "nng"
    assert info.schemes == ("tcp",)
    assert info.api_version == API_VERSION
    assert info.description


def test_nng_is_chosen_by_name(monkeypatch) -> None:
    monkeypatch.delenv("SCOOP_TRANSPORT", raising=False)
    assert choose_transport("nng").info.name == "nng"
    monkeypatch.setenv("SCOOP_TRANSPORT", "nng")
    assert choose_transport().info.name == "nng"


def test_listing_transports_does_not_import_pynng() -> None:
    code = (
        "import sys; from scoop._plugins import installed_transports; "
        "assert 'nng' in installed_transports(); assert 'pynng' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_factories_make_working_endpoints() -> None:
    info = installed_transports()["nng"].info
    broker = info.bind(BindOptions())
    try:
        assert broker.address.startswith("tcp://127.0.0.1:")
        worker = info.connect(ConnectOptions(address=broker.address))
        try:
            worker.send([b"hello"])
            received = broker.recv(5.0)
            assert received is not None and [bytes(f) for f in received[1]] == [b"hello"]
            broker.send(received[0], [b"back"])
            frames = worker.recv(5.0)
            assert frames is not None and [bytes(f) for f in frames] == [b"back"]
        finally:
            worker.close()
    finally:
        broker.close()


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
