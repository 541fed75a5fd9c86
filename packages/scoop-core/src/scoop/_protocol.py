"""The SCOOP wire protocol: message framing and authentication.

A message is a list of frames::

    frame 0      tag (16 bytes) | fixed header (36 bytes) | count x entry (28 bytes)
    frames 1..   the entries' payload frames, in entry order (entry i owns ``nframes`` of them)

    fixed header  <2sBBIIqQQ  magic b"SC", protocol version, kind, sender, entry count, arg, seq,
                              ack
    entry         <QBBH16s    id, status, flags, nframes, payload digest

The sender is a worker's index, or :data:`BROKER_SENDER` for the broker. Each direction of each
connection is a stream: ``seq`` numbers its messages from 1 (a worker numbers what it sends the
broker; the broker numbers what it sends each worker), and ``ack`` is the last number the sender
accepted of the stream coming the other way. A receiver accepts only the next number of each
stream (:class:`scoop._sequence.SequenceCheck`): a message captured on the network and sent
again is dropped, and so is one that comes after a gap. The sender keeps what was not
acknowledged (:class:`scoop._sequence.Outbox`) and sends it again when no acknowledgement came
for a while, or at once when its peer's connection came back: a message lost with a broken
connection arrives late, in order, and once.

The tag is a keyed BLAKE2b of the whole header under the per-run secret; a message whose tag does
not verify is dropped before anything else is read. Each entry's digest is a SHA-256 (truncated) of
its payload frames, covered by the tag, so the broker authenticates a message by its header alone
and forwards payloads it never reads, and the receiving worker checks the payload digest before it
unpickles anything. An entry's flags say how its payload travels: with
:data:`scoop._spill.SPILLED`, its large frames are files in shared memory (one machine only).
The magic and version sit at fixed offsets so that a peer of another protocol version can be
told apart from garbage and named in the error.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import itertools
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scoop._digest import DIGEST_SIZE, payload_digest
from scoop._spill import SPILLED, SpillStore, unspill
from scoop.errors import AuthenticationError, ProtocolError, VersionMismatchError
from scoop.transport import Frame

PROTOCOL_VERSION = 6
MAGIC = b"SC"
TAG_SIZE = 16
NO_DIGEST = bytes(DIGEST_SIZE)
SECRET_SIZE = 32

_FIXED = struct.Struct("<2sBBIIqQQ")
_MAGIC_VERSION = struct.Struct("<2sB")
#: The ``sender`` of the broker's messages (workers are numbered from 0).
BROKER_SENDER = 0xFFFFFFFF
_ENTRY = struct.Struct("<QBBH16s")
_HEADER_START = TAG_SIZE
_ENTRIES_START = TAG_SIZE + _FIXED.size

#: Bits of a task id that number the tasks of one worker; the bits above are the worker index.
TASK_SEQ_BITS = 40


class Kind(enum.IntEnum):
    """Message kinds; ``arg`` and the entries mean what each kind's comment says."""

    HELLO = 1  # worker -> broker: 1 entry, payload = JSON of versions
    WELCOME = 2  # broker -> worker: no entries
    REJECT = 3  # broker -> worker: 1 entry, payload = UTF-8 reason
    TASKS = 4  # either way: entries are tasks (id, payload = pickled call); worker -> broker:
    #            arg = idle_arg(appetite), or queued_arg(tasks it still has queued) (0: none, or
    #            not said); broker -> worker: arg = workers idle after this hand-out
    REQUEST = 5  # worker -> broker: idle, arg = how many tasks it would take (its appetite)
    RESULTS = 6  # either way: entries are results (id, status, payload = pickled outcome);
    #              worker -> broker: arg = idle_arg(appetite) or 0, and entries may be notes on the
    #              direct path (Status.DELIVERED, Status.GIVEN); broker -> worker: arg = idle
    #              workers; worker -> worker on the direct path: arg = IDLE_AFTER or 0
    DEMAND = 7  # broker -> worker: arg = number of idle workers waiting for tasks
    CONST = 8  # either way: 1 entry, id = hash of name, payload = pickled (name, value)
    SHUTDOWN = 9  # root -> broker -> workers: arg = the root's exit code
    BYE = 10  # worker -> broker: it leaves the run (its queue handed back, nothing running);
    #           broker -> worker: understood, it may exit
    HEARTBEAT = 11  # worker -> broker: alive (sent when nothing else went for a while)
    LOST = 12  # broker -> submitter: entries are its tasks whose worker was lost, status is a
    #            LostStatus (payload: none, or the reason it was given up, UTF-8)
    MEMBERS = 13  # broker -> workers: arg = workers in the run now (scoop.SIZE), sent when it
    #               changes (a worker lost, gone or joined late); WELCOME's arg says it too
    GONE = 14  # supervisor -> broker: entries id = index of one of its workers whose process
    #            ended, payload = JSON {"reason": text, "running": task id}
    STOP = 15  # broker -> supervisor: arg = index of one of its workers taken for lost: kill it
    CANCEL = 16  # submitter -> broker -> holder: entries id = its tasks nobody waits for any more
    #              (no payload): dropped wherever they are still queued
    PROGRESS = 17  # worker -> broker (with --progress): 1 entry, payload = JSON of its counts
    #                {"started", "ended", "queued"}, sent every PROGRESS_INTERVAL if they changed


