"""SCOOP's side of the benchmark: this SCOOP, or the original SCOOP 0.7.2 (same API).

Started by run.py under a launcher, one launch per workload (its repeats run inside):

    python -m scoop_launch -n 2 bench/run_scoop.py --system scoop --workload submit --mode quick
    python -m scoop -n 2 bench/run_scoop.py --system "scoop 0.7.2" --workload submit   # original

The root prints ``BENCH {json}`` lines (see workloads.py). Only ``from scoop import futures,
shared`` and ``scoop.IS_ORIGIN`` are used, which both versions have. ``getConst`` is always
called with an explicit timeout: the original's default (0.1 s) returns None when it is late.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import runner
import workloads as w

from scoop import futures, shared

SYSTEM = "scoop"
ORIGINAL = "scoop 0.7.2"

# ------------------------------------------------------------------------------- the tree
# The original SCOOP's examples/full_tree.py: map, submit + as_completed, map, 4 levels.


def func4(m: int) -> int:
    return m * m


def func3(j: int) -> int:
    return sum(futures.map(func4, [i + 1 for i in range(j)]))


def func2(k: int) -> int:
    launches = [futures.submit(func3, i + 1) for i in range(k)]
    return sum(f.result() for f in futures.as_completed(launches))


def func1(n: int) -> int:
    return sum(futures.map(func2, [i + 1 for i in range(n)]))


def func0(n: int) -> int:
    return futures.submit(func1, n).result()


def use_const(args: tuple[str, int]) -> tuple[int, int]:
    """A task that reads the shared constant: its process and one byte of it."""
    name, i = args
    value = shared.getConst(name, timeout=60)
    if value is None:
        raise RuntimeError(f"constant {name} not received")
    w.spin(0.0005)  # long enough that both workers take some of the tasks
    return os.getpid(), value[i % len(value)]


# ---------------------------------------------------------------------------- workloads


BUSY_S = 0.002
#: Warm-up maps of the shared workload until one ran a task on another worker (they join while
#: the root runs its first tasks itself).
SHARED_WARM_UPS = 50
#: This SCOOP (not the original): a waiter with a timeout sends the task it awaits elsewhere.
_BY_TIMEOUT = False


def _remote(submit_measured, pid_of, tries: int = 20):  # type: ignore[no-untyped-def]
    """Run one task so that it goes to the other worker; (seconds, tries, result).

    This SCOOP: ``submit(...).result(timeout=...)`` makes it travel (a waiter with a timeout
    hands the task it awaits to an idle worker). Otherwise (the original SCOOP, or if that task
    still ran here): a task submitted on an idle root runs on the root. To make it travel, the
    root queues the measured task, a tiny spare and a short busy task (BUSY_S): it runs the
    newest (busy) first, meanwhile the other worker asks for work, and at the next poll after the
    busy task the root hands away its oldest surplus task, the measured one. The busy task's own
    time, when it ran on the root, is taken off: seconds = (result back on the root - submit) -
    busy time. The original SCOOP hands tasks away less predictably (about a third of the tries).
    Retried (up to ``tries``) until the task did run elsewhere.
    """
    me = os.getpid()
    if _BY_TIMEOUT:
        # A waiter with a timeout never runs the task it awaits while another worker exists: it
        # goes to the other worker at once, and the whole round trip is measured.
        start = time.perf_counter()
        value = submit_measured().result(timeout=3600)
        elapsed = time.perf_counter() - start
        if pid_of(value) != me:
            return elapsed, 1, value
    for attempt in range(1, 2 * tries + 1):
        # a longer busy task after ``tries`` failures: 2 ms, then 20 ms
        hold_s = BUSY_S * 10 ** ((attempt - 1) // tries)
        start = time.perf_counter()
        measured = submit_measured()
        spare = futures.submit(w.where)
        hold = futures.submit(w.busy, hold_s)
        value = measured.result()
        elapsed = time.perf_counter() - start
        spare.result()
        hold_pid, hold_start, hold_end = hold.result()
        if pid_of(value) != me:
            # The busy task ran on the root before the hand-off: its time is not the task's.
            # (If it went to the other worker too, the measured task may have waited behind
            # it there: that time stays in, against the system measured.)
            held = hold_end - hold_start if hold_pid == me else 0.0
            return elapsed - held, attempt, value
    raise NotRemoteError(f"the task never ran on another worker in {2 * tries} tries")


class NotRemoteError(RuntimeError):
    """The system could not be made to run the measured task on the other worker."""


def bench_latency(system: str, size: dict[str, int]) -> None:
    count = size["latency"]

    def user() -> float:
        start = time.perf_counter()
        for i in range(count):
            if futures.submit(w.neg, i).result() != -i:
                raise AssertionError("latency: wrong result")
        return (time.perf_counter() - start) / count * 1e6

    w.emit(
        "latency",
        system,
        "latency",
        "us",
        w.repeat(user, size["repeats"]),
        f"submit(neg).result() from the root, mean of {count}; may run on the root itself",
    )
    tries: list[int] = []

    def remote() -> float:
        times = []
        for _ in range(max(5, count // 10)):
            elapsed, attempt, _ = _remote(lambda: futures.submit(w.where), lambda v: v[0])
            times.append(elapsed)
            tries.append(attempt)
        return sum(times) / len(times) * 1e6

    try:
        values = w.repeat(remote, size["repeats"])
    except NotRemoteError as exc:
        w.emit_skip("latency", system + " (forced remote)", str(exc))
        return
    w.emit(
        "latency",
        system + " (forced remote)",
        "latency",
        "us",
        values,
        (
            "round trip of submit(where).result(timeout=3600), which a waiter with a timeout "
            "hands to the other worker"
            if _BY_TIMEOUT
            else "round trip of a task made to run on the other worker (root queued a spare "
            f"and a {BUSY_S * 1e3:g} ms busy task, whose time is taken off)"
        )
        + f"; mean tries per remote run {sum(tries) / len(tries):.2f}",
    )


def bench_bytes(system: str, size: dict[str, int]) -> None:
    data = w.payload(size["bytes_mib"])
    attempts = []

    def once() -> float:
        elapsed, tries, (_, back) = _remote(
            lambda: futures.submit(w.echo_where, data), lambda value: value[0]
        )
        attempts.append(tries)
        if back != data:
            raise AssertionError("bytes: the result differs from the argument")
        return 2 * len(data) / elapsed / 1e9

    how = (
        "forced to the other worker (result(timeout=...): a waiter with a timeout hands it away)"
        if _BY_TIMEOUT
        else "forced to the other worker (root queued a spare and a busy task, whose time is "
        "taken off)"
    )
    try:
        values = w.repeat(once, size["repeats"])
    except NotRemoteError:
        # Fallback (the original SCOOP): two tasks at once; only bytes that travelled count.
        how = "two tasks at once, only those that ran on the other worker counted"
        me = os.getpid()

        def twice() -> float:
            for _ in range(5):
                start = time.perf_counter()
                fs = [futures.submit(w.echo_where, data) for _ in range(2)]
                got = [f.result() for f in fs]
                elapsed = time.perf_counter() - start
                if any(back != data for _, back in got):
                    raise AssertionError("bytes: the result differs from the argument")
                travelled = sum(2 * len(data) for pid, _ in got if pid != me)
                if travelled:
                    return travelled / elapsed / 1e9
            raise NotRemoteError("no task ran on the other worker in 5 tries of two")

        try:
            values = w.repeat(twice, size["repeats"])
        except NotRemoteError as exc:
            w.emit_skip("bytes", system, str(exc))
            return
    w.emit(
        "bytes",
        system,
        "throughput",
        "GB/s",
        values,
        f"{size['bytes_mib']} MiB there and back (2x counted); {how}; tries {attempts}",
    )


def bench_shared(system: str, size: dict[str, int]) -> None:
    data = w.payload(size["shared_mb"] * 1e6 / w.MiB)
    me = os.getpid()
    ratios: list[float] = []
    walls: list[float] = []
    details = []
    warm_ups = 0
    index = 0
    while index <= size["repeats"]:  # index 0: warm-up
        name = f"big{index}.{warm_ups}"
        before = w.tcp_bytes_by_pid()
        start = time.perf_counter()
        shared.setConst(**{name: data})
        got = list(futures.map(use_const, [(name, i) for i in range(size["shared_tasks"])]))
        elapsed = time.perf_counter() - start
        after = w.tcp_bytes_by_pid()
        pids = {pid for pid, _ in got}
        others = pids - {me}
        if not others and index == 0 and warm_ups < SHARED_WARM_UPS:
            # The root runs its script while the others join, and its first tasks itself.
            warm_ups += 1
            continue
        if not others:
            raise RuntimeError("shared: no task ran on another worker")
        if [b for _, b in got] != [data[i % len(data)] for i in range(size["shared_tasks"])]:
            raise AssertionError("shared: wrong bytes of the constant")
        received = w.received_delta(before, after, pids | {me})
        if index:
            ratios.append(max(received[pid] for pid in others) / len(data))
            details.append({str(pid): received[pid] for pid in sorted(received)})
            walls.append(elapsed)
        index += 1
    w.emit(
        "shared",
        system,
        "received per worker",
        "x constant",
        ratios,
        f"{size['shared_mb']} MB constant, {size['shared_tasks']} tasks; max over the non-root "
        "workers of TCP bytes received (ss, tcp_info) / constant size",
        per_pid=details[-1],
        root_pid=me,
    )
    w.emit(
        "shared",
        system,
        "wall time",
        "s",
        walls,
        f"{size['shared_mb']} MB constant, {size['shared_tasks']} tasks of 0.5 ms reading it; "
        "from setConst to the last result",
    )


class ScoopPeer(runner.Peer):
    """This SCOOP, or the original 0.7.2, already started by its launcher (-n 2)."""

    how = {"tree": "futures.map, submit and as_completed", "lognormal": "futures.map"}

    def __init__(self, system: str) -> None:
        global _BY_TIMEOUT
        self.system = system
        original = "0.7" in system
        _BY_TIMEOUT = not original
        # The original SCOOP slows down superlinearly with the number of tasks.
        self.tiny = "tiny_slow" if original else "tiny"

    def submit(self, fn: Any, *args: Any) -> Any:
        return futures.submit(fn, *args)

    def map(self, fn: Any, items: Any) -> list[Any]:
        return list(futures.map(fn, items))

    def tree(self, n: int) -> int:
        return int(futures.submit(func0, n).result())

    def own(self) -> dict[str, runner.Bench]:
        return {
            "latency": lambda peer, size: bench_latency(peer.system, size),
            "bytes": lambda peer, size: bench_bytes(peer.system, size),
            "shared": lambda peer, size: bench_shared(peer.system, size),
        }


if __name__ == "__main__":
    runner.main(ScoopPeer, (SYSTEM, ORIGINAL), "run_scoop.py")
