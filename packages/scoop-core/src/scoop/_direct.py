"""The direct path: small messages between workers of one machine, without the broker.

A task forced to another worker used to cross the broker twice each way (four transport hops,
each through the transport's I/O threads) and a hand-over between the main and communication
threads at both ends: about 0.5 ms, where a process pool's round trip is about 0.13 ms. On one
machine, two workers can do better: each worker binds a Unix datagram socket of its own, and

* a submitter whose wait has a timeout sends the awaited task straight to a worker that said,
  a moment ago, that it was idle (:meth:`DirectChannel.send`);
* a worker that finishes a task of another worker and is about to go idle sends the result
  straight to the submitter, and says in it that it is idle;
* a main thread that waits for work (``WorkerScheduler.idle``) sleeps on this socket as well as
  on its wake-up (:class:`MainWake`): a direct message wakes the thread that acts on it, with
  no hand-over between threads.

The broker still learns of every such task, from small notes that ride on the next RESULTS
message (``Status.GIVEN`` from the submitter; ``Status.TAKEN`` and ``Status.DELIVERED`` from the
worker that ran it; see scoop._broker), so that it never takes a busy worker for an idle one, a
lost worker's tasks run again, and a cancellation finds them.
Anything that cannot go directly (a worker on another machine, a message too large for one
datagram, a full socket buffer) goes through the broker as before: the direct path only ever
saves time.

The sockets live in a directory of this run and machine, private to the user (mode 0700, under
/tmp, named from a keyed hash of the run's secret and the host name): nobody else can bind an
address there, or send to one (a socket that is not the worker's would take its results). Each
datagram is a message of the usual protocol, tagged with a key of the direct path's own (derived
from the run's secret: a message captured from a connection to the broker is no good here), and
each sender numbers its datagrams: a number at or below the last one accepted is dropped.
On other systems than Linux, or with ``SCOOP_DIRECT_PATH=off``, there is no direct path.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence

from scoop._protocol import BROKER_SENDER, Codec, Entry, Kind, Message, drop_is_logged
from scoop._trace import Recorder
from scoop.errors import ProtocolError
from scoop.transport import Frame

logger = logging.getLogger("scoop")

#: After a direct message went out, how long the main thread looks for the answer without
#: sleeping (a task of a wait, or the next one of its submitter): on a virtual machine, waking a
#: sleeping thread costs 50-100 us (its CPU halted), more than the whole trip.
DIRECT_SPIN_SECONDS = 0.0002
#: Largest datagram sent on the direct path; bigger messages go through the broker.
DIRECT_MAX_BYTES = 64 * 1024
#: The environment variable that turns the direct path off ("off", "0" or "no").
DIRECT_PATH_VARIABLE = "SCOOP_DIRECT_PATH"

_COUNT = struct.Struct("<H")
_LENGTH = struct.Struct("<I")


def direct_path_enabled() -> bool:
    """Whether this process may use the direct path (Linux, and not turned off)."""
    if not sys.platform.startswith("linux"):
        return False
    return os.environ.get(DIRECT_PATH_VARIABLE, "on").strip().lower() not in {"off", "0", "no"}


def pack_frames(frames: Sequence[Frame]) -> bytes:
    """One datagram of a message's frames: their count, their lengths, then their bytes."""
    views = [memoryview(frame) for frame in frames]
    head = _COUNT.pack(len(views)) + b"".join(_LENGTH.pack(view.nbytes) for view in views)
    return b"".join([head, *views])


def unpack_frames(data: bytes) -> list[Frame]:
    """The frames of a datagram made by :func:`pack_frames`; ProtocolError if malformed."""
    view = memoryview(data)
    if view.nbytes < _COUNT.size:
        raise ProtocolError("direct datagram too short")
    (count,) = _COUNT.unpack_from(view, 0)
    position = _COUNT.size + count * _LENGTH.size
    if view.nbytes < position:
        raise ProtocolError("direct datagram shorter than its frame table")
    frames: list[Frame] = []
    for index in range(count):
        (length,) = _LENGTH.unpack_from(view, _COUNT.size + index * _LENGTH.size)
        frames.append(view[position : position + length])
        position += length
    if position != view.nbytes:
        raise ProtocolError("direct datagram length does not match its frame table")
    return frames


