"""The root's side of bench/multihost.py, run under the launcher with ``--root-runs-no-task``:

    python -m scoop_launch -n 3 --root-runs-no-task bench/_multihost_root.py --token T \
        [--workers 2] [--tiny 5000] [--map-tasks 50000] [--latency 200] [--mib 64] [--repeats 3]

The root runs no task, so every task travels root -> broker -> worker -> broker -> root. After a
warm-up, ``--repeats`` times: ``submit`` then ``result`` of ``--tiny`` ``operator.neg`` tasks;
``futures.map`` of ``--map-tasks`` (batched, it is much faster: fewer would be over in 4 ms);
``--latency`` tasks one at a time (``submit(where).result()``, each checked to have run on a
worker, not the root); a ``--mib`` MiB bytes argument echoed back.

Beside the wall time, the CPU time each process spent (``/proc/PID/task/*/schedstat``): the root
(this process), the broker (the child of the launcher whose command line holds ``--token``) and
the workers (their pids come back with a first round of tasks; the pid namespace is shared by
every host of the namespace network, so /proc shows them all).

Prints ``MULTIHOST {json}`` lines (metric, unit, values, note); multihost.py names the layout.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_scale import cpu_seconds
from workloads import payload

from scoop import futures

MARK = "MULTIHOST "
#: At most this long per latency repeat (then the mean of the tasks done so far).
LATENCY_BUDGET_S = 5.0


def where(_: object = None) -> tuple[int, str]:
    """Which worker ran this: its pid and host name."""
    return os.getpid(), socket.gethostname()


def hold(seconds: float) -> tuple[int, str]:
    """``where``, after a pause: long enough that every worker takes some of a round."""
    time.sleep(seconds)
    return where()


def echo_where(data: bytes) -> tuple[int, bytes]:
    """The argument back, and the pid of the worker that ran it."""
    return os.getpid(), data


def emit(metric: str, unit: str, values: list[float], note: str) -> None:
    """One figure for multihost.py."""
    record = {"metric": metric, "unit": unit, "values": values, "note": note}
    print(MARK + json.dumps(record), flush=True)


def find_broker(token: str) -> int:
    """The broker's pid: the ``scoop._run broker`` child of the launcher started with ``token``."""
    launcher: int | None = None
    table: dict[int, tuple[int, list[bytes]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        table[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    for pid, (_, cmdline) in table.items():
        if token.encode() in cmdline and b"scoop_launch" in cmdline:
            launcher = pid
    children = [pid for pid, (parent, _) in table.items() if parent == launcher]
    for pid in children:
        cmdline = table[pid][1]
        if b"scoop._run" in cmdline and b"broker" in cmdline:
            return pid
    raise RuntimeError(f"no broker among the children of the launcher {launcher}")


def discover(count: int) -> dict[int, str]:
    """The workers' pids and hosts (rounds of short tasks until ``count`` were seen)."""
    seen: dict[int, str] = {}
    for _ in range(100):
        seen.update(futures.map(hold, [0.01] * 2 * count))
        if len(seen) >= count:
            return seen
    raise RuntimeError(f"only {len(seen)} of {count} workers ran a task: {seen}")


class Meter:
    """CPU seconds of the root, the broker and the workers between two readings."""

    def __init__(self, broker: int, workers: list[int]) -> None:
        self.pids = {"root": [os.getpid()], "broker": [broker], "workers": workers}

    def read(self) -> dict[str, float]:
        """CPU seconds so far, per part."""
        return {part: sum(cpu_seconds(pid) for pid in pids) for part, pids in self.pids.items()}

    def measure(self, fn: Callable[[], object]) -> tuple[float, dict[str, float]]:
        """Wall seconds of ``fn()`` and the CPU seconds each part spent meanwhile."""
        before = self.read()
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
        after = self.read()
        return wall, {part: after[part] - before[part] for part in after}


def tiny(meter: Meter, n: int, n_map: int, repeats: int) -> None:
    """Tiny tasks: ``n`` submit then result, a map of ``n_map``; tasks/s, CPU per task."""

    def submit() -> None:
        got = [f.result() for f in [futures.submit(operator.neg, i) for i in range(n)]]
        if got != [-i for i in range(n)]:
            raise AssertionError("submit: wrong results")

    def mapped() -> None:
        if list(futures.map(operator.neg, range(n_map))) != [-i for i in range(n_map)]:
            raise AssertionError("map: wrong results")

    for name, fn, count in (("submit", submit, n), ("map", mapped, n_map)):
        fn()  # warm-up
        runs = [meter.measure(fn) for _ in range(repeats)]
        note = f"n={count} operator.neg, every task on a worker"
        emit(f"{name} tasks/s", "tasks/s", [count / wall for wall, _ in runs], note)
        if name == "submit":
            for part in ("root", "broker", "workers"):
                values = [cpu[part] / n * 1e6 for _, cpu in runs]
                emit(f"submit: {part} CPU per task", "us", values, note)


def latency(meter: Meter, count: int, repeats: int) -> None:
    """One task at a time, each checked to have run on a worker; CPU per round trip."""
    me = os.getpid()
    hosts: set[str] = set()
    cut: list[int] = []

    def once() -> tuple[float, int]:
        start = time.perf_counter()
        done = 0
        while done < count:
            pid, host = futures.submit(where).result()
            if pid == me:
                raise AssertionError("latency: the task ran on the root")
            hosts.add(host)
            done += 1
            # A stalled run (seen once: 0.3 s a task) must not hold the whole benchmark.
            if done < count and time.perf_counter() - start > LATENCY_BUDGET_S:
                cut.append(done)
                break
        return (time.perf_counter() - start) / done * 1e6, done

    once()
    means, cpus = [], []
    for _ in range(repeats):
        result: list[tuple[float, int]] = []
        _, cpu = meter.measure(lambda result=result: result.append(once()))
        mean, done = result[0]
        means.append(mean)
        cpus.append({part: seconds / done * 1e6 for part, seconds in cpu.items()})
    ran = ", ".join(sorted(hosts))
    note = f"submit(where).result(), mean of {count}, tasks ran on {ran}"
    if cut:
        note += f"; STALLED: repeats cut after {LATENCY_BUDGET_S:g} s at {cut} tasks"
    emit("forced-remote latency", "us", means, note)
    for part in ("root", "broker", "workers"):
        emit(f"latency: {part} CPU per round trip", "us", [cpu[part] for cpu in cpus], note)


def transfer(meter: Meter, mib: int, repeats: int) -> None:
    """A ``mib`` MiB argument echoed back: throughput, and CPU per round trip."""
    data = payload(mib)
    me = os.getpid()

    def once() -> None:
        pid, back = futures.submit(echo_where, data).result()
        if pid == me or back != data:
            raise AssertionError("bytes: ran on the root, or the result differs")

    once()
    runs = [meter.measure(once) for _ in range(repeats)]
    note = f"{mib} MiB there and back (2x counted), on a worker"
    emit(f"{mib} MiB throughput", "GB/s", [2 * len(data) / wall / 1e9 for wall, _ in runs], note)
    for part in ("root", "broker", "workers"):
        values = [cpu[part] * 1e3 for _, cpu in runs]
        emit(f"{mib} MiB: {part} CPU per round trip", "ms", values, note)


def main() -> int:
    """Measure everything, in one launch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", required=True, help="on the launcher's command line")
    parser.add_argument("--workers", type=int, default=2, help="workers besides the root")
    parser.add_argument("--tiny", type=int, default=5000)
    parser.add_argument("--map-tasks", type=int, default=50000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    workers = discover(options.workers)
    meter = Meter(find_broker(options.token), sorted(workers))
    print(MARK + json.dumps({"root": socket.gethostname(), "workers": workers}), flush=True)
    tiny(meter, options.tiny, options.map_tasks, options.repeats)
    latency(meter, options.latency, options.repeats)
    transfer(meter, options.mib, options.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
