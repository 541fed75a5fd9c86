"""Testing tools for SCOOP transports: an in-memory transport and a conformance kit.

Layout::

    _memory.py       memory_transport(): broker and workers in threads of one process
    _conformance.py  TransportConformance: the rules of scoop.transport as pytest tests,
                     and run_conformance() to run them without pytest's runner

Run the kit on your transport from one of your test modules::

    from scoop.testing import TransportConformance

    class TestMyTransport(TransportConformance):
        transport_info = my_transport_info

The conformance kit needs pytest; ``memory_transport`` does not, and importing this package does
not import pytest until the kit is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scoop.testing._memory import MemoryPeer, memory_transport

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
    "TransportConformance",
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
