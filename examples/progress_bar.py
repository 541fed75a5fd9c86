"""A progress bar over a map: tqdm counts results as they arrive from the workers.

Run: python -m scoop_launch -n 4 examples/progress_bar.py      (needs: pip install tqdm)

``futures.map_as_completed`` yields each result as soon as its task is done, so the bar moves as
work finishes anywhere in the run; ``total=`` gives tqdm the length it cannot see in a map.
"""

import time

from tqdm import tqdm

from scoop import futures


def simulate(seed):
    time.sleep(0.01)  # stands for real work
    return seed * seed


if __name__ == "__main__":
    items = range(200)
    total = 0
    for value in tqdm(futures.map_as_completed(simulate, items), total=len(items), unit="task"):
        total += value
    print(f"progress_bar: 200 results, sum = {total}")
