"""``python -m scoop``: the original SCOOP's command, for the batch scripts that use it.

It runs the launcher (``python -m scoop_launch``, the same options) when scoop-launch is
installed, and otherwise says how to get it: scoop-core alone cannot start processes.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the launcher, or explain that it is missing."""
    try:
        from scoop_launch.__main__ import main as launch
    except ImportError:
        print(
            "python -m scoop starts workers with the launcher, which is not installed: "
            "pip install scoop-launch (then python -m scoop and python -m scoop_launch both work)",
            file=sys.stderr,
        )
        sys.exit(2)
    launch()


if __name__ == "__main__":
    main()
