"""``python -m scoop_launch``."""

from scoop_launch._cli import main

main()
