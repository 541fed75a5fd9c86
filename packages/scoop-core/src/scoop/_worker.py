"""A worker on a network: the greenlet scheduler (main thread) beside its communication thread.

Its parts: :mod:`scoop._inbox` (what the main thread reads from the network),
:mod:`scoop._foreign` (tasks from elsewhere, and results), :mod:`scoop._handover` (tasks handed
away), :mod:`scoop._directpeers` (the direct path).

Who does what::

    main thread: WorkerScheduler (this module)        communication thread (scoop._comm)
      runs tasks and user code in greenlets             owns the endpoint, blocks on it, sends
      service(): results and constants from the inbox   the results of tasks run here; calls
      idle(): asks for work once, sleeps on wake_event  on_message() (below) as messages arrive:
      offload()/offer(): hand tasks away itself           TASKS    -> queue, wake the main thread
                                                          DEMAND (or the demand a TASKS or
                                                          RESULTS carries) -> hand surplus away
                                                          SHUTDOWN -> stop, wake the main thread
                                                          LOST -> queue own tasks again
                                                          RESULTS, CONST -> inbox

Because the communication thread answers DEMAND while a task runs (a ``time.sleep``, a numpy
call, a long loop), tasks queued behind a long task reach idle workers without waiting for it.
The policy (how many tasks go) is in :mod:`scoop._balance`.

Between workers of one machine, a task a waiter with a timeout awaits, and the result of a worker
about to go idle, may skip the broker: see :mod:`scoop._direct` and :mod:`scoop._directpeers`.

Results go back in batches of at most ``_comm.RESULT_BATCH``, at the latest
``_comm.RESULT_DELAY`` after the first of a batch (sent by the communication thread, even while a
long task runs), or as soon as the worker runs out of work, to the worker that submitted the task.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import greenlet

from scoop import _balance, _serialize
from scoop._comm import Communicator, LauncherGone, parent_watch
from scoop._direct import DirectChannel, MainWake
from scoop._directpeers import DirectPeers
from scoop._foreign import ForeignTasks
from scoop._future import PENDING, Future
from scoop._handover import Handover
from scoop._inbox import Inbox, constant_id
from scoop._outcome import (
    exit_code,
    print_user_traceback,
    rebuild_exception,
)
from scoop._protocol import Codec, Entry, Kind, Message, worker_of
from scoop._scheduler import Scheduler
from scoop._slot import RunningSlot
from scoop.errors import PeerUnreachable
from scoop.transport import WorkerEndpoint

logger = logging.getLogger("scoop")


class WorkerScheduler(Inbox, ForeignTasks, Handover, DirectPeers, Scheduler):
    """The scheduler of a worker connected to a broker."""

    def __init__(
        self,
        endpoint: WorkerEndpoint | None,
        codec: Codec,
        index: int,
        size: int,
        *,
        hostname: str | None = None,
        parent_pid: int | None = None,
        heartbeat_interval: float = 0.0,
        running_slot: str | None = None,
        runs_tasks: bool = True,
    ) -> None:
        super().__init__()
        #: False for a client (a root started with --root-runs-no-task, an Executor's owner):
        #: every task it submits goes to the broker, and it never asks for work.
        self.runs_tasks = runs_tasks
        self.codec = codec
        self.spilled_tasks = codec.spill
        self.index = index
        self.size = size
        self.hostname = hostname or socket.gethostname()
        self.comm = Communicator(
            endpoint,
            codec,
            index,
            self.where,
            parent_alive=parent_watch(parent_pid),
            heartbeat_interval=heartbeat_interval,
        )
        if running_slot:
            self.running_slot = RunningSlot(running_slot)
        #: Own tasks handed to the broker, by id, until their results come back.
        self.remote: dict[int, Future[Any]] = {}
        #: Messages the communication thread left for the main thread (results, constants).
        self.inbox: deque[Message] = deque()
        #: Small messages straight to and from the workers of this machine (scoop._direct).
        self.direct = DirectChannel.open(codec, index, self.where) if size > 1 else None
        #: Workers of this machine that said on the direct path that they were idle, and when.
        self.idle_peers: dict[int, float] = {}
        #: Until when an answer on the direct path is expected soon (see DIRECT_SPIN_SECONDS).
        self.spin_until = 0.0
        #: When the main thread last woke from its sleep for work (see poll_direct).
        self.awake_since = 0.0
        #: Its time per task (whence how many it asks for), measured from when it woke or last
        #: asked for work, and the tasks ended by then, to when it asks again.
        self.pace = _balance.Pace()
        self.pace_since = time.monotonic()
        self.pace_ended = 0
        #: Set by the communication thread whenever it gave the main thread something to do;
        #: the main thread's sleep also ends when a direct message comes.
        self.wake_event = MainWake(self.direct)
        #: Own tasks a waiter with a timeout awaits, back from the broker unstarted: not run
        #: here until the wait ends, handed to the next idle worker (see offer()).
        self.held: deque[Future[Any]] = deque()
        #: Idle workers the broker last told of, less the tasks handed to them since.
        self.demand = 0
        self.requested = False
        self.stopping = False
        #: Asked to leave the run (SIGTERM): hand the queue back, finish what runs, say BYE.
        self.leaving = False
        self.said_bye = False
        self.shutdown_code: int | None = None
        #: What stopped the communication thread, to be raised in the main thread.
        self.comm_error: BaseException | None = None
        self._functions = {}
        #: Where this worker writes what it recorded (scoop._trace), when the run is traced.
        self.trace_dir = ""

    @property
    def where(self) -> str:
        """This worker, as error notes name it."""
        return f"worker {self.index} on host {self.hostname} (pid {os.getpid()})"

    @property
    def dropped(self) -> int:
        """Messages dropped because they failed to decode or authenticate."""
        return self.comm.dropped

    # -- joining and the communication thread -------------------------------------------------

    def join(self, versions: dict[str, Any], timeout: float = 60.0) -> None:
        """Say HELLO and wait for WELCOME; a REJECT raises VersionMismatchError."""
        self._set_size(self.comm.join(self, versions, self.hostname, timeout))

    def join_in_background(
        self,
        connect: Callable[[], WorkerEndpoint],
        versions: dict[str, Any],
        on_failed: Callable[[BaseException], None],
        timeout: float = 60.0,
    ) -> None:
        """Connect and join in the communication thread, which then serves; return at once.

        The root's way (it was created without an endpoint): its script runs meanwhile, and
        runs its tasks itself until the broker tells of idle workers. ``on_failed`` gets what
        stopped the connection or the join, in that thread.
        """
        self._attach_recorders()
        self.comm.start_joining(
            self,
            connect,
            versions,
            self.hostname,
            timeout,
            on_joined=self._set_size,
            on_failed=on_failed,
        )

    def _set_size(self, count: int) -> None:
        # The broker's count of workers in the run, published as scoop.SIZE.
        if count > 0:
            import scoop

            self.size = count
            if scoop.IS_RUNNING:
                scoop.SIZE = count

    def leave(self) -> None:
        """Leave the run (a SIGTERM handler calls this; a second SIGTERM ends the process).

        The queue goes back to the broker, tasks already started finish, then the worker says
        BYE and ends once the broker answers: it is not counted as lost.
        """
        if self.leaving:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.leaving = True
        self.wake_event.set()

    def _start(self) -> None:
        if not self.comm.started:
            self._attach_recorders()
            self.comm.start(self)

    def _attach_recorders(self) -> None:
        self.comm.recorder = self.trace
        if self.direct is not None:
            self.direct.recorder = self.trace

    def on_message(self, message: Message) -> None:
        """Act on one message of the broker (in the communication thread, or during join)."""
        kind = message.kind
        if kind == Kind.TASKS:
            if self.trace is not None:
                self.trace.moved(len(message.entries))
            with self.queue_lock:
                # Newest last in, first run: reversed, a batch runs oldest first here (a map's
                # first chunks first, so its results come in order), and what this worker hands
                # on is the newest of it.
                for entry in reversed(message.entries):
                    if worker_of(entry.id) != self.index:
                        self.local.append(entry)
                        continue
                    own = self.remote.pop(entry.id, None)
                    if own is not None:
                        own._state = PENDING  # came back unstarted: run it with its own objects
                        (self.held if own._offered else self.local).append(own)
                    # else: one of ours that nobody waits for any more (cancelled): dropped
                self.requested = False
                self.demand = message.arg  # workers still idle once the broker gave these out
            self.wake_event.set()
            if self.held:  # own tasks back unstarted, for a waiter: to the idle workers, if any
                self._meet_demand()
        elif kind == Kind.DEMAND:
            self.demand = message.arg
            self._meet_demand()
        elif kind == Kind.RESULTS:
            self.inbox.append(message)
            self.wake_event.set()
            self.demand = message.arg  # the broker's count of idle workers, as it routed them
            self._meet_demand()
        elif kind == Kind.CONST:
            self.inbox.append(message)
            self.wake_event.set()
        elif kind == Kind.LOST:
            self._queue_again(message)
        elif kind == Kind.CANCEL:
            self._drop_cancelled({entry.id for entry in message.entries})
        elif kind == Kind.MEMBERS:
            self._set_size(message.arg)
        elif kind == Kind.BYE:  # the broker understood that this worker leaves
            self.stopping = True
            self.wake_event.set()
        elif kind == Kind.SHUTDOWN:
            self.shutdown_code = message.arg
            self.stopping = True
            self.wake_event.set()
            self._snapshot_trace()
        else:
            logger.warning("%s ignored an unexpected %s message", self.where, kind.name)

    def _drop_cancelled(self, ids: set[int]) -> None:
        # Tasks of another worker it cancelled, still queued here: not run (one started runs on).
        with self.queue_lock:
            kept = [task for task in self.local if isinstance(task, Future) or task.id not in ids]
            if len(kept) != len(self.local):
                self.local.clear()
                self.local.extend(kept)

    def _snapshot_trace(self) -> None:
        # The run is over, but a task may still hold the main thread, and the worker may be
        # killed in it: keep what was recorded so far (the main thread writes it all at its end).
        if self.trace is not None and self.trace_dir:
            try:
                self.trace.write(self.trace_dir)
            except OSError as exc:
                logger.warning("%s could not write its trace: %s", self.where, exc)

    def on_stop(self, error: BaseException | None) -> None:
        """The communication thread ended before it was asked to (called in that thread)."""
        if isinstance(error, PeerUnreachable) and self.index != 0:
            # No broker means the run is over for a worker other than the root (our SHUTDOWN may
            # be unread); should the broker have crashed, the launcher sees its exit code.
            logger.info("%s: the broker is gone; ending", self.where)
        elif isinstance(error, LauncherGone):
            logger.error("%s", error)
        else:
            self.comm_error = error
        self.stopping = True
        self.wake_event.set()

    # -- the main thread's side of the network -------------------------------------------------

    def service(self) -> None:
        if self.inbox:
            self._read_inbox()
        if self.leaving and not self.said_bye:
            self._hand_back()
        elif not self.runs_tasks and (self.local or self.held):
            self._give_all_queued()

    def _next_local(self) -> Any:
        # A client runs no task: what is queued goes to the broker at the next turn.
        return super()._next_local() if self.runs_tasks else None

    def idle(self, timeout: float | None) -> None:
        self.flush()
        if self.stopping:
            return
        if not (self.requested or self.held or self.leaving) and self.runs_tasks:  # see offer()
            self.requested = True
            now, ended = time.monotonic(), self.tasks_ended
            self.pace.observe(now - self.pace_since, ended - self.pace_ended)
            self.pace_since, self.pace_ended = now, ended
            self.comm.request_work(self.pace.appetite())
        event = self.wake_event
        event.clear()  # before looking: a wake-up after this point is not lost
        if self.has_news():
            return
        spin = self.spin_until - time.perf_counter() if self.spin_until else 0.0
        event.wait(None if timeout is None else max(timeout, 0.0), spin)
        self.awake_since = self.pace_since = time.monotonic()
        self.pace_ended = self.tasks_ended
        self.read_direct()

    def has_news(self) -> bool:
        """Whether another thread left the main thread something to do (see :meth:`idle`)."""
        return bool(self.inbox or self.local or self.stopping)

    def flush(self) -> None:
        """Have the results of finished tasks sent now."""
        self.comm.flush_results()

    # -- whole-run control -------------------------------------------------------------------

    def set_constant(self, name: str, value: Any) -> None:
        frames = _serialize.dumps_or_explain((name, value), f"shared constant {name!r}")
        super().set_constant(name, value)
        # Sealed as a task's result is: in shared memory on one machine, kept until the end.
        entry = self.codec.seal(Entry(constant_id(name), 0, b"", frames))
        self.comm.post(Kind.CONST, 0, [entry])

    def serve(self) -> None:
        """Run tasks until the broker says the run is over (non-root workers)."""
        self._start()
        self.run_loop(lambda: self.stopping)
        if self.comm_error is not None:
            raise self.comm_error

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

        self._start()
        self.ready.append(greenlet.greenlet(root))
        self.run_loop(lambda: self.stopping)
        if self.comm_error is not None:
            raise self.comm_error
        if self.shutdown_code is None:
            self.flush()
            self.comm.post(Kind.SHUTDOWN, code)
        return code

    def close(self) -> None:
        """Send what is left and close the connection (the communication thread does)."""
        try:
            self.flush()
        finally:
            self.comm.close()
            self.close_local()
            if self.comm.failed_while_closing is not None:
                logger.error(
                    "%s: the broker is gone, the end of the run not told: %s",
                    self.where,
                    self.comm.failed_while_closing,
                )

    def close_local(self) -> None:
        """Close what this worker holds on this machine: its direct channel and wake-up pipe."""
        if self.direct is not None:
            self.direct.close()
        self.wake_event.close()


__all__ = [
    "WorkerScheduler",
    "constant_id",
    "exit_code",
    "print_user_traceback",
    "rebuild_exception",
]
