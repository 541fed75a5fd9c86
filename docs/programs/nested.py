from scoop import futures


def fib(n):
    # Each call submits its two halves and waits for them: a tree of tasks.
    if n < 2:
        return n
    return sum(futures.map(fib, [n - 1, n - 2]))


def search(path, depth):
    # A tree search: each node submits its children; the first good leaf found wins.
    if depth == 0:
        return path if path.count("R") == 3 and path.endswith("L") else None
    children = [futures.submit(search, path + step, depth - 1) for step in "LR"]
    for child in futures.as_completed(children):
        if (found := child.result()) is not None:
            return found
    return None


if __name__ == "__main__":
    print(f"fib(15) = {fib(15)}")
    print(f"found: {search('', 4)}")
