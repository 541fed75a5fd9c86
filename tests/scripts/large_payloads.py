"""Root script: large arguments and results, and how they travelled.

Run with ``--root-runs-no-task`` and at least two other workers, so that every task travels.
``Tracked`` carries its bytes out of band and remembers what its buffer was when it was
unpickled: an ``mmap`` where it came through shared memory (scoop._spill), a frame of the
transport where it came in the message. Prints ``SPILL_DIR <path or ->``, then ``ORIGIN <where
the argument landed> <where the result landed>``, ``LEFT <files left in the directory once every
task ended>``, ``RERUN <length>`` (a task whose first run killed its worker), ``LEFT ...``
again, ``CONST <where a shared constant landed> <files left>``, then ``OK``. The first argument
is a file that the lost task's first run creates.
"""

import os
import pickle
import signal
import sys

import scoop
from scoop import _runtime, futures, shared

MIB = 1 << 20


def _rebuild(buffer):
    return Tracked(buffer, type(memoryview(buffer).obj).__name__)


class Tracked:
    """Bytes that travel out of band and say what held them when they landed."""

    def __init__(self, data, origin=""):
        self.data = memoryview(data)
        self.origin = origin

    def __reduce_ex__(self, protocol):
        return _rebuild, (pickle.PickleBuffer(self.data),)


def echo(value):
    return value


def landed(tracked):
    """Where the argument landed, and a result that travels back the same way."""
    return tracked.origin, Tracked(bytes(tracked.data[::-1]))


def dies_once(data, marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # its worker is lost: the task runs again
    return len(data), scoop.worker[1]


def constant_origin(_):
    table = shared.getConst("table", timeout=30)
    assert bytes(table.data) == bytes(range(256)) * (4 * MIB // 256)
    return table.origin


def spill_dir():
    spill = _runtime.current().codec.spill
    return spill.directory if spill is not None else None


def left(directory):
    """The payload files in the run's directory (not its launcher's lock file)."""
    names = os.listdir(directory) if directory else []
    return sorted(name for name in names if not name.startswith("."))


if __name__ == "__main__":
    directory = spill_dir()
    print("SPILL_DIR", directory or "-", flush=True)
    data = bytes(range(256)) * (4 * MIB // 256)
    assert futures.submit(echo, data).result() == data
    assert futures.submit(echo, bytearray(data)).result() == bytearray(data)
    assert list(futures.map(echo, [data, b"small", data[:MIB]])) == [data, b"small", data[:MIB]]
    origin, back = futures.submit(landed, Tracked(data)).result()
    assert bytes(back.data) == data[::-1]
    print("ORIGIN", origin, back.origin, flush=True)
    print("LEFT", left(directory), flush=True)
    length, where = futures.submit(dies_once, data, sys.argv[1]).result()
    assert length == len(data)
    print("RERUN", length, flush=True)
    print("LEFT", left(directory), flush=True)
    shared.setConst(table=Tracked(data))
    origins = set(futures.map(constant_origin, range(8)))
    print("CONST", sorted(origins), len(left(directory)), flush=True)
    print("OK", flush=True)
