"""A worker's communication thread: the one owner of its transport endpoint.

Threads of a worker process::

    main thread (greenlet scheduler, user code)          communication thread (this module)
      post(kind, arg, entries) --> outgoing deque  -->  encode (sequence numbers), endpoint.send
                                   + endpoint.wakeup()    endpoint.recv(): blocks on the network
      inbox deque, wake event  <--------------------    decode, authenticate, replay check,
                                                        then Handler.on_message(message)

The main thread never touches the endpoint once the thread runs, and the thread never runs user
code: it decodes messages and hands them to the scheduler's ``on_message``, which acts on the
ones that must be answered while a task runs (tasks arriving, demand from idle workers, the end of
the run) and queues the rest (results, constants) for the main thread. Every outgoing message is
encoded here, in the order it is sent, so that its numbers follow each other in the stream the
broker checks (see scoop._protocol); each is kept until the broker acknowledges it, and sent again
if no acknowledgement comes for RESEND_AFTER (a connection broke and came back).

What the thread sends, and how results and the word that the worker is idle are batched, is in
scoop._outgoing (a mixin of Communicator).

A transport endpoint without ``wakeup()`` (written for an older interface) still works: the
thread then looks at its outgoing queue every :data:`FALLBACK_POLL_INTERVAL`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from scoop._outgoing import RESULT_DELAY, Outgoing, Sending
from scoop._protocol import (
    BROKER_SENDER,
    PROGRESS_INTERVAL,
    Codec,
    Entry,
    Kind,
    Message,
    drop_is_logged,
)
from scoop._sequence import Outbox, SequenceCheck
from scoop._trace import Recorder
from scoop.errors import ProtocolError, ScoopError, VersionMismatchError
from scoop.transport import Frame, WorkerEndpoint

logger = logging.getLogger("scoop")


class LauncherGone(ScoopError):
    """The process that started this worker (the launcher) is gone: the run is over."""


#: How long the thread blocks on the network before it checks that the launcher is alive.
IDLE_CHECK_INTERVAL = 1.0
#: For endpoints without ``wakeup()``: how often the thread looks for messages to send.
FALLBACK_POLL_INTERVAL = 0.001
#: Most messages decoded in a row before the outgoing queue is looked at again.
MESSAGES_PER_TURN = 64
#: The interpreter's switch interval in a worker (sys.setswitchinterval; Python's default is 5 ms).
#: While a task runs Python code, this thread gets the GIL only when the task is made to drop it,
#: after the switch interval, and again after each blocking call (each frame sent): a hand-over
#: to an idle worker, or an answer to its demand, waited 5 ms or more each time. 1 ms costs a
#: task nothing measurable (the thread asks for the GIL only when a message came or is due).
SWITCH_INTERVAL = 0.001
#: While a task runs, how often the thread looks at the direct path (scoop._direct) for tasks
#: sent straight here, to hand them on if other workers are idle.
DIRECT_POLL_INTERVAL = 0.02
#: How long ``close`` waits for the thread to send what is queued and close the endpoint.
CLOSE_TIMEOUT = 10.0
#: After how long without an acknowledgement what was sent is sent again (the broker
#: acknowledges at least every half second, see scoop._broker.ACK_DELAY).
RESEND_AFTER = 5.0


class Handler(Protocol):
    """What the communication thread calls; implemented by the worker's scheduler."""

    def on_message(self, message: Message) -> None:
        """Act on an authenticated message of the broker (called in the communication thread)."""

    def on_stop(self, error: BaseException | None) -> None:
        """The thread stops sending and receiving: the broker is gone, or ``error`` happened."""


