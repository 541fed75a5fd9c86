"""A script that forgot the ``if __name__ == "__main__":`` guard."""

from scoop import futures


def square(x):
    return x * x


print(sum(futures.map(square, range(10))))
