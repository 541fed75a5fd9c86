"""Run with a sitecustomize that delays the root's join (see test_launcher_lifecycle.py): the
other worker asks for work before the root joins. Work submitted later should still spread."""

import time

import scoop
from scoop import futures


def work(_):
    time.sleep(0.005)
    return scoop.worker[1]


if __name__ == "__main__":
    workers = set(futures.map(work, range(200)))
    print(f"workers used: {sorted(workers)}", flush=True)
