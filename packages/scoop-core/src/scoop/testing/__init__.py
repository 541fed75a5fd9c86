"""Testing tools for SCOOP transports: an in-memory transport and a conformance kit.

Layout::

    _memory.py       memory_transport(): broker and workers in threads of one process
    _conformance.py  TransportConformance: the rules of scoop.transport as pytest tests,
                     and run_conformance() to run them without pytest's runner
    _registration.py check_registration(): an installed transport is found through its
                     entry point as the launcher and the workers find it, and works

Run the kit on your transport from one of your test modules::

    from scoop.testing import TransportConformance

    class TestMyTransport(TransportConformance):
        transport_info = my_transport_info

and, once your distribution is installed, check that scoop finds it through its entry point::

    from scoop.testing import check_registration

    def test_registered():
        check_registration("mytransport", "scoop-mytransport")

The conformance kit needs pytest; ``memory_transport`` does not, and importing this package does
not import pytest until the kit is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scoop.testing._memory import MemoryPeer, memory_transport
from scoop.testing._registration import RegistrationError, check_registration

if TYPE_CHECKING:
    from scoop.testing._conformance import (
        CheckResult,
        ConformanceReport,
        Harness,
        TransportConformance,
        run_conformance,
    )

__all__ = [
    "CheckResult",
    "ConformanceReport",
    "Harness",
    "MemoryPeer",
    "RegistrationError",
    "TransportConformance",
    "check_registration",
    "memory_transport",
    "run_conformance",
]

_CONFORMANCE_NAMES = frozenset(
    {"CheckResult", "ConformanceReport", "Harness", "TransportConformance", "run_conformance"}
)


def __getattr__(name: str) -> Any:
    # The conformance kit imports pytest: load it only when asked for.
    if name in _CONFORMANCE_NAMES:
        from scoop.testing import _conformance

        return getattr(_conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
