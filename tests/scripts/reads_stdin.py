"""Root script: reads its standard input to the end, maps over its words, prints what it got."""

import sys

from scoop import futures

if __name__ == "__main__":
    data = sys.stdin.read()
    words = data.split()
    print(f"READ {len(data)} bytes, {len(words)} words, {sum(futures.map(len, words))} letters")
