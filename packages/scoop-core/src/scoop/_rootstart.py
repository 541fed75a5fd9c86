"""The root runs its script while it joins the run.

The launcher starts the root and the broker together and sends the broker's address on the
root's standard input once the broker is bound (line 2, after the configuration); the launcher's
own standard input follows there, for the script. The root does not wait for that line: its
communication thread reads it, connects and joins (scoop._comm.Communicator.start_joining)
while the script runs, and runs its first tasks itself. On a 2-core machine the broker's start
(Python, imports, bind) was the longest part of the way to the first result.

Until the line is read, ``sys.stdin`` is a stand-in that waits for it, so that the script never
reads the launcher's line and the thread never reads the script's input; ``scoop.BROKER_ADDRESS``
waits the same way. The thread reads the line from the stream behind the stand-in, the one the
configuration was read from: whatever its buffer took along (the address, the user's input that
follows) is read from it in turn.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from scoop.errors import ScoopError
from scoop.transport import ConnectOptions

if TYPE_CHECKING:
    from scoop._worker import WorkerScheduler
    from scoop.transport import TransportInfo, WorkerEndpoint

#: Set once the root knows the broker's address (None: this process is not a joining root).
_address_known: threading.Event | None = None
#: The stand-in, kept alive once replaced: ``input()`` holds a borrowed reference to
#: ``sys.stdin`` while it waits (CPython 3.11), and would crash if it were freed meanwhile.
_stand_in: _StdinUntilAddress | None = None


def read_line(what: str, stream: IO[str] | None = None) -> dict[str, Any]:
    """One JSON line of the launcher on standard input (``stream``: the one behind the stand-in)."""
    line = (stream or sys.stdin).readline()
    if not line:
        raise ScoopError(f"the launcher closed standard input before sending {what}")
    return json.loads(line)  # type: ignore[no-any-return]


class _StdinUntilAddress:
    """The root's ``sys.stdin`` until the launcher's last line is read: any use waits for it."""

    def __init__(self, stream: IO[str], ready: threading.Event) -> None:
        self._stream = stream
        self._ready = ready

    def __getattr__(self, name: str) -> Any:
        self._ready.wait()
        return getattr(self._stream, name)

    def __iter__(self) -> Iterator[str]:
        self._ready.wait()
        return iter(self._stream)

    def __next__(self) -> str:
        self._ready.wait()
        return next(self._stream)


def join_while_running(
    scheduler: WorkerScheduler,
    transport: TransportInfo,
    versions: dict[str, Any],
    say_failed: Callable[[BaseException], None],
    exit_code: int,
) -> None:
    """Have the root's communication thread read the address, connect and join; return at once.

    The root keeps its standard input: after the address, the launcher forwards its own there
    (`cat data | python -m scoop_launch script.py` feeds the script). A join that fails ends
    the process with ``exit_code`` once ``say_failed`` said why: the script runs meanwhile,
    and nothing of the run can go on without the broker.
    """
    stdin = sys.stdin
    ready = hold_stdin()

    def connect() -> WorkerEndpoint:
        address = read_line("the broker's address", stdin)["address"]
        address_read(address, ready)
        return transport.connect(ConnectOptions(address=address))

    def failed(exc: BaseException) -> None:
        with contextlib.suppress(Exception):  # the script's output so far, then the cause
            sys.stdout.flush()
        say_failed(exc)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(exit_code)

    scheduler.join_in_background(connect, versions, failed)


def hold_stdin() -> threading.Event:
    """Put the stand-in in place; return the event that releases it (and BROKER_ADDRESS)."""
    global _address_known, _stand_in
    ready = _address_known = threading.Event()
    sys.stdin = _stand_in = _StdinUntilAddress(sys.stdin, ready)
    return ready


def address_read(address: str, ready: threading.Event) -> None:
    """The broker's address is known: publish it and give the script its standard input."""
    import scoop

    scoop.BROKER_ADDRESS = address
    stand_in = sys.stdin
    if isinstance(stand_in, _StdinUntilAddress):
        sys.stdin = stand_in._stream
    ready.set()


def broker_address() -> str | None:
    """``scoop.BROKER_ADDRESS`` before it is set: wait for it on a joining root, else None."""
    import scoop

    if _address_known is not None:
        _address_known.wait()
    address: str | None = vars(scoop).get("BROKER_ADDRESS")
    return address


__all__ = ["address_read", "broker_address", "hold_stdin", "join_while_running", "read_line"]