#: Seconds between a worker's PROGRESS messages, and between the broker's progress lines.
PROGRESS_INTERVAL = 0.5

#: ``arg`` of a worker's TASKS or RESULTS: it has nothing left to run, as if a REQUEST followed
#: (one message instead of two on the path of every hand-out).
IDLE_AFTER = 1
#: The bits of such an ``arg`` above IDLE_AFTER carry the worker's appetite, as a REQUEST's
#: whole ``arg`` does: how many tasks it would take at once (scoop._balance.appetite). In a
#: TASKS without IDLE_AFTER, they carry how many tasks its sender still has queued.
APPETITE_SHIFT = 1


def idle_arg(appetite: int) -> int:
    """The ``arg`` of a worker's TASKS or RESULTS: idle after it, would take ``appetite``."""
    return IDLE_AFTER | appetite << APPETITE_SHIFT


def appetite_of(arg: int) -> int:
    """The appetite an idle word's ``arg`` carries (1 if none: a worker that says nothing)."""
    return max(1, arg >> APPETITE_SHIFT)


def queued_arg(queued: int) -> int:
    """The ``arg`` of a worker's TASKS that is not idle after it: ``queued`` tasks stay there.

    Not counting the one it starts next. If the hand-out leaves workers idle and ``queued`` is
    not 0, the broker tells it how many (DEMAND): it may hand out more.
    """
    return max(0, queued) << APPETITE_SHIFT


def queued_of(arg: int) -> int:
    """How many tasks a worker's TASKS says are still queued there (0 if it is idle after it)."""
    return 0 if arg & IDLE_AFTER else arg >> APPETITE_SHIFT


class Status(enum.IntEnum):
    """Outcome of a task in a RESULTS entry."""

    OK = 0
    RAISED = 1
    #: Notes for the broker only (worker -> broker, no outcome), about the direct path
    #: (scoop._direct): the result went straight to its submitter (no payload) ...
    DELIVERED = 2
    #: ... the submitter sent this task straight to a worker (payload: its index, <I) ...
    GIVEN = 3
    #: ... and the worker took it (no payload).
    TAKEN = 4


class LostStatus(enum.IntEnum):
    """What the submitter does with a task in a LOST entry."""

    RERUN = 0  # queue it again
    GAVE_UP = 1  # it killed too many workers: fail it (payload: the reason, UTF-8)
    SUSPECT = 2  # its code was running when the worker died: hand it to the broker, which gives
    #              it to a worker other than the root (if one is left) so it cannot end the run


@dataclass(slots=True)
class Entry:
    """One task, result or constant inside a message."""

    id: int
    status: int
    digest: bytes
    frames: list[Frame]
    #: How the payload travels (:data:`scoop._spill.SPILLED`); 0 for frames in the message.
    flags: int = 0


