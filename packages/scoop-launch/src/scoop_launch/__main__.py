"""``python -m scoop_launch``."""

import sys

# Before anything imports scoop: with the original SCOOP's __init__ in the same folder, the
# error would otherwise name neither.
try:
    from scoop._install_check import mixed_with_original
except ImportError as exc:  # scoop-core's own __init__ found the mix, or scoop is missing
    sys.exit(f"scoop: {exc}")

if (problem := mixed_with_original()) is not None:
    sys.exit(f"scoop: {problem}")

from scoop_launch._cli import main

main()
