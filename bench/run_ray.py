"""Ray's side: a local Ray of 2 CPUs (no dashboard, usage stats off), tasks with ``@ray.remote``.

    python bench/run_ray.py --workload submit --mode quick

Prints ``BENCH {json}`` lines (see workloads.py) through the runner skeleton (runner.py). Each
call is a Ray task (``ray.remote(fn).remote(...)``, results by ``ray.get``, a list of them in
one ``ray.get`` as Ray's docs advise); the tree's tasks wait on their subtasks with ``ray.get``
and ``ray.wait`` (Ray lends a blocked task's CPU to its children); the shared constant is put
once in the object store (``ray.put``) and passed by reference. Ray keeps objects in shared
memory on one machine, so TCP bytes say nothing of it: the shared figure is the wall time of
its tasks, beside SCOOP's.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import runner
import workloads as w

SYSTEM = "ray"


# ------------------------------------------------------------------ the tree, nested tasks


def func4(m: int) -> int:
    return m * m


def func3(j: int) -> int:
    import ray

    return sum(ray.get([_remote(func4).remote(i + 1) for i in range(j)]))


def func2(k: int) -> int:
    import ray

    pending = [_remote(func3).remote(i + 1) for i in range(k)]
    total = 0
    while pending:  # as_completed
        done, pending = ray.wait(pending, num_returns=1)
        total += ray.get(done[0])
    return total


def func1(n: int) -> int:
    import ray

    return sum(ray.get([_remote(func2).remote(i + 1) for i in range(n)]))


def func0(n: int) -> int:
    import ray

    return int(ray.get(_remote(func1).remote(n)))


_REMOTE: dict[Callable[..., Any], Any] = {}


def _remote(fn: Callable[..., Any]) -> Any:
    """``ray.remote(fn)``, made once per function and process."""
    made = _REMOTE.get(fn)
    if made is None:
        import ray

        target = fn
        if not inspect.isfunction(fn):  # ray.remote takes Python functions only (not neg)

            def target(*args: Any) -> Any:
                return fn(*args)

        made = _REMOTE[fn] = ray.remote(target)
    return made


def use_const(i: int, value: bytes) -> tuple[int, int]:
    w.spin(0.0005)
    return os.getpid(), value[i % len(value)]


# --------------------------------------------------------------------------- the peer


class RayPeer(runner.Peer):
    """Ray on this machine: ``ray.init(num_cpus=2)``."""

    system = SYSTEM
    tiny = "tiny_dask"  # about 2000 tasks/s here, as slow per task as dask: fewer tasks
    how = {
        "submit": "f.remote() each, one ray.get of the list",
        "map": "[f.remote(x) for x], one ray.get",
        "latency": "ray.get(f.remote(i)); always runs in a worker process",
        "tree": "ray.get / ray.wait inside tasks",
        "bytes": "ray.get(echo.remote(data)); the object store holds both copies",
    }

    def __init__(self, system: str) -> None:
        self.ray: Any = None
        self.temp_dir = ""

    def start(self) -> None:
        import ray

        # A short directory of its own: Ray puts unix sockets under it, whose paths may not
        # exceed 107 bytes, and under nox's long $TMPDIR it waits forever for its workers.
        self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
        ray.init(
            num_cpus=w.WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            _temp_dir=self.temp_dir,
        )
        self.ray = ray

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return _remote(fn).remote(*args)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def results(self, handles: Any) -> list[Any]:
        return list(self.ray.get(list(handles)))

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        task = _remote(fn)
        return list(self.ray.get([task.remote(item) for item in items]))

    def tree(self, n: int) -> int:
        return int(self.ray.get(_remote(func0).remote(n)))

    def own(self) -> dict[str, runner.Bench]:
        return {"shared": bench_shared}

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def bench_shared(peer: runner.Peer, size: dict[str, int]) -> None:
    """The constant put once in the object store, read by ``shared_tasks`` tasks: wall time."""
    assert isinstance(peer, RayPeer)
    ray = peer.ray
    data = w.payload(size["shared_mb"] * 1e6 / w.MiB)
    tasks = size["shared_tasks"]
    task = _remote(use_const)

    def once() -> float:
        start = time.perf_counter()
        const = ray.put(data)
        got = ray.get([task.remote(i, const) for i in range(tasks)])
        elapsed = time.perf_counter() - start
        if [b for _, b in got] != [data[i % len(data)] for i in range(tasks)]:
            raise AssertionError("shared: wrong bytes of the constant")
        del const
        return elapsed

    w.emit(
        "shared",
        SYSTEM,
        "wall time",
        "s",
        w.repeat(once, size["repeats"]),
        f"{size['shared_mb']} MB constant via ray.put, {tasks} tasks of 0.5 ms taking it by "
        "reference; from the put to the last result",
    )


if __name__ == "__main__":
    runner.main(RayPeer, (SYSTEM,), "run_ray.py")