@dataclass(slots=True)
class Message:
    """A decoded message whose header has been authenticated."""

    kind: Kind
    sender: int
    arg: int
    entries: list[Entry]
    #: The sender's number for this message in its stream to this receiver: 1, 2, 3...
    seq: int = 0
    #: The last number the sender accepted of the stream from this receiver.
    ack: int = 0


def local_versions(transport: str) -> dict[str, Any]:
    """The versions a worker and its broker must agree on."""
    from scoop import __version__

    return {
        "protocol": PROTOCOL_VERSION,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "scoop_core": __version__,
        "transport": transport,
    }


def version_mismatch(mine: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """Describe how two version sets differ, or None if they are compatible."""
    differences = [
        f"{key} {theirs.get(key)!s} on the worker but {mine[key]!s} on the broker"
        for key in ("protocol", "python", "scoop_core", "transport")
        if theirs.get(key) != mine[key]
    ]
    return "; ".join(differences) or None


class Codec:
    """Encodes and authenticates messages with one run's secret."""

    def __init__(self, secret: bytes, *, payload_digests: bool = True) -> None:
        if len(secret) < 16:
            raise ValueError("the run secret must be at least 16 bytes")
        self._secret = secret
        self._seq = itertools.count(1)
        #: Whether payloads carry (and are checked against) a SHA-256 digest. The launcher turns
        #: this off for runs confined to one machine, where loopback TCP cannot be altered in
        #: flight: there the header tag alone authenticates each message.
        self.payload_digests = payload_digests
        #: Where this process writes large payloads for others of its machine (scoop._spill);
        #: None: they travel in the message. Never with digests on: a file is not digested.
        self.spill: SpillStore | None = None

    def seal(self, entry: Entry, *, task: bool = False) -> Entry:
        """Make an entry ready to leave this process: large frames spilled, digest set.

        ``task``: the entry carries one of this process's tasks, whose files go when it ends.
        """
        spill = self.spill
        if spill is not None and not entry.flags and not self.payload_digests:
            frames = spill.spill(entry.id, entry.frames, keep=task)
            if frames is not None:
                entry.frames = frames
                entry.flags |= SPILLED
        entry.digest = self.digest(entry.frames)
        return entry

    def open(self, entry: Entry, *, shared: bool = False) -> list[Frame]:
        """An entry's payload frames, to unpickle.

        Checked against its digest first; frames spilled to shared memory are mapped, and their
        files removed (only one process opens a task's or a result's), unless ``shared``: a
        shared constant's, which every worker opens.
        """
        self.verify(entry)
        if entry.flags & SPILLED:
            return unspill(entry.frames, shared=shared)
        return entry.frames

    def digest(self, frames: Iterable[Frame]) -> bytes:
        """The digest an entry of these payload frames carries (all zeros when not used)."""
        return payload_digest(frames) if self.payload_digests else NO_DIGEST

    def derive(self, label: bytes) -> bytes:
        """A value only holders of the run's secret can compute (names that must not be guessed)."""
        return hashlib.blake2b(label, key=self._secret, digest_size=32).digest()

    def _tag(self, header: bytes | memoryview) -> bytes:
        return hashlib.blake2b(header, key=self._secret, digest_size=TAG_SIZE).digest()

    def encode(
        self,
        kind: Kind,
        sender: int,
        arg: int = 0,
        entries: Sequence[tuple[int, int, Sequence[Frame]]] = (),
        *,
        seq: int | None = None,
        ack: int = 0,
    ) -> list[Frame]:
        """Build the frames of a message; entries are ``(id, status, payload frames)``."""
        return self.encode_entries(
            kind,
            sender,
            arg,
            [
                Entry(id_, status, self.digest(frames), list(frames))
                for id_, status, frames in entries
            ],
            seq=seq,
            ack=ack,
        )

    def encode_entries(
        self,
        kind: Kind,
        sender: int,
        arg: int,
        entries: Sequence[Entry],
        *,
        seq: int | None = None,
        ack: int = 0,
    ) -> list[Frame]:
        """Build a message from entries whose digests are already known (forwarding).

        ``seq`` is its number in its stream; by default the next of this codec's own counter
        (right for a process that sends to one peer only).
        """
        if seq is None:
            seq = next(self._seq)
        parts = [_FIXED.pack(MAGIC, PROTOCOL_VERSION, kind, sender, len(entries), arg, seq, ack)]
        parts.extend(
            _ENTRY.pack(entry.id, entry.status, entry.flags, len(entry.frames), entry.digest)
            for entry in entries
        )
        header = b"".join(parts)
        frames: list[Frame] = [self._tag(header) + header]
        for entry in entries:
            frames.extend(entry.frames)
        return frames

    def decode(self, frames: Sequence[Frame]) -> Message:
        """Authenticate and parse a message; payloads are not read (see :meth:`verify`).

        Raises VersionMismatchError for a well-formed message of another protocol version,
        AuthenticationError when the tag does not verify, ProtocolError when it is malformed.
        """
        if not frames:
            raise ProtocolError("empty message")
        head = memoryview(frames[0])
        if head.nbytes < _HEADER_START + _MAGIC_VERSION.size:
            raise ProtocolError(f"header of {head.nbytes} bytes is shorter than {_ENTRIES_START}")
        # Magic and version first, at offsets every version keeps: a peer of another version
        # is named as such, whatever the rest of its header looks like.
        magic, version = _MAGIC_VERSION.unpack_from(head, _HEADER_START)
        if magic != MAGIC:
            raise ProtocolError("not a SCOOP message (bad magic)")
        header = head[_HEADER_START:]
        if not hmac.compare_digest(self._tag(header), head[:TAG_SIZE]):
            raise AuthenticationError("message failed the authentication check")
        if version != PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"peer speaks SCOOP protocol version {version}, this process speaks "
                f"version {PROTOCOL_VERSION}"
            )
        if head.nbytes < _ENTRIES_START:
            raise ProtocolError(f"header of {head.nbytes} bytes is shorter than {_ENTRIES_START}")
        _, _, kind, sender, count, arg, seq, ack = _FIXED.unpack_from(head, _HEADER_START)
        if head.nbytes != _ENTRIES_START + count * _ENTRY.size:
            raise ProtocolError(f"header length does not match its {count} entries")
        try:
            kind = Kind(kind)
        except ValueError:
            raise ProtocolError(f"unknown message kind {kind}") from None
        entries: list[Entry] = []
        position = 1
        for id_, status, flags, nframes, digest in _ENTRY.iter_unpack(head[_ENTRIES_START:]):
            payload = list(frames[position : position + nframes])
            entries.append(Entry(id_, status, digest, payload, flags))
            position += nframes
        if position != len(frames):
            raise ProtocolError(
                f"message has {len(frames) - 1} payload frames, its header says {position - 1}"
            )
        return Message(kind, sender, arg, entries, seq, ack)

    def verify(self, entry: Entry) -> None:
        """Check an entry's payload against its authenticated digest, before unpickling it."""
        if self.payload_digests and not hmac.compare_digest(
            payload_digest(entry.frames), entry.digest
        ):
            raise AuthenticationError(f"payload of entry {entry.id:#x} does not match its digest")


def run_codec(config: dict[str, Any], owner: int | None = None) -> Codec:
    """The codec of a process of a run, from the launcher's configuration.

    ``owner``: the index of a worker (or client), which writes its large payloads to the run's
    shared memory when the launcher made a place for them; the broker reads no payload.
    """
    codec = Codec(
        bytes.fromhex(config["secret"]),
        payload_digests=bool(config.get("payload_digests", True)),
    )
    spill_dir = config.get("spill_dir")
    if spill_dir and owner is not None and not codec.payload_digests:
        codec.spill = SpillStore(str(spill_dir), owner)
    return codec


def worker_of(task_id: int) -> int:
    """The index of the worker that submitted ``task_id`` (results go back there)."""
    return task_id >> TASK_SEQ_BITS


#: Dropped messages are logged one by one up to this many, then only at 100, 1000, ...
DROPS_LOGGED = 10


def drop_is_logged(count: int) -> bool:
    """Whether the ``count``-th dropped message is logged (a flood must not flood the log)."""
    return count <= DROPS_LOGGED or str(count).rstrip("0") == "1"
