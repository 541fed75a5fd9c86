"""Ends while a worker is still in a long task: 20 short tasks, then one of 60 s not waited for."""

import time

from scoop import futures

if __name__ == "__main__":
    assert sum(futures.map(abs, range(20))) == sum(range(20))
    long = futures.submit(time.sleep, 60)
    futures.wait([long], timeout=1.0)  # (parked, not blocking: it goes to the worker meanwhile)
    print("ENDING", flush=True)
