"""The run file: what ``--add-workers`` needs to join a running run, the secret included.

The launcher writes it once the broker is bound and removes it when the run ends. It lives in
``~/.scoop/runs/`` (``$SCOOP_RUNS_DIR`` overrides), a directory only its user may enter, and only
its user may read it: the run's secret never appears in a command line or an environment. With
a home directory shared by the nodes of a cluster, a launcher on another node finds it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Environment variable naming the directory of run files.
RUNS_DIR_VAR = "SCOOP_RUNS_DIR"


class RunFileError(Exception):
    """No run to join was found, or its file cannot be used; the message says why."""


def runs_dir() -> Path:
    """The directory of run files (created, user-only)."""
    path = Path(os.environ.get(RUNS_DIR_VAR) or Path.home() / ".scoop" / "runs")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def run_id() -> str:
    """The id of the run this launcher starts: its host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def write(info: dict[str, Any]) -> Path:
    """Write the run file of this launcher's run; return its path."""
    path = runs_dir() / f"{run_id()}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    return path


def remove(path: Path | None) -> None:
    """Remove a run file (the run is over)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _alive(info: dict[str, Any]) -> bool:
    # A run started on this host whose launcher is gone left its file behind (killed -9).
    if info.get("host") != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(int(info["launcher_pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError):
        return True
    return True


def _runs() -> Iterator[tuple[str, Path, dict[str, Any]]]:
    for path in sorted(runs_dir().glob("*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and _alive(info):
            yield path.stem, path, info


def find(wanted: str | None) -> Path:
    """The run file of run ``wanted``, or of the only run going on; RunFileError otherwise."""
    runs = list(_runs())
    if wanted is not None:
        for name, path, _ in runs:
            if name == wanted:
                return path
        known = ", ".join(name for name, _, _ in runs) or "none"
        raise RunFileError(f"no run {wanted!r} in {runs_dir()} (runs going on: {known})")
    if not runs:
        raise RunFileError(
            f"no SCOOP run is going on (no run file in {runs_dir()}): start one with "
            "python -m scoop_launch, then add workers to it"
        )
    if len(runs) > 1:
        names = ", ".join(name for name, _, _ in runs)
        raise RunFileError(f"several runs are going on ({names}): choose one with --run ID")
    return runs[0][1]


def take_indices(path: Path, count: int) -> tuple[dict[str, Any], int]:
    """Read a run file and reserve ``count`` worker indices in it; return (info, first index).

    The file is locked meanwhile: launchers adding workers at once get distinct indices.
    """
    try:
        with open(path, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            info = json.load(handle)
            first = int(info["next_index"])
            info["next_index"] = first + count
            handle.seek(0)
            handle.truncate()
            json.dump(info, handle)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunFileError(f"cannot use the run file {path}: {exc}") from exc
    return info, first


__all__ = ["RUNS_DIR_VAR", "RunFileError", "find", "remove", "run_id", "take_indices", "write"]
