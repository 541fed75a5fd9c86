"""The SCOOP transport conformance kit, run on the tcp-example transport."""

from __future__ import annotations

from importlib import metadata

import pytest
from scoop_tcp_example._plugin import scoop_transports

from scoop.testing import TransportConformance, check_registration


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
def test_registered_through_the_entry_point() -> None:
    """Installed, the entry point makes scoop find the transport, and it works once found."""
    info = check_registration("tcp-example", "scoop-tcp-example")
    assert info.schemes == ("tcp",)
