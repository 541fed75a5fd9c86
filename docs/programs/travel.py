import threading

from scoop import futures
from scoop.errors import SerializationError


class Counter:
    def __init__(self, start):
        self.start = start

    def add(self, x):
        return self.start + x


def run(f, x):
    return f(x)


if __name__ == "__main__":
    offset = 100
    print(futures.submit(run, lambda x: x + offset, 1).result())  # a closure
    print(futures.submit(Counter(10).add, 5).result())  # a bound method
    print(list(futures.map(run, [abs, str], [-2, 3])))  # builtins, by name

    # What cannot be pickled fails at once, in the caller, naming the object.
    try:
        futures.submit(run, print, threading.Lock())
    except SerializationError:
        print("SerializationError raised by submit")