class Communicator(Sending):
    """Owns a worker's endpoint in a thread of its own; see the module docstring."""

    def __init__(
        self,
        endpoint: WorkerEndpoint | None,
        codec: Codec,
        index: int,
        where: str,
        *,
        parent_alive: Callable[[], bool] = lambda: True,
        heartbeat_interval: float = 0.0,
    ) -> None:
        #: None until the thread connects (see :meth:`start_joining`).
        self._endpoint: WorkerEndpoint | None = None
        #: Send a HEARTBEAT when nothing else went for this long (0: never), so that the broker
        #: tells a worker busy in a long task from a lost one.
        self.heartbeat_interval = heartbeat_interval
        self._last_sent = 0.0
        self.codec = codec
        self.index = index
        self.where = where
        self.parent_alive = parent_alive
        #: Counts bytes and task moves when the run is traced (scoop._trace).
        self.recorder: Recorder | None = None
        #: With --progress: the counts last sent (None: no progress is sent).
        self.progress: tuple[int, int, int] | None = None
        self.dropped = 0
        self.sequence = SequenceCheck()
        #: What was sent to the broker and not acknowledged yet (sent again if it stays so).
        self.outbox = Outbox(RESEND_AFTER)
        self._outgoing: deque[Outgoing] = deque()
        self._results: deque[tuple[int, int, Sequence[Frame]]] = deque()
        self._results_since = 0.0
        #: When the main thread last queued a result (not a note).
        self._last_result_at = 0.0
        #: Whether a result (not only notes on the direct path) waits to be sent, and whether a
        #: note does.
        self._result_waits = False
        self._note_waits = False
        self._flush_requested = False
        self._idle_pending = False
        #: How many tasks the worker would take, said with its word that it is idle.
        self._appetite = 1
        #: Without ``wakeup()`` (an endpoint of the first interface), the thread polls instead.
        self._polls = False
        self._wake: Callable[[], None] = lambda: None
        if endpoint is not None:
            self._attach(endpoint)
        #: Whether WELCOME came, and how long joining may take (see :meth:`close`).
        self._joined = False
        self._join_timeout = 0.0
        self._closing = False
        #: The broker said the run is over (SHUTDOWN): what is left to send goes unread.
        self._run_ended = False
        #: Messages posted, and posted messages sent (see :meth:`wait_sent`).
        self._posted = 0
        self._sent = 0
        self._sent_cond = threading.Condition(threading.Lock())
        self._handler: Handler | None = None
        self._thread: threading.Thread | None = None
        #: What went wrong while the last messages were sent, once close() was asked.
        self.failed_while_closing: BaseException | None = None

    def _attach(self, endpoint: WorkerEndpoint) -> None:
        wakeup: Callable[[], None] | None = getattr(endpoint, "wakeup", None)
        self._polls = wakeup is None
        self._endpoint = endpoint
        self._wake = wakeup or (lambda: None)

    @property
    def endpoint(self) -> WorkerEndpoint:
        """The connection to the broker (only the thread uses it once started)."""
        endpoint = self._endpoint
        if endpoint is None:
            raise ScoopError(f"{self.where} is not connected to the broker yet")
        return endpoint

    @property
    def started(self) -> bool:
        """Whether the thread was started (the endpoint is then its own)."""
        return self._thread is not None

    # -- used by the main thread -------------------------------------------------------------

    def join(
        self, handler: Handler, versions: dict[str, Any], hostname: str, timeout: float
    ) -> int:
        """Say HELLO and wait for WELCOME, in the calling thread, before :meth:`start`.

        Returns the number of workers in the run (WELCOME's arg). Raises VersionMismatchError
        on REJECT, ScoopError if the broker does not answer in time or the launcher is gone.
        Messages that follow WELCOME are handed to ``handler``.
        """
        payload = json.dumps({**versions, "index": self.index, "host": hostname}).encode()
        self._emit(Kind.HELLO, 0, [Entry(self.index, 0, self.codec.digest([payload]), [payload])])
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            frames = self.endpoint.recv(max(0.0, min(remaining, IDLE_CHECK_INTERVAL)))
            if frames is None:
                if remaining <= IDLE_CHECK_INTERVAL:
                    raise ScoopError(f"{self.where}: the broker did not answer within {timeout} s")
                if not self.parent_alive():
                    raise LauncherGone(f"{self.where}: its launcher is gone")
                continue
            message = self._decode(frames)
            if message is None or message.kind == Kind.HEARTBEAT:
                continue
            if message.kind == Kind.WELCOME:
                self._joined = True
                return message.arg
            if message.kind == Kind.REJECT:
                self.codec.verify(message.entries[0])
                reason = bytes(message.entries[0].frames[0]).decode(errors="replace")
                raise VersionMismatchError(reason)
            handler.on_message(message)

    def start(self, handler: Handler) -> None:
        """Start the thread; from now on only it uses the endpoint."""
        self._start_thread(handler, None)

    def start_joining(
        self,
        handler: Handler,
        connect: Callable[[], WorkerEndpoint],
        versions: dict[str, Any],
        hostname: str,
        timeout: float,
        *,
        on_joined: Callable[[int], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        """Connect and join in the thread, then serve, while the calling thread goes on.

        For the root, which runs its script meanwhile: what it posts waits in the outgoing
        queue until WELCOME (HELLO goes first). ``on_joined`` gets WELCOME's arg. ``on_failed``
        gets what stopped the connection or the join (a REJECT, no answer, the launcher gone),
        in the thread, which then ends without calling the handler's ``on_stop``.
        """
        self._join_timeout = timeout

        def connect_and_join() -> bool:
            try:
                self._attach(connect())
                count = self.join(handler, versions, hostname, timeout)
            except BaseException as exc:
                if self._endpoint is not None:
                    self._endpoint.close()
                on_failed(exc)
                return False
            on_joined(count)
            return True

        self._start_thread(handler, connect_and_join)

    def _start_thread(self, handler: Handler, prologue: Callable[[], bool] | None) -> None:
        self._handler = handler
        self._thread = threading.Thread(
            target=self._run, args=(prologue,), name=f"scoop-comm-{self.index}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Send what is queued, close the endpoint, and wait for the thread (bounded)."""
        self._closing = True
        thread = self._thread
        if thread is None:  # never started: the caller owns the endpoint
            if self._endpoint is not None:
                self._endpoint.close()
            return
        self._wake()
        # Still joining (the root's script ended first): what it posted goes after WELCOME.
        patience = CLOSE_TIMEOUT + (0.0 if self._joined else self._join_timeout)
        thread.join(patience)
        if thread.is_alive():
            logger.warning("%s: its communication thread did not end in %s s", self.where, patience)

    # -- the thread --------------------------------------------------------------------------

    def _run(self, prologue: Callable[[], bool] | None) -> None:
        handler = self._handler
        assert handler is not None
        if prologue is not None and not prologue():
            return
        error: BaseException | None = None
        try:
            self._serve(handler)
        except BaseException as exc:  # handed to the main thread, which decides what it means
            error = exc
            logger.debug("%s: communication thread stopped", self.where, exc_info=True)
        finally:
            if error is None:
                try:
                    self._send_queued(all_results=True)
                except Exception as exc:
                    error = exc
            # After the broker's SHUTDOWN nobody reads what is still queued: no wait for it.
            discard = getattr(self.endpoint, "close_discarding", None) if self._run_ended else None
            (discard or self.endpoint.close)()
            if self._closing:
                self.failed_while_closing = error
            else:
                handler.on_stop(error)

    def _serve(self, handler: Handler) -> None:
        longest_wait = FALLBACK_POLL_INTERVAL if self._polls else IDLE_CHECK_INTERVAL
        next_parent_check = time.monotonic() + IDLE_CHECK_INTERVAL
        heartbeat = self.heartbeat_interval
        # A worker's scheduler may get messages on the direct path too (not a supervisor).
        poll_direct: Callable[[], None] | None = getattr(handler, "poll_direct", None)
        endpoint = self.endpoint
        self._last_sent = time.monotonic()
        next_progress = self._last_sent
        while True:
            self._send_queued()
            if self._closing:
                return
            wait = longest_wait
            now = time.monotonic()
            if heartbeat:
                due = self._last_sent + heartbeat - now
                if due <= 0:
                    self._emit(Kind.HEARTBEAT)
                    due = heartbeat
                wait = min(wait, due)
            if self.progress is not None and now >= next_progress:
                next_progress = now + PROGRESS_INTERVAL
                self._send_progress(handler)
            if self.progress is not None:
                wait = min(wait, max(next_progress - now, 0.001))
            if self.outbox.overdue(now):
                self._resend()
            if self._results:  # not sent yet: wait until they are due, but do not spin (some
                # transports count in whole milliseconds; a shorter wait would not wait at all)
                due = self._results_since + RESULT_DELAY - now
                wait = min(wait, max(due, 0.001))
            if poll_direct is not None and getattr(handler, "takes_turns", False):
                wait = min(wait, DIRECT_POLL_INTERVAL)
            frames = endpoint.recv(wait)
            handled = 0
            while frames is not None:
                message = self._decode(frames)
                if message is not None and message.kind != Kind.HEARTBEAT:
                    if message.kind == Kind.SHUTDOWN:
                        self._run_ended = True
                    handler.on_message(message)
                handled += 1
                if handled >= MESSAGES_PER_TURN or self._outgoing:
                    break
                frames = endpoint.recv(0)
            if poll_direct is not None:
                poll_direct()
            now = time.monotonic()
            if now >= next_parent_check:
                next_parent_check = now + IDLE_CHECK_INTERVAL
                if not self.parent_alive():
                    raise LauncherGone(f"{self.where}: its launcher is gone; exiting")

    def _decode(self, frames: list[Frame]) -> Message | None:
        """Decode a message of the broker; None (dropped and counted) for anything else.

        Anything else: garbage, another run's or a replayed message, or one not sent by the
        broker (nng workers listen on a port anyone can reach). Another protocol version
        raises VersionMismatchError: that is the broker's, and the worker cannot go on.
        """
        if self.recorder is not None:
            self.recorder.bytes_in += sum(len(frame) for frame in frames)
        try:
            message = self.codec.decode(frames)
        except VersionMismatchError:
            raise
        except ProtocolError as exc:
            reason = str(exc)
        else:
            if message.sender != BROKER_SENDER:
                reason = f"a message of worker {message.sender}, not of the broker"
            elif not self.sequence.accept(message):
                # Sent again after a reconnection (or replayed): not an error.
                logger.debug("%s ignored %s", self.where, self.sequence.explain(message))
                return None
            else:
                self.outbox.acknowledged(message.ack, time.monotonic())
                return message
        self.dropped += 1
        if drop_is_logged(self.dropped):
            logger.warning("%s dropped a message (%d so far): %s", self.where, self.dropped, reason)
        return None


def parent_watch(parent_pid: int | None) -> Callable[[], bool]:
    """A check that the process that started this one (the launcher) is still its parent."""
    if parent_pid is None:
        return lambda: True
    return lambda: os.getppid() == parent_pid


__all__ = ["Communicator", "Handler", "LauncherGone", "parent_watch"]