class DirectChannel:
    """A worker's Unix datagram socket for the direct path (see the module docstring).

    Thread-safe: the main thread sends and receives on it, the communication thread receives.
    """

    def __init__(self, codec: Codec, index: int, where: str) -> None:
        #: The run's codec, for payload digests; messages on this path are tagged with a key of
        #: their own, so that one captured from a connection to the broker is no good here.
        self.codec = codec
        self._tagger = Codec(codec.derive(b"direct path tags"), payload_digests=False)
        self.index = index
        self.where = where
        self.directory = _run_directory(codec)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._socket.setblocking(False)
            self._socket.bind(self.address_of(index))
        except OSError:
            self._socket.close()
            raise
        self._lock = threading.Lock()
        self._next_seq = 1
        self._last_seq: dict[int, int] = {}
        #: Workers found on another machine (or gone): not tried again.
        self.unreachable: set[int] = set()
        #: Messages sent and received on this path, and those dropped (garbage, replays).
        self.sent = 0
        self.received = 0
        self.dropped = 0
        #: Counts the bytes sent and received when the run is traced (scoop._trace).
        self.recorder: Recorder | None = None

    @classmethod
    def open(cls, codec: Codec, index: int, where: str) -> DirectChannel | None:
        """A channel for worker ``index``, or None (no direct path here, or its address taken)."""
        if not direct_path_enabled():
            return None
        try:
            return cls(codec, index, where)
        except OSError as exc:
            logger.info("%s: no direct path to the workers beside it: %s", where, exc)
            return None

    def address_of(self, index: int) -> str:
        """The address of worker ``index``'s channel in this run, on this machine."""
        return os.path.join(self.directory, str(index))

    def fileno(self) -> int:
        """The socket's descriptor, to wait on with ``select``."""
        return self._socket.fileno()

    def send(self, index: int, kind: Kind, arg: int, entries: list[Entry]) -> bool:
        """Send a message straight to worker ``index``; False if it must go through the broker.

        Never blocks: a full buffer, a message too large, or a worker not on this machine all
        answer False (the last is remembered).
        """
        if index in self.unreachable or index == self.index:
            return False
        # Measured before anything is copied or hashed: a large payload (64 MiB) must cost
        # nothing here on its way to the broker.
        size = sum(memoryview(frame).nbytes for entry in entries for frame in entry.frames)
        if size > DIRECT_MAX_BYTES:
            return False
        for entry in entries:
            if not entry.digest:
                entry.digest = self.codec.digest(entry.frames)
        with self._lock:
            seq = self._next_seq
            frames = self._tagger.encode_entries(kind, self.index, arg, entries, seq=seq)
            data = pack_frames(frames)
            if len(data) > DIRECT_MAX_BYTES:
                return False
            try:
                self._socket.sendto(data, self.address_of(index))
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EMSGSIZE):
                    self.unreachable.add(index)  # ECONNREFUSED: not on this machine, or gone
                return False
            self._next_seq = seq + 1
            self.sent += 1
            if self.recorder is not None:
                self.recorder.bytes_out += len(data)
        return True

    def receive(self) -> list[Message]:
        """Every message waiting on the socket (never blocks); bad ones are dropped."""
        messages: list[Message] = []
        with self._lock:
            while True:
                try:
                    data = self._socket.recv(DIRECT_MAX_BYTES + 1)
                except (BlockingIOError, InterruptedError):
                    return messages
                except OSError:  # closed under us at the end of the run
                    return messages
                if self.recorder is not None:
                    self.recorder.bytes_in += len(data)
                message = self._decode(data)
                if message is not None:
                    self.received += 1
                    messages.append(message)

    def _decode(self, data: bytes) -> Message | None:
        try:
            message = self._tagger.decode(unpack_frames(data))
        except ProtocolError as exc:  # garbage, another run's, another version's
            reason = str(exc)
        else:
            last = self._last_seq.get(message.sender, 0)
            if (
                message.seq > last
                and message.kind in (Kind.TASKS, Kind.RESULTS)
                and message.sender != BROKER_SENDER
            ):
                self._last_seq[message.sender] = message.seq
                return message
            reason = f"{message.kind.name} number {message.seq} of worker {message.sender}"
            reason += " came again" if message.seq <= last else " is not for the direct path"
        self.dropped += 1
        if drop_is_logged(self.dropped):
            logger.warning(
                "%s dropped a direct message (%d so far): %s", self.where, self.dropped, reason
            )
        return None

    def close(self) -> None:
        """Close the socket and remove its address (and the run's directory, once empty)."""
        self._socket.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address_of(self.index))
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)  # the last worker of this machine to leave removes it


