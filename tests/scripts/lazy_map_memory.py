"""Root script: a map over a generator of many items keeps the root's memory bounded.

Prints ``GREW <MiB> FOR <n> ITEMS``: how much the root's peak memory grew over the map.
"""

import resource
import sys

from scoop import futures


def double(x):
    return 2 * x


if __name__ == "__main__":
    count = int(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = sum(futures.map(double, (i for i in range(count))))
    assert total == count * (count - 1), total
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"GREW {grew:.0f} MiB FOR {count} ITEMS", flush=True)
