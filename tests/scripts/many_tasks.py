"""``many_tasks.py N``: N tiny submitted tasks (not batched), for records of some size."""

import sys

from scoop import futures

if __name__ == "__main__":
    count = int(sys.argv[1])
    fs = [futures.submit(abs, -i) for i in range(count)]
    print("SUM", sum(f.result() for f in fs), flush=True)
