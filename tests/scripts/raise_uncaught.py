"""Let a task's exception go uncaught: ``raise_uncaught.py remote|local``.

``remote``: many tasks raise; the root re-raises one that came from another worker if there is
one (else the first). ``local``: the root's own code raises.
"""

import sys
import time

import scoop
from scoop import futures
from scoop.errors import RemoteTraceback


def remote_boom_function(i):
    time.sleep(0.005)
    raise ValueError(f"boom number {i} on worker {scoop.worker[1]}")


def local_boom_function():
    raise RuntimeError("the root script failed")


if __name__ == "__main__":
    if sys.argv[1] == "local":
        local_boom_function()
    fs = [futures.submit(remote_boom_function, i) for i in range(80)]
    failed = [f for f in futures.as_completed(fs)]
    remote = [f for f in failed if isinstance(f.exception().__cause__, RemoteTraceback)]
    print(f"remote failures: {len(remote)}", flush=True)
    (remote or failed)[0].result()
