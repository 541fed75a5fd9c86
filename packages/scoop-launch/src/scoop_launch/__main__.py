"""``python -m scoop_launch``."""

# First: a Ctrl-C while the rest is imported must not print a traceback.
from scoop_launch._early import quiet_interrupts

quiet_interrupts()

import sys  # noqa: E402

try:  # before anything else imports scoop: a mix with the original SCOOP is named, not a symptom
    from scoop._install_check import mixed_with_original
except ImportError as exc:  # scoop-core's own __init__ found the mix, or scoop is missing
    sys.exit(f"scoop: {exc}")

if (problem := mixed_with_original()) is not None:
    sys.exit(f"scoop: {problem}")

# Before the rest of the launcher is imported: the root's process starts meanwhile.
from scoop_launch import _prestart  # noqa: E402

_prestart.start(sys.argv[1:])

from scoop_launch._cli import main  # noqa: E402

main()
