"""The figures of bench/multihost.py: their names, the digest timings, and where the difference
goes (figures derived from the medians of the same run). No process is started here.
"""

from __future__ import annotations

import operator
import statistics
import time
from typing import Any

import workloads as w

WORKLOAD = "multihost"
ONE = "scoop, one host"
ONE_DIGESTS = "scoop, one host, digests on"
ACROSS = "scoop, across hosts"
ROOT_REMOTE = "scoop, across hosts, root on h0"
RAW_LOOP = "raw TCP, loopback"
RAW_LOOP_RELAY = "raw TCP, loopback via a relay"
RAW_HERE = "raw TCP, here <-> h0"
RAW_HERE_RELAY = "raw TCP, here via a relay -> h0"
RAW_NS = "raw TCP, h0 <-> h1"
DIGEST = "SHA-256 payload digest"
DIFFERENCE = "difference"
MIB = 64
BIG = f"{MIB} MiB throughput"


class Figures:
    """Figures by (system, metric): emitted as BENCH lines and tabled at the end."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, system: str, metric: str, unit: str, values: list[float], note: str) -> None:
        """One figure (its values: one per repeat); a figure of an earlier round gets more."""
        item = self.items.setdefault((system, metric), {"unit": unit, "values": [], "note": note})
        item["values"] = [*item["values"], *values]

    def median(self, system: str, metric: str) -> float | None:
        """The median of a figure, if it was measured."""
        item = self.items.get((system, metric))
        return statistics.median(item["values"]) if item else None

    def emit(self) -> None:
        """One BENCH line per figure (see workloads.emit)."""
        for (system, metric), item in self.items.items():
            w.emit(WORKLOAD, system, metric, item["unit"], item["values"], item["note"])

    def table(self) -> str:
        """A plain table of the medians, for stderr."""
        lines = []
        for (system, metric), item in self.items.items():
            value = statistics.median(item["values"])
            lines.append(f"  {system:34} {metric:40} {value:14,.3f} {item['unit']}")
        return "\n".join(lines)


# ----------------------------------------------------------------------- payload digests


def time_digests(figures: Figures, repeats: int) -> None:
    """SHA-256 of 64 MiB and of a tiny task's frames, as the protocol computes it."""
    from scoop._protocol import payload_digest
    from scoop._serialize import dumps, dumps_call

    data = w.payload(MIB)
    payload_digest([data])  # warm-up
    big = []
    for _ in range(repeats):
        start = time.perf_counter()
        payload_digest([data])
        big.append((time.perf_counter() - start) * 1e3)
    figures.add(DIGEST, f"SHA-256 of {MIB} MiB", "ms", big, "scoop._protocol.payload_digest")
    frames = [*dumps(operator.neg), *dumps_call((12345,), {})]
    count = 20000
    small = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            payload_digest(frames)
        small.append((time.perf_counter() - start) / count * 1e6)
    sizes = "+".join(str(len(bytes(f))) for f in frames)
    figures.add(
        DIGEST, "SHA-256 of a tiny task", "us", small, f"frames of neg(12345), {sizes} bytes"
    )


# ----------------------------------------------------------------------- where it goes


def differences(figures: Figures) -> None:
    """Derived figures (from this run's medians): where the time across hosts goes."""

    def trip_ms(system: str) -> float | None:  # one 64 MiB round trip, from its throughput
        rate = figures.median(system, BIG)
        return 2 * MIB * w.MiB / rate / 1e6 if rate else None

    def add(metric: str, unit: str, value: float | None, note: str) -> None:
        if value is not None:
            figures.add(DIFFERENCE, metric, unit, [value], note + " (from this run's medians)")

    def minus(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None

    sha = figures.median(DIGEST, f"SHA-256 of {MIB} MiB")
    add(
        f"{MIB} MiB: 4 digests per round trip",
        "ms",
        4 * sha if sha else None,
        "sent and checked, argument and result; the broker checks none",
    )
    one, across = trip_ms(ONE), trip_ms(ACROSS)
    add(
        f"{MIB} MiB: digests on - off, one host",
        "ms",
        minus(trip_ms(ONE_DIGESTS), one),
        "round trip time",
    )
    add(f"{MIB} MiB: across hosts - one host", "ms", minus(across, one), "round trip time")
    add(
        f"{MIB} MiB: across hosts - one host with digests",
        "ms",
        minus(across, trip_ms(ONE_DIGESTS)),
        "round trip time: what the network adds",
    )
    add(
        f"{MIB} MiB: raw, across - loopback, via a relay",
        "ms",
        minus(trip_ms(RAW_HERE_RELAY), trip_ms(RAW_LOOP_RELAY)),
        "round trip time",
    )
    add(
        f"{MIB} MiB: one host - raw loopback via a relay",
        "ms",
        minus(one, trip_ms(RAW_LOOP_RELAY)),
        "SCOOP's own cost on the same path",
    )
    add(
        f"{MIB} MiB: raw relay - raw direct, loopback",
        "ms",
        minus(trip_ms(RAW_LOOP_RELAY), trip_ms(RAW_LOOP)),
        "the store-and-forward hop",
    )
    tiny = figures.median(DIGEST, "SHA-256 of a tiny task")
    add("tiny task: 4 digests", "us", 4 * tiny if tiny else None, "of the tiny task's frames")
    lat = [figures.median(s, "forced-remote latency") for s in (ONE, ONE_DIGESTS, ACROSS)]
    add("latency: across hosts - one host", "us", minus(lat[2], lat[0]), "forced-remote")
    add("latency: digests on - off, one host", "us", minus(lat[1], lat[0]), "forced-remote")
    add(
        "round trip: raw across - raw loopback, via a relay",
        "us",
        minus(
            figures.median(RAW_HERE_RELAY, "round trip"),
            figures.median(RAW_LOOP_RELAY, "round trip"),
        ),
        "64 bytes",
    )
