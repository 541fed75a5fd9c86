"""Root script: instances of classes rebuilt by name wherever they are unpickled (DEAP's creator
does so, here ``_rebuilt``) travel both ways, while the tasks' functions are the script's own.

Once instances came back, the root's helper module names a new class, not the one of the
root's first instances: those must still travel. Prints ``REBUILT OK <sum> <workers>``.
"""

import _rebuilt

import scoop
from scoop import futures

_rebuilt.create("Individual", list)


def evaluate(individual):
    return sum(individual), scoop.worker[1]


def mutate(individual):
    return type(individual)(bit ^ 1 for bit in individual)


if __name__ == "__main__":
    # 256 items: 8 a chunk, so that the function travels in each task with the items
    population = [_rebuilt.Individual([i % 2, 1, 0]) for i in range(256)]
    mutated = list(futures.map(mutate, population))  # back on the root: a new class
    assert type(population[0]) is not _rebuilt.Individual
    scores = list(futures.map(evaluate, population + mutated))
    print("REBUILT OK", sum(s for s, _ in scores), sorted({w for _, w in scores}), flush=True)
