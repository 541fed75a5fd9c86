"""dask.distributed's side: LocalCluster(n_workers=2, threads_per_worker=1, processes=True).

    python bench/run_dask.py --workload submit --mode quick

Prints ``BENCH {json}`` lines (see workloads.py). The tree uses ``worker_client`` (a task that
waits on subtasks secedes from its worker's thread pool); the shared constant is
``client.scatter(value, broadcast=True)``, the way dask shares one object with every worker.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import runner
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


# --------------------------------------------------------------------------- the peer


class DaskPeer(runner.Peer):
    """A LocalCluster of 2 worker processes, 1 thread each, and its client."""

    system = SYSTEM
    tiny = "tiny_dask"
    how = {
        "map": "client.map + gather",
        "tree": "worker_client",
        "lognormal": "client.map",
        "bytes": "client.submit(echo, data)",
    }

    def __init__(self, system: str) -> None:
        self.cluster: Any = None
        self.client: Any = None

    def start(self) -> None:
        import logging

        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.cluster = LocalCluster(
            n_workers=w.WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)

    def submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def results(self, handles: Any) -> list[Any]:
        return list(self.client.gather(handles))

    def map(self, fn: Any, items: Any) -> list[Any]:
        return list(self.client.gather(self.client.map(fn, list(items), pure=False)))

    def tree(self, n: int) -> int:
        return int(self.client.submit(func0, n, pure=False).result())

    def own(self) -> dict[str, runner.Bench]:
        return {"shared": bench_shared}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.cluster.close()


def bench_shared(peer: runner.Peer, size: dict[str, int]) -> None:
    """The constant scattered to every worker, then read by ``shared_tasks`` tasks."""
    assert isinstance(peer, DaskPeer)
    client = peer.client
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


if __name__ == "__main__":
    runner.main(DaskPeer, (SYSTEM,), "run_dask.py")
