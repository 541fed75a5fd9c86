"""A worker on a network: the scheduler plus the conversation with the broker.

Load balancing (the policy, and its two parameters):

* A worker with nothing to run sends REQUEST once; the broker gives it queued tasks if it has
  some, else records it as hungry and tells every other worker how many workers are hungry
  (DEMAND).
* A worker that knows of demand hands the oldest of its surplus queued tasks to the broker before
  it starts its next task, or at its next network poll (every ``POLL_INTERVAL``):
  ``queue * d / (d + 1)`` of them for ``d`` hungry workers, at least one and at most its surplus,
  so that the queue is split evenly in one message (steal-half). Surplus is the queue less the
  one task it would run next itself; none is kept while one of its greenlets waits with a
  timeout (tasks are not preempted).
* Results go back in batches of at most ``RESULT_BATCH``, at the latest at the next poll or when
  the worker runs out of work, to the worker that submitted the task.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import greenlet

from scoop import _batch, _serialize
from scoop._future import PENDING, RUNNING, Future, TaskUnwound
from scoop._protocol import (
    BROKER_SENDER,
    Codec,
    Entry,
    Kind,
    Message,
    SequenceCheck,
    Status,
    drop_is_logged,
    worker_of,
)
from scoop._scheduler import Scheduler
from scoop.errors import (
    PeerUnreachable,
    ProtocolError,
    RemoteTraceback,
    ScoopError,
    SerializationError,
    VersionMismatchError,
)
from scoop.transport import Frame, WorkerEndpoint

logger = logging.getLogger("scoop")

RESULT_BATCH = 256
_SCOOP_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Most messages handled per network poll while tasks are waiting to run.
MESSAGES_PER_POLL = 64
#: How long an idle worker blocks on the network before it checks its parent is alive.
IDLE_CHECK_INTERVAL = 1.0
_FUNCTION_CACHE_SIZE = 256


class TaskLoadError(SerializationError):
    """A task received from another worker could not be unpickled here."""


class RemoteError(ScoopError):
    """A task raised an exception whose type cannot be rebuilt on this worker."""


def constant_id(name: str) -> int:
    """The 64-bit id of a shared constant's name (the broker keeps the first of each id)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class WorkerScheduler(Scheduler):
    """The scheduler of a worker connected to a broker."""

    def __init__(
        self,
        endpoint: WorkerEndpoint,
        codec: Codec,
        index: int,
        size: int,
        *,
        hostname: str | None = None,
        parent_pid: int | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.codec = codec
        self.index = index
        self.size = size
        self.hostname = hostname or socket.gethostname()
        self.parent_pid = parent_pid
        self.remote: dict[int, Future[Any]] = {}
        self.outbox: list[tuple[int, int, list[Frame]]] = []
        self.demand = 0
        self.requested = False
        self.stopping = False
        self.shutdown_code: int | None = None
        self.dropped = 0
        self.sequence = SequenceCheck()
        self._functions: dict[bytes, Any] = {}

    @property
    def where(self) -> str:
        """This worker, as error notes name it."""
        return f"worker {self.index} on host {self.hostname} (pid {os.getpid()})"

    # -- joining -----------------------------------------------------------------------------

    def join(self, versions: dict[str, Any], timeout: float = 60.0) -> None:
        """Say HELLO and wait for WELCOME; a REJECT raises VersionMismatchError."""
        import json

        payload = json.dumps({**versions, "index": self.index, "host": self.hostname}).encode()
        self.send(Kind.HELLO, 0, [(self.index, 0, [payload])])
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            frames = self.endpoint.recv(max(0.0, min(remaining, IDLE_CHECK_INTERVAL)))
            if frames is None:
                if remaining <= IDLE_CHECK_INTERVAL:
                    raise ScoopError(f"{self.where}: the broker did not answer within {timeout} s")
                self.check_parent()
                if self.stopping:
                    raise ScoopError(f"{self.where}: its launcher is gone")
                continue
            message = self._from_broker(frames)
            if message is None:
                continue
            if message.kind == Kind.WELCOME:
                # Anything queued behind WELCOME (constants, an early SHUTDOWN) is read now.
                self.receive(0)
                return
            if message.kind == Kind.REJECT:
                self.codec.verify(message.entries[0])
                reason = bytes(message.entries[0].frames[0]).decode(errors="replace")
                raise VersionMismatchError(reason)
            self.handle(message)

    def _from_broker(self, frames: list[Frame]) -> Message | None:
        """Decode a message of the broker; None (dropped and counted) for anything else.

        Anything else: garbage, another run's or a replayed message, or one not sent by the
        broker (nng workers listen on a port anyone can reach). Another protocol version
        raises VersionMismatchError: that is the broker's, and the worker cannot go on.
        """
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
                reason = f"{message.kind.name} number {message.seq} came again (a replayed message)"
            else:
                return message
        self.dropped += 1
        if drop_is_logged(self.dropped):
            logger.warning("%s dropped a message (%d so far): %s", self.where, self.dropped, reason)
        return None

    def send(self, kind: Kind, arg: int = 0, entries: Any = ()) -> None:
        """Send one message to the broker."""
        self.send_frames(self.codec.encode(kind, self.index, arg, entries))

    def send_frames(self, frames: list[Frame]) -> None:
        """Send encoded frames to the broker; a broker that is gone ends a non-root worker."""
        try:
            self.endpoint.send(frames)
        except PeerUnreachable as exc:
            self._broker_gone(exc)

    def _broker_gone(self, exc: PeerUnreachable) -> None:
        # For a worker other than the root, no broker means the run is over (it may have just
        # ended, with our SHUTDOWN still unread): stop quietly. Should the broker have crashed,
        # the launcher sees its exit code and fails the run. The root needs the broker.
        if self.index == 0:
            raise exc
        logger.info("%s: the broker is gone; ending", self.where)
        self.stopping = True

    # -- the network side of the loop --------------------------------------------------------

    def service_network(self, timeout: float) -> None:
        self.receive(timeout)
        if self.demand > 0:
            self.spill()
        self.flush()

    def idle(self, timeout: float | None) -> None:
        self.flush()
        if not self.requested and not self.stopping:
            self.send(Kind.REQUEST, 1)
            self.requested = True
        wait = (
            IDLE_CHECK_INTERVAL if timeout is None else min(max(timeout, 0.0), IDLE_CHECK_INTERVAL)
        )
        if not self.receive(wait):
            self.check_parent()

    def check_parent(self) -> None:
        """End the worker if the process that started it is gone."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            logger.error("%s: its launcher is gone; exiting", self.where)
            self.stopping = True

    def receive(self, timeout: float) -> int:
        """Handle waiting messages, blocking up to ``timeout`` for the first; return the count."""
        try:
            frames = self.endpoint.recv(timeout)
        except PeerUnreachable as exc:
            self._broker_gone(exc)
            return 0
        handled = 0
        while frames is not None:
            message = self._from_broker(frames)
            if message is not None:
                self.handle(message)
            handled += 1
            if handled >= MESSAGES_PER_POLL or self.stopping:
                break
            try:
                frames = self.endpoint.recv(0)
            except PeerUnreachable as exc:
                self._broker_gone(exc)
                break
        return handled

    def handle(self, message: Message) -> None:
        """Act on one authenticated message from the broker."""
        kind = message.kind
        if kind == Kind.TASKS:
            self.requested = False
            for entry in message.entries:
                own = self.remote.pop(entry.id, None) if worker_of(entry.id) == self.index else None
                if own is not None:
                    own._state = PENDING  # came back unstarted: run it with its own objects
                    self.local.append(own)
                else:
                    self.local.append(entry)
        elif kind == Kind.RESULTS:
            for entry in message.entries:
                fut = self.remote.pop(entry.id, None)
                if fut is None:
                    logger.warning("%s got a result for unknown task %#x", self.where, entry.id)
                else:
                    self.deliver(fut, entry)
        elif kind == Kind.DEMAND:
            self.demand = message.arg
        elif kind == Kind.CONST:
            for entry in message.entries:
                try:
                    self.codec.verify(entry)
                    name, value = _serialize.loads(entry.frames)
                except Exception as exc:
                    logger.error("%s could not load a shared constant: %s", self.where, exc)
                    continue
                self.constants.setdefault(name, value)
            self.constant_arrived()
        elif kind == Kind.SHUTDOWN:
            self.shutdown_code = message.arg
            self.stopping = True
        else:
            logger.warning("%s ignored an unexpected %s message", self.where, kind.name)

    def offload(self) -> None:
        if self.demand > 0:
            self.spill()

    def spill(self) -> None:
        """Hand the oldest surplus tasks to the broker for the hungry workers."""
        keep = 0 if self.ready or self.deadline_waits else 1  # a task for itself, if needed
        surplus = len(self.local) - keep
        if surplus <= 0:
            return
        # Share the whole queue (the task kept included) evenly among this worker and the d
        # hungry ones: 4 queued tasks and one hungry worker give away 2, not 1 of the surplus 3.
        share = len(self.local) * self.demand // (self.demand + 1)
        count = min(surplus, max(1, share))
        entries: list[Entry] = []
        for _ in range(count):
            task = self.local.popleft()
            if isinstance(task, Future):
                if task._state != PENDING:
                    continue  # cancelled while queued
                task._state = RUNNING
                self.remote[task.id] = task
                frames = [task._fn_frame, *task._call_frames]
                entries.append(Entry(task.id, 0, b"", frames))
            else:
                entries.append(task)
        if entries:
            for entry in entries:
                if not entry.digest:
                    entry.digest = self.codec.digest(entry.frames)
            self.send_frames(self.codec.encode_entries(Kind.TASKS, self.index, 0, entries))
            self.demand = 0

    def flush(self) -> None:
        """Send the results waiting in the outbox."""
        if self.outbox:
            outbox, self.outbox = self.outbox, []
            self.send(Kind.RESULTS, 0, outbox)

    # -- running tasks from elsewhere --------------------------------------------------------

    def _load_function(self, frame: Frame) -> Any:
        key = bytes(frame)
        fn = self._functions.get(key)
        if fn is None:
            fn = pickle.loads(key)
            if len(self._functions) >= _FUNCTION_CACHE_SIZE:
                self._functions.clear()
            self._functions[key] = fn
        return fn

    def run_foreign(self, task: Entry) -> None:
        task_id = task.id
        try:
            self.codec.verify(task)
            fn = self._load_function(task.frames[0])
            args, kwargs = _serialize.loads(task.frames[1:])
        except Exception as exc:
            hint = ""
            if isinstance(exc, AttributeError) and "__main__" in _serialize.safe_str(exc):
                hint = (
                    " (workers import the script without running its `if __name__ == "
                    "'__main__':` block: define task functions and classes at its top level)"
                )
            error = TaskLoadError(
                f"task {task_id:#x} could not be loaded on {self.where}: "
                f"{_serialize.safe_str(exc)}{hint}"
            )
            self._queue_result(task_id, Status.RAISED, self.pack_exception(error))
            return
        del task  # the payload frames are not needed while the task runs
        try:
            value = fn(*args, **kwargs)
        except TaskUnwound:
            raise
        except BaseException as exc:
            self._queue_result(task_id, Status.RAISED, self.pack_exception(exc))
            return
        try:
            frames = _serialize.dumps(value)
        except Exception as exc:
            what = f"the result of {_serialize.describe(fn)}, {_serialize.describe(value)},"
            if fn is _batch.run_chunk:  # a chunk of a map: name the user's function and item
                what = _batch.describe_unpicklable(args[0], args[1], value) or what
            result_error = SerializationError(
                f"{what} on {self.where} cannot be pickled to travel back: "
                f"{_serialize.safe_str(exc)}"
            )
            self._queue_result(task_id, Status.RAISED, self.pack_exception(result_error))
        else:
            self._queue_result(task_id, Status.OK, frames)

    def _queue_result(self, task_id: int, status: int, frames: list[Frame]) -> None:
        self.outbox.append((task_id, status, frames))
        if len(self.outbox) >= RESULT_BATCH:
            self.flush()

    def pack_exception(self, exc: BaseException) -> list[Frame]:
        """Frames of a failed task: its traceback text, and the exception if it can travel."""
        text = "".join(traceback.format_exception(exc))
        summary = _serialize.exception_summary(exc)
        meta = pickle.dumps((text, self.where, summary), protocol=5)
        try:
            exc_frames = _serialize.dumps(exc)
            _serialize.loads(exc_frames)  # an exception that cannot be rebuilt is sent as text
        except Exception:
            exc_frames = []
        return [meta, *exc_frames]

    def deliver(self, fut: Future[Any], entry: Entry) -> None:
        """Finish one of our futures with a result that came back from another worker."""
        try:
            self.codec.verify(entry)
            if entry.status == Status.OK:
                value = _serialize.loads(entry.frames)
            else:
                fut._set_exception(rebuild_exception(entry.frames))
                return
        except Exception as exc:
            fut._set_exception(
                SerializationError(
                    f"the result of {fut!r} could not be unpickled on {self.where}: "
                    f"{_serialize.safe_str(exc)}"
                )
            )
            return
        fut._set_result(value)

    # -- whole-run control -------------------------------------------------------------------

    def set_constant(self, name: str, value: Any) -> None:
        frames = _serialize.dumps_or_explain((name, value), f"shared constant {name!r}")
        super().set_constant(name, value)
        self.send(Kind.CONST, 0, [(constant_id(name), 0, frames)])

    def serve(self) -> None:
        """Run tasks until the broker says the run is over (non-root workers)."""
        self.run_loop(lambda: self.stopping)

    def run_root(self, main: Callable[[], object]) -> int:
        """Run ``main`` as the root task, then end the run; return its exit code."""
        code = 0

        def root() -> None:
            nonlocal code
            try:
                main()
            except SystemExit as exc:
                code = exit_code(exc)
            except BaseException as exc:
                print_user_traceback(exc)
                code = 1
            finally:
                self.stopping = True

        self.ready.append(greenlet.greenlet(root))
        self.run_loop(lambda: self.stopping)
        if self.shutdown_code is None:
            try:
                self.flush()
                self.send(Kind.SHUTDOWN, code)
            except PeerUnreachable as exc:  # the launcher reports the broker's own failure
                logger.error(
                    "%s: the broker is gone, the end of the run not told: %s", self.where, exc
                )
        return code

    def close(self) -> None:
        """Flush what is left and close the connection."""
        try:
            self.flush()
        finally:
            self.endpoint.close()


def print_user_traceback(exc: BaseException) -> None:
    """Print an uncaught exception of the user's script without SCOOP's own frames on top."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_SCOOP_DIR):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def exit_code(exc: SystemExit) -> int:
    """The process exit code ``sys.exit(arg)`` means, printing a message argument."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def rebuild_exception(frames: list[Frame]) -> BaseException:
    """The exception of a failed remote task, with its remote traceback chained as the cause."""
    text, where, summary = pickle.loads(frames[0])
    exc: BaseException | None = None
    if len(frames) > 1:
        try:
            exc = _serialize.loads(frames[1:])
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"the task raised {summary}, which cannot be rebuilt here")
    exc.__cause__ = RemoteTraceback(text)
    exc.add_note(f"(raised in a task on {where})")
    return exc
