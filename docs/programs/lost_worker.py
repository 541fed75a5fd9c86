import os
import time
from pathlib import Path

import scoop
from scoop import futures
from scoop.errors import KilledWorkerError

MARK = Path("crashed-once")


def fragile(x):
    # The first time it runs away from the root, this task kills its worker (as a segfault
    # or the out-of-memory killer would). The run goes on; the task runs again elsewhere.
    if x == 3 and scoop.worker[1] != 0 and not MARK.exists():
        MARK.touch()
        os._exit(1)
    time.sleep(0.05)
    return x * 10


def doomed(x):
    # This one kills every worker it is given to.
    if scoop.worker[1] != 0:
        os._exit(1)
    return x


if __name__ == "__main__":
    MARK.unlink(missing_ok=True)
    print(list(futures.map(fragile, range(8))))
    try:
        futures.submit(doomed, 1).result()
    except KilledWorkerError:
        print("doomed: KilledWorkerError")
