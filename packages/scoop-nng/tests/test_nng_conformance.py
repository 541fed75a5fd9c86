"""The transport conformance kit, run on the nng transport."""

from __future__ import annotations

from scoop.testing import TransportConformance
from scoop_nng._plugin import scoop_transports


class TestNngConformance(TransportConformance):
    transport_info = scoop_transports()[0]
    invalid_addresses = (
        *TransportConformance.invalid_addresses,
        "tcp://",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:65536",
        "ipc:///tmp/scoop-nng",
    )
