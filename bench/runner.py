"""One runner skeleton for every system: the workloads are written once, a system is an adapter.

A runner script (run_scoop.py, run_pools.py, run_dask.py, run_ray.py) defines a :class:`Peer`
for each system it runs and calls :func:`main`; run.py starts it once per workload:

    python bench/run_ray.py --system ray --workload submit --mode quick

A peer says how to submit one call and get its result, how to map, and, when it can, how to run
the nested tree and share a constant; a workload it cannot run is skipped with the reason. A
peer may replace a workload with its own (``Peer.own``): SCOOP forces its latency and 64 MiB
tasks onto the other worker, which other systems always do. Standard library only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import workloads as w

Bench = Callable[["Peer", dict[str, int]], None]


class Peer:
    """What the workloads need of a system; subclasses override the calls."""

    #: The name in the tables.
    system = "?"
    #: Which size of ``workloads.SIZES`` its tiny-task workloads use (slow systems: fewer).
    tiny = "tiny"
    #: Workloads it cannot run, and why (printed as a skip).
    skips: dict[str, str] = {}
    #: How each workload calls it, for the notes.
    how: dict[str, str] = {}
    #: The map figure's system name, when the default map is a variant worth naming.
    map_label = ""

    def start(self) -> None:
        """Start the system (not done for a workload it skips)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args)``; a handle for :meth:`result`."""
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """Wait for one handle's result."""
        return handle.result()

    def results(self, handles: Sequence[Any]) -> list[Any]:
        """Wait for many (the system's own way of gathering, where it has one)."""
        return [self.result(handle) for handle in handles]

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        """``fn`` over ``items``, results in order, with the system's default arguments."""
        raise NotImplementedError

    def tree(self, n: int) -> int:
        """The full tree of size ``n`` (nested tasks), its result."""
        raise NotImplementedError

    def close(self) -> None:
        """Shut the system down."""

    def own(self) -> dict[str, Bench]:
        """Workloads this system measures its own way."""
        return {}


def _note(peer: Peer, workload: str, base: str) -> str:
    extra = peer.how.get(workload, "")
    return f"{base}, {extra}" if base and extra else base or extra


def bench_submit(peer: Peer, size: dict[str, int]) -> None:
    """``n`` tiny submits, then every result."""
    n = size[peer.tiny]

    def once() -> float:
        start = time.perf_counter()
        handles = [peer.submit(w.neg, i) for i in range(n)]
        results = peer.results(handles)
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    values = w.repeat(once, size["repeats"])
    w.emit("submit", peer.system, "tasks/s", "tasks/s", values, _note(peer, "submit", f"n={n}"))


def bench_map(peer: Peer, size: dict[str, int]) -> None:
    """A map of ``n`` tiny tasks, the system's default arguments."""
    n = size[peer.tiny]

    def once() -> float:
        start = time.perf_counter()
        results = list(peer.map(w.neg, range(n)))
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    values = w.repeat(once, size["repeats"])
    label = peer.map_label or peer.system
    w.emit("map", label, "tasks/s", "tasks/s", values, _note(peer, "map", f"n={n}"))


def bench_latency(peer: Peer, size: dict[str, int]) -> None:
    """One task at a time: submit and wait."""
    count = size["latency"]

    def once() -> float:
        start = time.perf_counter()
        for i in range(count):
            if peer.result(peer.submit(w.neg, i)) != -i:
                raise AssertionError("latency: wrong result")
        return (time.perf_counter() - start) / count * 1e6

    values = w.repeat(once, size["repeats"])
    note = _note(peer, "latency", f"submit(neg) then its result, mean of {count}")
    w.emit("latency", peer.system, "latency", "us", values, note)


def bench_tree(peer: Peer, size: dict[str, int]) -> None:
    """The original SCOOP's full tree: nested map, submit and as_completed, 4 levels."""
    n = size["tree"]
    expected = w.tree_expected(n)

    def once() -> float:
        start = time.perf_counter()
        result = peer.tree(n)
        elapsed = time.perf_counter() - start
        if result != expected:
            raise AssertionError(f"tree: {result} != {expected}")
        return elapsed

    values = w.repeat(once, size["repeats"])
    note = _note(peer, "tree", f"{w.tree_tasks(n)} tasks")
    w.emit("tree", peer.system, "wall time", "s", values, note)


def bench_lognormal(peer: Peer, size: dict[str, int]) -> None:
    """Tasks of log-normal durations: how much of two workers' time is spent in them."""
    durations = w.lognormal_durations(size["lognormal"])

    def once() -> float:
        start = time.perf_counter()
        took = list(peer.map(w.spin, durations))
        wall = time.perf_counter() - start
        if len(took) != len(durations) or any(t < d for t, d in zip(took, durations, strict=True)):
            raise AssertionError("lognormal: a task did not run its full duration")
        return sum(took) / (w.WORKERS * wall)

    values = w.repeat(once, size["repeats"])
    note = _note(peer, "lognormal", f"{len(durations)} tasks, map")
    w.emit("lognormal", peer.system, "efficiency", "", values, note)


def bench_bytes(peer: Peer, size: dict[str, int]) -> None:
    """A large bytes argument, echoed back as the result."""
    data = w.payload(size["bytes_mib"])

    def once() -> float:
        start = time.perf_counter()
        back = peer.result(peer.submit(w.echo, data))
        elapsed = time.perf_counter() - start
        if back != data:
            raise AssertionError("bytes: the result differs from the argument")
        return 2 * len(data) / elapsed / 1e9

    values = w.repeat(once, size["repeats"])
    note = _note(peer, "bytes", f"{size['bytes_mib']} MiB there and back (2x counted)")
    w.emit("bytes", peer.system, "throughput", "GB/s", values, note)


def bench_startup(peer: Peer, size: dict[str, int]) -> None:
    """run.py times the whole process: start, the first result (this line), the end."""
    print("FIRST", peer.result(peer.submit(w.neg, 1)), flush=True)


BENCHES: dict[str, Bench] = {
    "submit": bench_submit,
    "map": bench_map,
    "latency": bench_latency,
    "tree": bench_tree,
    "lognormal": bench_lognormal,
    "bytes": bench_bytes,
    "startup": bench_startup,
}


def main(make: Callable[[str], Peer], systems: Sequence[str], script: str) -> None:
    """Parse ``--system --workload --mode`` and run that workload on that system."""
    parser = argparse.ArgumentParser(description=f"{script}: one workload on one system")
    parser.add_argument("--system", default=systems[0], choices=systems)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--mode", default="full", choices=sorted(w.SIZES))
    options = parser.parse_args()
    size, workload = w.sizes(options.mode), options.workload
    peer = make(options.system)
    bench = peer.own().get(workload) or BENCHES.get(workload)
    if workload in peer.skips:
        w.emit_skip(workload, peer.system, peer.skips[workload])
        return
    if bench is None:
        raise SystemExit(f"{script}: unknown workload {workload!r}")
    peer.start()
    try:
        bench(peer, size)
    finally:
        peer.close()
