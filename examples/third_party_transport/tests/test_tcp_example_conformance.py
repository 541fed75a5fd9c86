"""The SCOOP transport conformance kit, run on the tcp-example transport."""

from __future__ import annotations

from importlib import metadata

import pytest
from scoop_tcp_example._plugin import scoop_transports

from scoop.testing import TransportConformance


class TestTcpExampleConformance(TransportConformance):
    transport_info = scoop_transports()[0]
    invalid_addresses = (
        *TransportConformance.invalid_addresses,
        "tcp://",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:1/a/path",
    )


def _installed() -> bool:
    try:
        metadata.distribution("scoop-tcp-example")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="scoop-tcp-example is not installed")
def test_entry_point_resolves() -> None:
    """Installed, the entry point makes core find the transport with its distribution."""
    from scoop import _plugins

    found = _plugins.installed_transports()["tcp-example"]
    assert found.distribution == "scoop-tcp-example"
    assert found.info.name == "tcp-example"
    assert _plugins.choose_transport("tcp-example") is found
