"""Root script: reads its standard input to the end, maps over its words, prints what it got.

The first line is read with ``input()``, which starts before the root has joined (the launcher's
line with the broker's address is still to come on the same pipe): it must wait for that line
and then get the script's own input.
"""

import sys

from scoop import futures

if __name__ == "__main__":
    first = input() + "\n"
    data = first + sys.stdin.read()
    words = data.split()
    print(f"READ {len(data)} bytes, {len(words)} words, {sum(futures.map(len, words))} letters")
