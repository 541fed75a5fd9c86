"""OneMax with DEAP on SCOOP: evolve bit strings towards all ones.

Run with: python -m scoop_launch onemax.py [GENERATIONS]
"""

import random
import sys

from deap import algorithms, base, creator, tools

from scoop import futures

BITS = 100
POPULATION = 200

# Classes made by creator must exist on every worker: define them at the top level, where the
# workers (which import this script) make them too.
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", list, fitness=creator.FitnessMax)


def evaluate(individual):
    # The costly part of a real problem goes here; it runs on the workers.
    return (sum(individual),)


toolbox = base.Toolbox()
toolbox.register("attr_bool", random.randint, 0, 1)
toolbox.register("individual", tools.initRepeat, creator.Individual, toolbox.attr_bool, BITS)
toolbox.register("population", tools.initRepeat, list, toolbox.individual)
toolbox.register("evaluate", evaluate)
toolbox.register("mate", tools.cxTwoPoint)
toolbox.register("mutate", tools.mutFlipBit, indpb=0.05)
toolbox.register("select", tools.selTournament, tournsize=3)
# The one line that makes it parallel: evaluations go through SCOOP's map.
toolbox.register("map", futures.map)


if __name__ == "__main__":
    generations = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    random.seed(64)  # all the randomness is in the root: a seed makes the run repeatable
    population = toolbox.population(n=POPULATION)
    hall_of_fame = tools.HallOfFame(1)
    population, log = algorithms.eaSimple(
        population,
        toolbox,
        cxpb=0.5,
        mutpb=0.2,
        ngen=generations,
        halloffame=hall_of_fame,
        verbose=False,
    )
    best = hall_of_fame[0]
    print(f"generations: {generations}, evaluations: {sum(log.select('nevals'))}")
    print(f"best individual: {sum(best)} ones of {BITS}")
