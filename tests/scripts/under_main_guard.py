"""Root script: functions and classes defined only under the main guard, used by tasks.

Workers import the script without running its guarded block, so these must travel by value.
Prints ``GUARD OK <results> <workers that ran them>``.
"""

import functools

import scoop
from scoop import futures

if __name__ == "__main__":

    class Point:
        def __init__(self, x):
            self.x = x

    def double(point):
        return Point(point.x * 2), scoop.worker[1]

    def nested(x):
        return futures.submit(double, Point(x)).result()[0].x

    doubled = [futures.submit(double, Point(i)).result(timeout=60) for i in range(6)]
    mapped = list(futures.map(nested, range(6)))
    partial = futures.submit(functools.partial(double, Point(21))).result()[0].x
    lam = futures.submit(lambda: Point(5).x + 1).result()
    assert [p.x for p, _ in doubled] == [0, 2, 4, 6, 8, 10], doubled
    assert mapped == [0, 2, 4, 6, 8, 10] and partial == 42 and lam == 6
    workers = sorted({w for _, w in doubled})
    print(f"GUARD OK {mapped} {workers}", flush=True)
