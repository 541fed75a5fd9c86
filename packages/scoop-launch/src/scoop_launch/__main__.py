"""``python -m scoop_launch``; the ``scoop`` command and ``python -m scoop`` come here too."""

import sys

from scoop_launch._early import quiet_interrupts


def main(argv: list[str] | None = None) -> None:
    """Start the launcher: checks first, the root's process next, the rest of the launcher last.

    ``argv``: the command line's arguments (default ``sys.argv[1:]``).
    """
    quiet_interrupts()  # a Ctrl-C while the rest is imported must not print a traceback
    try:  # before anything else imports scoop: a mix with the original SCOOP is named
        from scoop._install_check import mixed_with_original
    except ImportError as exc:  # scoop-core's own __init__ found the mix, or scoop is missing
        sys.exit(f"scoop: {exc}")
    if (problem := mixed_with_original()) is not None:
        sys.exit(f"scoop: {problem}")

    # Before the rest of the launcher is imported: the root's process starts meanwhile.
    from scoop_launch import _prestart

    _prestart.start(sys.argv[1:] if argv is None else argv)

    from scoop_launch._cli import main as launch

    launch(argv)


if __name__ == "__main__":
    main()
