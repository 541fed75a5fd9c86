"""dask.distributed's side: LocalCluster(n_workers=2, threads_per_worker=1, processes=True).

    python bench/run_dask.py --workload submit --mode quick

Prints ``BENCH {json}`` lines (see workloads.py). The tree uses ``worker_client`` (a task that
waits on subtasks secedes from its worker's thread pool); the shared constant is
``client.scatter(value, broadcast=True)``, the way dask shares one object with every worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as w

SYSTEM = "dask"


# ------------------------------------------------------------------ the tree, worker_client


def func4(m: int) -> int:
    return m * m


def func3(j: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return sum(client.gather(client.map(func4, [i + 1 for i in range(j)], pure=False)))


def func2(k: int) -> int:
    from distributed import as_completed, worker_client

    with worker_client() as client:
        launches = [client.submit(func3, i + 1, pure=False) for i in range(k)]
        return sum(f.result() for f in as_completed(launches))


def func1(n: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return sum(client.gather(client.map(func2, [i + 1 for i in range(n)], pure=False)))


def func0(n: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return client.submit(func1, n, pure=False).result()


def use_const(i: int, value: bytes) -> tuple[int, int]:
    w.spin(0.0005)
    return os.getpid(), value[i % len(value)]


# --------------------------------------------------------------------------- workloads


def bench_submit(client: Any, size: dict[str, int]) -> None:
    n = size["tiny_dask"]

    def once() -> float:
        start = time.perf_counter()
        fs = [client.submit(w.neg, i, pure=False) for i in range(n)]
        results = [f.result() for f in fs]
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    w.emit("submit", SYSTEM, "tasks/s", "tasks/s", w.repeat(once, size["repeats"]), f"n={n}")


def bench_map(client: Any, size: dict[str, int]) -> None:
    n = size["tiny_dask"]

    def once() -> float:
        start = time.perf_counter()
        results = client.gather(client.map(w.neg, range(n), pure=False))
        elapsed = time.perf_counter() - start
        w.check_tiny(results, n)
        return n / elapsed

    w.emit(
        "map",
        SYSTEM,
        "tasks/s",
        "tasks/s",
        w.repeat(once, size["repeats"]),
        f"n={n}, client.map + gather",
    )


def bench_latency(client: Any, size: dict[str, int]) -> None:
    count = size["latency"]

    def once() -> float:
        start = time.perf_counter()
        for i in range(count):
            if client.submit(w.neg, i, pure=False).result() != -i:
                raise AssertionError("latency: wrong result")
        return (time.perf_counter() - start) / count * 1e6

    w.emit(
        "latency",
        SYSTEM,
        "latency",
        "us",
        w.repeat(once, size["repeats"]),
        f"submit(neg).result(), mean of {count}",
    )


def bench_tree(client: Any, size: dict[str, int]) -> None:
    n = size["tree"]
    expected = w.tree_expected(n)

    def once() -> float:
        start = time.perf_counter()
        result = client.submit(func0, n, pure=False).result()
        elapsed = time.perf_counter() - start
        if result != expected:
            raise AssertionError(f"tree: {result} != {expected}")
        return elapsed

    w.emit(
        "tree",
        SYSTEM,
        "wall time",
        "s",
        w.repeat(once, size["repeats"]),
        f"{w.tree_tasks(n)} tasks, worker_client",
    )


def bench_lognormal(client: Any, size: dict[str, int]) -> None:
    durations = w.lognormal_durations(size["lognormal"])

    def once() -> float:
        start = time.perf_counter()
        took = client.gather(client.map(w.spin, durations, pure=False))
        wall = time.perf_counter() - start
        return sum(took) / (w.WORKERS * wall)

    w.emit(
        "lognormal",
        SYSTEM,
        "efficiency",
        "",
        w.repeat(once, size["repeats"]),
        f"{len(durations)} tasks, client.map",
    )


def bench_bytes(client: Any, size: dict[str, int]) -> None:
    data = w.payload(size["bytes_mib"])

    def once() -> float:
        start = time.perf_counter()
        back = client.submit(w.echo, data, pure=False).result()
        elapsed = time.perf_counter() - start
        if back != data:
            raise AssertionError("bytes: the result differs from the argument")
        return 2 * len(data) / elapsed / 1e9

    w.emit(
        "bytes",
        SYSTEM,
        "throughput",
        "GB/s",
        w.repeat(once, size["repeats"]),
        f"{size['bytes_mib']} MiB there and back (2x counted); client.submit(echo, data)",
    )


def bench_shared(client: Any, size: dict[str, int]) -> None:
    data = w.payload(size["shared_mb"] * 1e6 / w.MiB)
    tasks = size["shared_tasks"]
    pids = set(client.run(os.getpid).values())
    ratios = []
    detail: dict[str, int] = {}
    for index in range(size["repeats"] + 1):
        before = w.tcp_bytes_by_pid()
        const = client.scatter(data, broadcast=True)
        got = client.gather(client.map(use_const, range(tasks), value=const, pure=False))
        after = w.tcp_bytes_by_pid()
        if [b for _, b in got] != [data[i % len(data)] for i in range(tasks)]:
            raise AssertionError("shared: wrong bytes of the constant")
        received = w.received_delta(before, after, pids)
        del const
        if index:
            ratios.append(max(received.values()) / len(data))
            detail = {str(pid): received[pid] for pid in sorted(received)}
    w.emit(
        "shared",
        SYSTEM,
        "received per worker",
        "x constant",
        ratios,
        f"{size['shared_mb']} MB constant via scatter(broadcast=True), {tasks} tasks; max over "
        "the workers of TCP bytes received (ss, tcp_info) / constant size",
        per_pid=detail,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--mode", default="full", choices=sorted(w.SIZES))
    options = parser.parse_args()
    size, workload = w.sizes(options.mode), options.workload
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = LocalCluster(
        n_workers=w.WORKERS,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        benches = {
            "submit": bench_submit,
            "map": bench_map,
            "latency": bench_latency,
            "tree": bench_tree,
            "lognormal": bench_lognormal,
            "bytes": bench_bytes,
            "shared": bench_shared,
        }
        if workload == "startup":
            print("FIRST", client.submit(w.neg, 1).result(), flush=True)
        elif workload in benches:
            benches[workload](client, size)
        else:
            raise SystemExit(f"run_dask.py: unknown workload {workload!r}")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
