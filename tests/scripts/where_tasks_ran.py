"""Root script for the multi-host tests: reports where tasks ran, or exits, raises, or hangs.

Modes (argv[1]): ``env`` reports, per host, what the remote options set (prolog variable,
working directory, niceness, first PYTHONPATH entry) and GLIBC_TUNABLES; ``where`` (default)
maps until every worker has run a task, then prints
``WHERE {"root": host, "hosts": {host: [worker indices]}, "steps": {host: ["ID NODES cpus=K"]}}``
(the SLURM job step of each host's workers, "None None" outside one, and the number of CPUs
each may run on); ``exit K``;
``raise``; ``hang`` (every worker busy in a blocking task; prints ``started``); ``vanish`` (a
task on a worker other than the root ends its process with ``os._exit(0)``). ``hang`` and
``vanish`` first wait, as ``where`` does, until every worker has run a task; ``long K`` (150
tasks per worker; prints ``started`` once K hosts have run one, ``DONE n HOSTS [...]`` once all
are in).
"""

import json
import os
import socket
import sys
import time

import scoop
from scoop import futures


def where(_):
    time.sleep(0.02)  # blocking, so that idle workers ask for the rest
    # Under SLURM: the job step the worker runs in (srun sets these; the batch step does not).
    step = f"{os.environ.get('SLURM_STEP_ID')} {os.environ.get('SLURM_STEP_NODELIST')}"
    step += f" cpus={len(os.sched_getaffinity(0))}"  # the CPUs it may run on
    return socket.gethostname(), scoop.worker[1], step


def environment(_):
    time.sleep(0.02)
    return (
        socket.gethostname(),
        os.environ.get("SCOOP_TEST_PROLOG"),
        os.getcwd(),
        os.nice(0),
        os.environ.get("PYTHONPATH", "").split(os.pathsep)[0],
        os.environ.get("GLIBC_TUNABLES"),
    )


def vanish(i):
    time.sleep(0.02)
    if scoop.worker[1] != 0:
        os._exit(0)  # a clean exit status, yet the worker's tasks are lost
    return i


def forever(_):
    while True:
        time.sleep(0.1)


def until_every_worker_ran_one():
    """Map until every worker has run a task: the root's script starts before the others join.

    Returns the worker indices seen on each host, and the job steps they ran in.
    """
    seen: dict[str, set[int]] = {}
    steps: dict[str, set[str]] = {}
    for _ in range(50):
        for host, index, step in futures.map(where, range(scoop.SIZE * 4)):
            seen.setdefault(host, set()).add(index)
            steps.setdefault(host, set()).add(step)
        if sum(len(v) for v in seen.values()) == scoop.SIZE:
            break
    return seen, steps


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "where"
    if mode == "where":
        seen, steps = until_every_worker_ran_one()
        report = {
            "root": socket.gethostname(),
            "hosts": {h: sorted(v) for h, v in seen.items()},
            "steps": {h: sorted(v) for h, v in steps.items()},
        }
        print("WHERE " + json.dumps(report), flush=True)
    elif mode == "env":
        report = {}
        for _ in range(50):
            for host, *facts in futures.map(environment, range(scoop.SIZE * 4)):
                report[host] = facts
            if len(report) > 1:
                break
        print("ENV " + json.dumps(report), flush=True)
    elif mode == "exit":
        sys.exit(int(sys.argv[2]))
    elif mode == "raise":
        futures.submit(where, 0).result()
        raise RuntimeError("failing on purpose")
    elif mode == "vanish":
        until_every_worker_ran_one()
        print(sum(futures.map(vanish, range(scoop.SIZE * 20))))
    elif mode == "long":
        hosts_seen: set[str] = set()
        expected_hosts = int(sys.argv[2])
        count = 0
        for host, _, _ in futures.map_as_completed(where, range(scoop.SIZE * 150)):
            count += 1
            if len(hosts_seen) < expected_hosts:
                hosts_seen.add(host)
                if len(hosts_seen) == expected_hosts:
                    print("started", flush=True)
            hosts_seen.add(host)
        print(f"DONE {count} HOSTS {json.dumps(sorted(hosts_seen))}", flush=True)
    elif mode == "hang":
        until_every_worker_ran_one()
        pending = [futures.submit(forever, i) for i in range(scoop.SIZE * 2)]
        print("started", flush=True)
        futures.wait(pending)
