"""Estimate pi by Monte Carlo: throw N random points in the unit square, in parallel chunks.

Run with::

    python -m scoop_launch -n 4 examples/monte_carlo_pi.py [SAMPLES] [CHUNKS] [SEED]

Each chunk has its own random generator, seeded from the run's seed and the chunk's number, so
the estimate depends only on the arguments, never on how many workers ran the chunks or which.
"""

import random
import sys

from scoop import futures


def hits(seed, chunk, samples):
    """Count the points of one chunk that fall inside the quarter circle."""
    rng = random.Random(f"{seed}-{chunk}")
    inside = 0
    for _ in range(samples):
        x = rng.random()
        y = rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    return inside


def estimate(samples, chunks, seed):
    """Split ``samples`` into ``chunks`` tasks and estimate pi from the hits."""
    sizes = [samples // chunks + (1 if i < samples % chunks else 0) for i in range(chunks)]
    inside = futures.mapReduce(hits, lambda a, b: a + b, [seed] * chunks, range(chunks), sizes)
    return 4.0 * inside / samples


if __name__ == "__main__":
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    pi = estimate(samples, chunks, seed)
    assert abs(pi - 3.14159) < 0.05, pi
    print(f"monte_carlo_pi: samples={samples} chunks={chunks} seed={seed} pi~{pi:.6f}")
