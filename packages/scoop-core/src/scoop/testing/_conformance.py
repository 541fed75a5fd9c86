"""The transport conformance kit: the rules of :mod:`scoop.transport`, as pytest tests.

Use it from a test module of your transport's package::

    from scoop.testing import TransportConformance
    from my_transport._plugin import scoop_transports

    class TestMyTransport(TransportConformance):
        transport_info = scoop_transports()[0]

pytest then runs every ``test_*`` method of the class against your transport (they are written
by topic in ``_checks_addresses.py``, ``_checks_messages.py`` and ``_checks_closing.py``, the
harness in ``_harness.py``). Each method takes the
``harness`` fixture, a :class:`Harness` that opens endpoints for one check and closes all of them
afterwards, pass or fail. Every endpoint the harness hands out is wrapped so that any exception
that is not a :class:`~scoop.errors.ScoopError` (a native ``zmq.ZMQError``, ``OSError``...) fails
the check with a message naming the call, and every ``recv`` result is checked for shape.

Checks wait on messages with ``recv`` timeouts and on their helper threads with bounded joins,
never with sleeps, and give up after :attr:`TransportConformance.message_deadline` seconds.
Without pytest's runner, :func:`run_conformance` runs the same checks and returns a
:class:`ConformanceReport`.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest

from scoop.testing._checks_addresses import AddressChecks
from scoop.testing._checks_closing import ClosingChecks
from scoop.testing._checks_messages import MessageChecks
from scoop.testing._harness import Harness
from scoop.transport import (
    BindOptions,
    ConnectOptions,
    TransportInfo,
)

__all__ = ["CheckResult", "ConformanceReport", "Harness", "TransportConformance", "run_conformance"]


class TransportConformance(AddressChecks, MessageChecks, ClosingChecks):
    """Base class of a transport's conformance tests: subclass it in a ``Test*`` class.

    Set :attr:`transport_info` (or override the ``transport`` fixture), and adjust the other
    class attributes to your transport if the defaults do not fit.
    """

    #: The transport under test, as its plugin hook returns it.
    transport_info: ClassVar[TransportInfo | None] = None
    #: True for a transport that binds ports: port 0 must report the real port, and binding
    #: that exact address again must raise AddressInUse.
    network: ClassVar[bool] = True
    #: True when the broker's address is a TCP host and port that any TCP client can open (the
    #: check that stranger bytes there are dropped connects to it with a plain socket).
    listens_on_tcp: ClassVar[bool] = True
    #: How the suite binds its brokers.
    bind_options: ClassVar[BindOptions] = BindOptions()
    #: Addresses ``connect`` must refuse with InvalidAddress.
    invalid_addresses: ClassVar[tuple[str, ...]] = (
        "",
        "no scheme at all",
        "no-such-scheme://127.0.0.1:1",
    )
    #: Bind options ``bind`` must refuse with InvalidAddress.
    invalid_bind_options: ClassVar[tuple[BindOptions, ...]] = (
        BindOptions(port=-1),
        BindOptions(port=65536),
        BindOptions(host=""),
    )
    #: Odd input that must either work or raise a scoop error, never a native one.
    odd_addresses: ClassVar[tuple[str, ...]] = (
        "tcp://",
        "tcp://[::1",
        "tcp://127.0.0.1:not-a-port",
        "%%%",
        "://",
        "\x00",
    )
    odd_hosts: ClassVar[tuple[str, ...]] = ("bad host", "\x00", "[::1", "no.such.host.invalid")
    #: Size of the large frame sent by the large message check.
    large_frame_size: ClassVar[int] = 16 * 1024 * 1024
    #: Seconds to wait for a message that should come before failing.
    message_deadline: ClassVar[float] = 5.0
    #: How late ``recv(timeout)`` may return after its timeout, in seconds.
    timeout_slack: ClassVar[float] = 1.0
    #: How soon a ``recv`` must return after a ``wakeup()``, in seconds.
    wakeup_slack: ClassVar[float] = 1.0

    def connect_options(self, address: str) -> ConnectOptions:
        """Return the options the suite's workers connect with (override to add ``extra``)."""
        return ConnectOptions(address=address)

    @pytest.fixture
    def transport(self) -> TransportInfo:
        """Return the transport under test: :attr:`transport_info` unless overridden."""
        if self.transport_info is None:
            pytest.fail(f"{type(self).__name__}: set transport_info or override `transport`")
        return self.transport_info

    @pytest.fixture
    def harness(self, transport: TransportInfo) -> Iterator[Harness]:
        """Yield a :class:`Harness` for one check, and close its endpoints afterwards."""
        harness = self._harness(transport)
        try:
            yield harness
        finally:
            harness.close_all()

    def _harness(self, transport: TransportInfo) -> Harness:
        return Harness(transport, self.bind_options, self.connect_options, self.message_deadline)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check run by :func:`run_conformance`."""

    #: The check's method name (``test_round_trip``...).
    name: str
    #: ``"passed"``, ``"failed"`` or ``"skipped"``.
    outcome: str
    #: The traceback of a failure, or the reason of a skip.
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ConformanceReport:
    """What :func:`run_conformance` found."""

    #: The name of the transport checked.
    transport: str
    #: One result per check, in the order run.
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(result.outcome != "failed" for result in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The failed checks."""
        return tuple(result for result in self.results if result.outcome == "failed")

    def __str__(self) -> str:
        counts = {o: sum(r.outcome == o for r in self.results) for o in ("passed", "failed")}
        lines = [
            f"transport {self.transport!r}: {counts['passed']} passed, "
            f"{counts['failed']} failed, "
            f"{len(self.results) - sum(counts.values())} skipped"
        ]
        lines += [f"FAILED {r.name}\n{r.detail}" for r in self.failures]
        return "\n".join(lines)


def run_conformance(
    info: TransportInfo, *, only: Sequence[str] | None = None, **settings: Any
) -> ConformanceReport:
    """Run every conformance check on ``info`` without pytest's runner; return the report.

    ``settings`` override :class:`TransportConformance` class attributes (``network=False``,
    ``bind_options=BindOptions(host="::1")``...); ``only`` restricts the run to the checks named.
    pytest must be importable (the checks use its ``raises`` and ``skip``).
    """
    unknown = set(settings) - set(vars(TransportConformance))
    if unknown:
        raise TypeError(f"unknown conformance settings: {', '.join(sorted(unknown))}")
    suite_class = type("RunConformance", (TransportConformance,), {"transport_info": info})
    for key, value in settings.items():
        setattr(suite_class, key, value)
    suite = suite_class()
    names = [name for name in dir(TransportConformance) if name.startswith("test_")]
    if only is not None:
        names = [name for name in names if name in only]
    results: list[CheckResult] = []
    for name in names:
        harness = suite._harness(info)
        try:
            getattr(suite, name)(harness)
        except pytest.skip.Exception as exc:
            results.append(CheckResult(name, "skipped", str(exc)))
        except (Exception, pytest.fail.Exception):
            results.append(CheckResult(name, "failed", traceback.format_exc()))
        else:
            results.append(CheckResult(name, "passed"))
        finally:
            harness.close_all()
    return ConformanceReport(info.name, tuple(results))
