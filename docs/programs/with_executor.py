import concurrent.futures

import scoop
from scoop import futures


def square(x):
    return x * x


def tree(depth):
    # Tasks may use scoop.futures, as under the launcher.
    if depth == 0:
        return 1
    return sum(futures.map(tree, [depth - 1] * 2))


if __name__ == "__main__":
    with scoop.Executor(2) as executor:  # a broker and 2 workers, started here
        print(f"{executor.workers} workers")
        print(list(executor.map(square, range(10))))
        print(executor.submit(tree, 5).result())
        # Its futures are concurrent.futures futures.
        fs = [executor.submit(square, i) for i in range(4)]
        done, _ = concurrent.futures.wait(fs)
        print(sorted(f.result() for f in done))
        # While it is open, scoop.futures in this process runs on it too.
        print(list(futures.map(square, range(3))))
    print("closed")
