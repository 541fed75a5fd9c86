"""A dynamic task tree: tasks that submit tasks, four levels deep.

Run with::

    python -m scoop_launch -n 4 examples/full_tree.py [BRANCHING]

Every node of the tree is a task. Level 1 uses ``futures.map``, level 2 ``futures.submit``,
level 3 ``futures.as_completed`` and level 4 are leaves. A task waiting on its children does not
block its worker: the worker runs other tasks (often the children) meanwhile, so a tree of any
depth runs on a fixed number of workers.

With branching factor ``b`` there are ``b**4`` leaves; leaf ``i`` contributes ``i``, so the total
is ``sum(range(b**4))``, which the script checks and prints.
"""

import sys

from scoop import futures


def leaf(index):
    """Level 4: a leaf returns its own index."""
    return index


def level3(base, branching):
    """Level 3: submit the leaves, add them up in completion order."""
    children = [futures.submit(leaf, base + i) for i in range(branching)]
    return sum(f.result() for f in futures.as_completed(children))


def level2(base, branching):
    """Level 2: submit one level-3 task per child, each given its range of leaves."""
    children = [futures.submit(level3, base + i * branching, branching) for i in range(branching)]
    return sum(f.result() for f in children)


def level1(base, branching):
    """Level 1: one level-2 task per child through ``futures.map``."""
    size = branching * branching
    bases = [base + i * size for i in range(branching)]
    return sum(futures.map(level2, bases, [branching] * branching))


def root(branching):
    """The tree's root task: one level-1 task per child."""
    size = branching**3
    bases = [i * size for i in range(branching)]
    return sum(futures.map(level1, bases, [branching] * branching))


if __name__ == "__main__":
    branching = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    total = futures.submit(root, branching).result()
    leaves = branching**4
    expected = leaves * (leaves - 1) // 2
    assert total == expected, (total, expected)
    print(f"full_tree: {leaves} leaves, total = {total}")
