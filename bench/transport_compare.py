"""Tiny-task throughput and one-task latency of SCOOP on each transport, side by side.

Run the comparison (it starts the launcher once per transport and prints one table):

    python bench/transport_compare.py [--transports zmq nng] [--tasks 20000] [--repeats 5] [-n 2]

Each run executes this file under the launcher with ``--child``, which measures:

* ``map``: tasks/s of ``futures.map`` over ``--tasks`` tiny tasks;
* ``submit``: tasks/s of ``submit`` then ``result`` over ``--tasks`` tiny tasks;
* ``one task``: time from ``submit`` on the root to the end of one tiny task that ran on
  another worker (the root is kept busy by a 5 ms task with two tiny ones queued behind it, so the
  older is handed away), with
  the share of tries where it did go to another worker (only those count). This is
  root -> broker -> worker, one way, plus the spill delay of the scheduler (1 ms poll);
  the clocks agree as all workers are on this host (perf_counter is system-wide on Linux);
* ``raw ping-pong``: round-trip time of one small message between a worker endpoint and a
  broker endpoint of the transport, in one process over loopback TCP (no scheduler, no pickling).

Figures are the median of ``--repeats`` runs, with min and max.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import statistics
import subprocess
import sys
import time

MARK = "TRANSPORT_COMPARE "


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _child(options: argparse.Namespace) -> None:
    import scoop
    from scoop import futures
    from scoop._plugins import choose_transport
    from scoop.transport import BindOptions, ConnectOptions

    n, repeats = options.tasks, options.repeats
    results: dict[str, object] = {}

    def rate(fn) -> dict[str, float]:
        fn(min(n, 1000))  # warm-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn(n)
            rates.append(n / (time.perf_counter() - start))
            assert out == [-i for i in range(n)]
        return _summary(rates)

    results["map"] = rate(lambda k: list(futures.map(operator.neg, range(k))))
    results["submit"] = rate(
        lambda k: [f.result() for f in [futures.submit(operator.neg, i) for i in range(k)]]
    )

    # One task handed to another worker: the root submits a task that keeps it busy for
    # BUSY_S, then the measured one; the surplus task is spilled to the broker and runs on an
    # idle worker. Only the samples that ran remotely count.
    me = scoop.worker
    samples, remote, tries = [], 0, 0
    for _ in range(repeats):
        times = []
        for _ in range(100):
            tries += 1
            busy = futures.submit(_spin, BUSY_S)
            start = time.perf_counter()
            measured = futures.submit(_where)
            spare = futures.submit(_where)  # the scheduler keeps one queued task for itself
            where, finished = measured.result()
            if where != me:
                remote += 1
                times.append(finished - start)
            busy.result()
            spare.result()
        if times:
            samples.append(statistics.median(times) * 1e6)
    results["one_task_us"] = _summary(samples) if samples else None
    results["one_task_remote_share"] = remote / tries

    # Raw endpoints of the transport in this process: small-message ping-pong.
    info = choose_transport(options.transport).info
    broker = info.bind(BindOptions())
    worker = info.connect(ConnectOptions(address=broker.address))
    try:
        worker.send([b"hi"])
        got = broker.recv(10)
        assert got is not None
        peer = got[0]
        rtts = []
        for _ in range(repeats):
            count = 2000
            start = time.perf_counter()
            for _ in range(count):
                worker.send([b"ping", b"x" * 64])
                got = broker.recv(10)
                assert got is not None
                broker.send(peer, got[1])
                assert worker.recv(10) is not None
            rtts.append((time.perf_counter() - start) / count * 1e6)
        results["raw_pingpong_us"] = _summary(rtts)
    finally:
        worker.close()
        broker.close()
    print(MARK + json.dumps(results), flush=True)


BUSY_S = 0.005


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _where() -> tuple[object, float]:
    import scoop

    return scoop.worker, time.perf_counter()


def _run(transport: str, options: argparse.Namespace) -> dict[str, object]:
    command = [
        sys.executable,
        "-m",
        "scoop_launch",
        "--transport",
        transport,
        "-n",
        str(options.workers),
        os.path.abspath(__file__),
        "--child",
        "--transport",
        transport,
        "--tasks",
        str(options.tasks),
        "--repeats",
        str(options.repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            result: dict[str, object] = json.loads(line[len(MARK) :])
            return result
    raise SystemExit(f"{transport}: no result (exit {done.returncode})\n{done.stderr[-3000:]}")


def _cell(value: object, unit: str) -> str:
    if value is None:
        return "n/a"
    assert isinstance(value, dict)
    return f"{value['median']:,.0f} {unit} ({value['min']:,.0f}..{value['max']:,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--transport", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--transports", nargs="+", default=["zmq", "nng"])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-n", "--workers", type=int, default=2)
    options = parser.parse_args()
    if options.child:
        _child(options)
        return
    rows = {name: _run(name, options) for name in options.transports}
    print(
        f"SCOOP transports, -n {options.workers}, {options.tasks} tasks, "
        f"median (min..max) of {options.repeats} repeats"
    )
    header = f"{'transport':10} {'futures.map':>30} {'submit + result':>30} "
    header += f"{'one task (remote share)':>34} {'raw ping-pong':>26}"
    print(header)
    for name, r in rows.items():
        share = r["one_task_remote_share"]
        assert isinstance(share, float)
        print(
            f"{name:10} {_cell(r['map'], 'tasks/s'):>30} {_cell(r['submit'], 'tasks/s'):>30} "
            f"{_cell(r['one_task_us'], 'us') + f' ({share:.0%})':>34} "
            f"{_cell(r['raw_pingpong_us'], 'us'):>26}"
        )


if __name__ == "__main__":
    main()
