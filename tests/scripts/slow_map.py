"""A map that takes a second or two: ``slow_map.py N`` maps N items of 50 ms, prints their sum."""

import sys
import time

from scoop import futures


def work(x):
    time.sleep(0.05)
    return x


if __name__ == "__main__":
    count = int(sys.argv[1])
    print("SUM", sum(futures.map(work, range(count))), flush=True)
