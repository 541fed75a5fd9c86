"""What a worker's main thread does with the messages its communication thread queued.

A part of :class:`scoop._worker.WorkerScheduler` (a mixin, for the size of the module): results
of its own tasks that ran elsewhere go to their Futures (a result for no task of ours is a
defect: logged, and its files in shared memory removed unread), tasks the broker gave up on
(they killed too many workers) fail with :class:`~scoop.errors.KilledWorkerError`, and shared
constants are kept.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from scoop import _batch, _serialize
from scoop._comm import Communicator
from scoop._future import Future
from scoop._protocol import Codec, Entry, Kind, LostStatus, Message
from scoop._spill import SPILLED, discard
from scoop.errors import KilledWorkerError

logger = logging.getLogger("scoop")


def constant_id(name: str) -> int:
    """The 64-bit id of a shared constant's name (the broker keeps the first of each id)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Inbox:
    """Results, losses and constants, read by the main thread (mixed into WorkerScheduler)."""

    codec: Codec
    comm: Communicator
    inbox: deque[Message]
    remote: dict[int, Future[Any]]
    constants: dict[str, Any]

    if TYPE_CHECKING:  # defined by the classes this is mixed with

        @property
        def where(self) -> str: ...

        def deliver(self, fut: Future[Any], entry: Entry) -> None: ...

        def constant_arrived(self) -> None: ...

    def _read_inbox(self) -> None:
        inbox = self.inbox
        while inbox:
            message = inbox.popleft()
            if message.kind == Kind.RESULTS:
                for entry in message.entries:
                    fut = self.remote.pop(entry.id, None)
                    if fut is None:
                        self.unknown_result(entry.id)
                        if entry.flags & SPILLED:
                            discard(entry.frames)
                    else:
                        self.deliver(fut, entry)
            elif message.kind == Kind.LOST:
                self._give_up(message.entries)
            else:
                self._load_constants(message.entries)

    def unknown_result(self, task_id: int) -> None:
        """A result came for no task of ours: a defect somewhere, worth a warning."""
        logger.warning("%s got a result for unknown task %#x", self.where, task_id)

    def _give_up(self, entries: list[Entry]) -> None:
        for entry in entries:
            if entry.status != LostStatus.GAVE_UP:
                continue
            fut = self.remote.pop(entry.id, None)
            if fut is None:
                continue
            try:
                self.codec.verify(entry)
                reason = bytes(entry.frames[0]).decode(errors="replace")
            except Exception as exc:
                reason = f"(the broker's reason could not be read: {exc})"
            fn = fut._fn
            what = f"function {getattr(fn, '__qualname__', None) or fn!r}"
            if fn is _batch.run_chunk and fut._args:  # a chunk of a map: name the user's function
                inner = fut._args[0]
                what = f"a chunk of a map of {getattr(inner, '__qualname__', None) or inner!r}"
            fut._set_exception(
                KilledWorkerError(f"task {fut.id:#x} ({what}) was not run again: {reason}")
            )

    def _load_constants(self, entries: list[Entry]) -> None:
        for entry in entries:
            try:
                name, value = _serialize.loads(self.codec.open(entry, shared=True))
            except Exception as exc:
                logger.error("%s could not load a shared constant: %s", self.where, exc)
                continue
            self.constants.setdefault(name, value)
        self.constant_arrived()
