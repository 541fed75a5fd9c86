"""What a worker's communication thread sends: the outgoing queue, results, the word "idle".

:class:`Sending` is a part of :class:`scoop._comm.Communicator` (a mixin, for the size of the
module). Any thread posts messages (``post``) and the main thread queues results
(``add_result``); only the communication thread encodes and sends them (``_send_queued``,
``_emit``), in order, so that their numbers follow each other in the stream the broker checks.
Results wait up to RESULT_DELAY to share a message; a worker's word that it is idle rides on the
last message queued (``IDLE_AFTER``) or goes alone as a REQUEST.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from scoop._protocol import BROKER_SENDER, Codec, Entry, Kind, idle_arg
from scoop._sequence import Outbox, SequenceCheck
from scoop._trace import Recorder
from scoop.transport import Frame, WorkerEndpoint

logger = logging.getLogger("scoop")

#: Longest time a finished task's result waits for others to share its message, in seconds.
RESULT_DELAY = 0.001
#: Most results sent in one message.
RESULT_BATCH = 256
#: Longest a main thread waits for the thread to send tasks it handed away (see wait_sent).
SEND_WAIT = 0.005
#: An outgoing message: kind, arg, and its entries (digests already set).
Outgoing = tuple[Kind, int, list[Entry]]


class Sending:
    """The communication thread's outgoing side; mixed into Communicator, whose state it uses."""

    # The Communicator's state this part reads and changes (see scoop._comm.Communicator).
    codec: Codec
    index: int
    where: str
    recorder: Recorder | None
    progress: tuple[int, int, int] | None
    sequence: SequenceCheck
    outbox: Outbox
    _outgoing: deque[Outgoing]
    _results: deque[tuple[int, int, Sequence[Frame]]]
    _results_since: float
    _last_result_at: float
    _result_waits: bool
    _note_waits: bool
    _flush_requested: bool
    _idle_pending: bool
    _appetite: int
    _wake: Callable[[], None]
    _posted: int
    _sent: int
    _sent_cond: threading.Condition
    _thread: threading.Thread | None
    _last_sent: float

    @property
    def endpoint(self) -> WorkerEndpoint:
        raise NotImplementedError

    def post(self, kind: Kind, arg: int = 0, entries: list[Entry] | None = None) -> None:
        """Queue a message to the broker (from any thread); entries carry their digests."""
        with self._sent_cond:  # any thread may post
            self._outgoing.append((kind, arg, entries or []))
            self._posted += 1
        self._wake()

    def wait_sent(self, timeout: float = SEND_WAIT) -> None:
        """Wait (at most ``timeout`` s) until this thread has sent what was posted so far.

        For the main thread, after it handed tasks away and before it starts a task itself:
        waiting lets this thread have the GIL at once, where a task running Python code would
        keep it for a switch interval or more (see SWITCH_INTERVAL), while a worker waits idle
        for the tasks.
        """
        target = self._posted
        if self._sent >= target or self._thread is None:
            return
        with self._sent_cond:
            self._sent_cond.wait_for(lambda: self._sent >= target, timeout)

    def add_result(self, result: tuple[int, int, Sequence[Frame]], *, note: bool = False) -> None:
        """Queue a task's result (main thread; a note: either thread); sent within RESULT_DELAY.

        Results wait a little so that those of tiny tasks share a message; they are sent by
        this thread, so a long task started right after does not hold them back. A result that
        comes RESULT_DELAY or more after the one before goes at once: its tasks are not tiny,
        and waiting would only cost this thread a second wake-up (a switch of the GIL away
        from the task running). A ``note`` (for the broker, on the direct path: see
        scoop._direct) travels the same way, but waits its RESULT_DELAY even when results are
        flushed: nobody waits for it.
        """
        results = self._results
        was_empty = not results
        now = time.monotonic()
        if note:
            self._note_waits = True
        else:
            self._result_waits = True
            if now - self._last_result_at >= RESULT_DELAY:
                self._flush_requested = True
            self._last_result_at = now
        results.append(result)
        if was_empty:
            self._results_since = now
            self._wake()
        elif len(results) >= RESULT_BATCH or self._flush_requested:
            self.flush_results()

    def flush_results(self) -> None:
        """Have the queued results sent now (the caller is about to wait, or leave)."""
        if self._results and self._result_waits:
            self._flush_requested = True
            self._wake()

    def request_work(self, appetite: int = 1) -> None:
        """Tell the broker this worker has nothing to run and would take ``appetite`` tasks.

        It rides on the last message queued, a RESULTS or TASKS, as ``IDLE_AFTER`` (with the
        appetite above it, ``idle_arg``), or goes alone as a REQUEST: one message less on the
        path of every hand-out.
        """
        self._appetite = appetite
        self._idle_pending = True
        self._wake()

    def withdraw_idle(self) -> None:
        """Forget a word that this worker is idle not sent yet (it just got work directly)."""
        self._idle_pending = False

    def _send_progress(self, handler: Any) -> None:
        # Plain reads of the main thread's counters: a count a moment old is fine on a display.
        counts = (handler.tasks_started, handler.tasks_ended, len(handler.local))
        if counts != self.progress:
            self.progress = counts
            payload = json.dumps(dict(zip(("started", "ended", "queued"), counts, strict=True)))
            data = payload.encode()
            self._emit(Kind.PROGRESS, 0, [Entry(self.index, 0, self.codec.digest([data]), [data])])

    def _send_queued(self, *, all_results: bool = False, idle_notice: bool = True) -> None:
        # idle_notice=False: this worker's word that it is idle waits (see send_now).
        results = self._results
        outgoing = self._outgoing
        if results and (
            all_results
            or self._flush_requested
            or len(results) >= RESULT_BATCH
            # Notes go before any other message: the broker must know which worker took a
            # task directly before it gives out more (it would count that worker as idle).
            or (self._note_waits and outgoing)
            or time.monotonic() >= self._results_since + RESULT_DELAY
        ):
            self._flush_requested = False
            self._result_waits = self._note_waits = False
            while results:
                batch = [results.popleft() for _ in range(min(len(results), RESULT_BATCH))]
                arg = 0
                if idle_notice and self._idle_pending and not results and not outgoing:
                    self._idle_pending = False
                    arg = idle_arg(self._appetite)
                seal = self.codec.seal
                self._emit(
                    Kind.RESULTS, arg, [seal(Entry(i, st, b"", list(f))) for i, st, f in batch]
                )
        sent = 0
        while outgoing:
            kind, arg, entries = outgoing.popleft()
            last = not (outgoing or results)
            if kind == Kind.TASKS and idle_notice and self._idle_pending and last:
                self._idle_pending = False
                arg = idle_arg(self._appetite)  # newer than its count of tasks still queued
            self._emit(kind, arg, entries)
            sent += 1
        if sent:
            with self._sent_cond:
                self._sent += sent
                self._sent_cond.notify_all()
        if idle_notice and self._idle_pending and not results:
            self._idle_pending = False
            self._emit(Kind.REQUEST, self._appetite)

    def _emit(self, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        """Number, encode, keep (until acknowledged) and send one message to the broker."""
        seq = self.outbox.number()
        ack = self.sequence.last(BROKER_SENDER)
        frames = self.codec.encode_entries(kind, self.index, arg, entries, seq=seq, ack=ack)
        recorder = self.recorder
        if recorder is not None:
            recorder.bytes_out += sum(len(frame) for frame in frames)
            if kind == Kind.TASKS:
                recorder.moved(-len(entries))
        now = time.monotonic()
        self.outbox.keep(seq, frames, now)
        self.endpoint.send(frames)
        self._last_sent = now

    def _resend(self) -> None:
        # No acknowledgement for RESEND_AFTER: a connection broke and came back, and what it
        # carried may be lost. Send it all again; the broker drops what it already has.
        kept = self.outbox.to_resend(time.monotonic())
        logger.info("%s: sending %d unacknowledged messages again", self.where, len(kept))
        for frames in kept:
            self.endpoint.send(frames)

    def send_now(self, kind: Kind, arg: int, entries: list[Entry]) -> None:
        """Send at once from the communication thread itself (queued messages go first).

        The word that this worker is idle, if the main thread just gave it, goes on the TASKS
        or after the message, never before: the broker takes a worker that hands out tasks off
        its idle list, and one whose word came first would be left off it for good.
        """
        self._send_queued(all_results=self._note_waits, idle_notice=False)  # notes first
        if kind == Kind.TASKS and self._idle_pending:
            self._idle_pending = False
            arg = idle_arg(self._appetite)  # idle: nothing is queued here any more
        self._emit(kind, arg, entries)


__all__ = ["RESULT_BATCH", "RESULT_DELAY", "SEND_WAIT", "Outgoing", "Sending"]
