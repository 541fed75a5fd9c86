import time
from concurrent.futures import TimeoutError

from scoop import futures


def check(x):
    if x < 0:
        raise ValueError(f"negative input: {x}")
    return x


def slow(seconds):
    time.sleep(seconds)
    return seconds


if __name__ == "__main__":
    # A task's exception reaches its waiter with its own type and message.
    try:
        futures.submit(check, -1).result()
    except ValueError as exc:
        print(f"caught ValueError: {exc}")
        # When it ran on another worker, exc.__cause__ is a scoop.errors.RemoteTraceback.

    # In a map, the error is raised when the map reaches the failed item.
    results = futures.map(check, [1, 2, -3, 4])
    print(next(results), next(results))
    try:
        next(results)
    except ValueError as exc:
        print(f"third item: {exc}")

    # exception() returns it instead of raising; the worker goes on serving tasks.
    print(repr(futures.submit(check, -5).exception()))

    # A timeout raises concurrent.futures.TimeoutError; the task keeps running.
    future = futures.submit(slow, 1.0)
    try:
        future.result(timeout=0.1)
    except TimeoutError:
        print("not ready after 0.1 s")
    print(f"done later: {future.result()}")
