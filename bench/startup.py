"""Launcher start-to-first-result and whole-run time, over repeated runs.

Run: python bench/startup.py [--workers 2] [--repeats 7]
The script started by the launcher submits one task and prints its result; the time from
starting the launcher to reading that line is "first result", to the launcher's exit "whole run".
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT = """
from scoop import futures
import operator
if __name__ == "__main__":
    print("result", futures.submit(operator.neg, 1).result(), flush=True)
"""


def one_run(script: str, workers: int) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "scoop_launch", "-n", str(workers), script],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    first = time.perf_counter() - start
    assert line.strip() == "result -1", line
    assert process.wait(timeout=60) == 0
    return first, time.perf_counter() - start


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "one_task.py")
        with open(script, "w") as handle:
            handle.write(SCRIPT)
        one_run(script, options.workers)  # warm-up (disk caches)
        runs = [one_run(script, options.workers) for _ in range(options.repeats)]
    for label, values in (
        ("start to first result", [r[0] for r in runs]),
        ("whole run", [r[1] for r in runs]),
    ):
        print(
            f"-n {options.workers} {label:22} median {statistics.median(values):.3f} s "
            f"(min {min(values):.3f}, max {max(values):.3f})"
        )
