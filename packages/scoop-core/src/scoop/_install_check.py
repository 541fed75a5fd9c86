"""Whether the original SCOOP (0.7) is installed in the same ``scoop/`` folder as scoop-core.

Both distributions install a package named ``scoop``; installing one over the other mixes their
files in one folder (whichever ``__init__.py`` came last wins) and breaks both, in ways that
name neither. This module is stdlib-only and imports nothing of ``scoop``, so that scoop-core's
``__init__`` and the launcher can both ask, whichever ``__init__`` won.
"""

from __future__ import annotations

import os

#: Files and folders only the original SCOOP 0.7 installs in ``scoop/``.
ORIGINAL_ONLY = ("_control.py", "bootstrap", "encapsulation.py", "launcher.py")


def mixed_with_original() -> str | None:
    """What is wrong and how to fix it, if the original SCOOP shares this folder; else None."""
    folder = os.path.dirname(os.path.abspath(__file__))
    found = [name for name in ORIGINAL_ONLY if os.path.exists(os.path.join(folder, name))]
    if not found:
        return None
    return (
        f"the original SCOOP (0.7) is installed in the same folder as scoop-core ({folder}: "
        f"{', '.join(found)} are the original's), and the two cannot share it. Fix: "
        "pip uninstall -y scoop scoop-core, then pip install scoop-core scoop-zmq scoop-launch"
    )


__all__ = ["ORIGINAL_ONLY", "mixed_with_original"]
