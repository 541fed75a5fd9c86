import operator

from scoop import futures, shared


def square(x):
    return x * x


def scaled(x):
    return x * shared.getConst("factor")


if __name__ == "__main__":
    # map: results in the order of the inputs
    print(list(futures.map(square, range(10))))

    # submit: one call, one Future
    future = futures.submit(square, 7)
    print(future.result(timeout=10))

    # wait and as_completed, as in concurrent.futures
    fs = [futures.submit(square, i) for i in range(5)]
    done, not_done = futures.wait(fs, return_when=futures.ALL_COMPLETED)
    print(len(done), len(not_done))
    print(sorted(f.result() for f in futures.as_completed(fs)))

    # map and reduce, and every prefix reduction
    print(futures.mapReduce(square, operator.add, range(10)))
    print(futures.mapScan(square, operator.add, [1, 2, 3]))

    # a shared constant: sent once to each worker, read by every task
    shared.setConst(factor=3)
    print(list(futures.map(scaled, [1, 2, 3])))