def _run_directory(codec: Codec) -> str:
    """This run's directory of channels on this machine: private to the user (0700).

    Its name comes from the run's secret and this machine's name: only holders of the secret
    know it, workers of other machines that share /tmp (network namespaces) do not meet here,
    and nobody else may bind or send in it, whatever they know. Under /tmp itself, not $TMPDIR:
    a socket's path must stay under 108 bytes.
    """
    path = _run_directory_name(codec)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{path} is not a private directory of this user")
    return path


def _run_directory_name(codec: Codec) -> str:
    name = codec.derive(b"direct path " + socket.gethostname().encode()).hex()[:20]
    return os.path.join("/tmp", f"scoop-{os.getuid()}-{name}")


def remove_channels(secret: bytes, indices: Iterable[int]) -> None:
    """Remove the channels workers ``indices`` of the run of ``secret`` had on this machine.

    A worker removes its own when it leaves; a killed one cannot. Whoever started the workers
    calls this after they ended: the run's directory goes with its last channel.
    """
    path = _run_directory_name(Codec(secret))
    try:
        info = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return  # not ours: nothing of it is touched
    for index in indices:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(path, str(index)))
    with contextlib.suppress(OSError):
        os.rmdir(path)  # fails while another launcher's workers of the run (joiners) are there


class MainWake:
    """What the main thread of a worker sleeps on when it has nothing to run.

    Like a ``threading.Event`` (``set``, ``clear``, ``is_set``, ``wait``), but ``wait`` also
    returns when a direct message arrives, so that the main thread reads it itself. ``set`` writes
    to a pipe only while the main thread sleeps.
    """

    def __init__(self, channel: DirectChannel | None = None) -> None:
        self._flag = False
        self._sleeping = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._fds = [self._read_fd] if channel is None else [self._read_fd, channel.fileno()]

    def set(self) -> None:
        """Wake the main thread (from any thread)."""
        self._flag = True
        # Flag first, then look: wait() marks itself sleeping first, then looks at the flag,
        # so one of the two always sees the other (the interpreter runs each step in order).
        if self._sleeping:
            try:  # noqa: SIM105 (a plain try is the cheaper one, and this runs per message)
                os.write(self._write_fd, b"\0")
            except OSError:
                pass  # a full pipe wakes the thread anyway; a closed one has nobody to wake

    def clear(self) -> None:
        """Forget an earlier ``set`` (the main thread, before it looks for something to do)."""
        self._flag = False

    @property
    def sleeping(self) -> bool:
        """Whether the main thread sleeps in :meth:`wait` now (and reads the channel after)."""
        return self._sleeping

    def is_set(self) -> bool:
        """Whether ``set`` was called since the last ``clear``."""
        return self._flag

    def wait(self, timeout: float | None, spin: float = 0.0) -> bool:
        """Sleep until ``set``, a direct message, or ``timeout`` s; return whether set.

        For the first ``spin`` seconds, look without sleeping (see DIRECT_SPIN_SECONDS).
        """
        self._sleeping = True
        try:
            if self._flag:
                return True
            fds = self._fds
            readable: list[int] = []
            if spin > 0:
                end = time.perf_counter() + (spin if timeout is None else min(spin, timeout))
                while not (readable or self._flag) and time.perf_counter() < end:
                    readable, _, _ = select.select(fds, [], [], 0)  # lets other threads run
            if not (readable or self._flag):
                readable, _, _ = select.select(fds, [], [], timeout)
            if self._read_fd in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read_fd, 4096)
            return self._flag
        finally:
            self._sleeping = False

    def close(self) -> None:
        """Close the pipe (once: a descriptor number closed twice may be another's by then)."""
        fds, self._fds = self._fds, []
        if fds:
            self._flag = True  # nothing sleeps on a closed pipe
            for fd in (self._read_fd, self._write_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


__all__ = [
    "DIRECT_MAX_BYTES",
    "DIRECT_PATH_VARIABLE",
    "DirectChannel",
    "MainWake",
    "direct_path_enabled",
    "pack_frames",
    "remove_channels",
    "unpack_frames",
]
