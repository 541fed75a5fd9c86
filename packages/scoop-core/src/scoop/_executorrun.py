"""The run behind a ``scoop.Executor``: its session, its client thread, its tasks' futures.

An :class:`_ExecutorRun` owns what an open Executor started (the launcher's session, the client
scheduler that joins the run as worker 0 and its thread) and the ``concurrent.futures`` futures
of its tasks (:class:`_TaskFuture`), whose done-callbacks run in a thread of their own. The
client thread, ``atexit`` and the futures refer to it; the Executor object only fronts it (see
scoop._executor).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import functools
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from scoop import _plugins, _runtime, _serialize
from scoop._client import ClientScheduler, ExecutorFront, run_ended
from scoop._comm import LauncherGone
from scoop._future import Future
from scoop._protocol import run_codec
from scoop._scheduler import Scheduler
from scoop._trace import Recorder
from scoop.errors import (
    ExecutorStartError,
    LauncherMissingError,
)
from scoop.transport import ConnectOptions

logger = logging.getLogger("scoop")

#: Runs open in this process, newest last: ``scoop.futures`` uses the newest.
_open: list[_ExecutorRun] = []
_open_lock = threading.Lock()
#: The scheduler this process used before its first Executor opened (the launcher's root's,
#: or none), put back when the last one closes.
_before: list[Scheduler | None] = []


def _session_module() -> Any:
    try:
        from scoop_launch import _session
    except ImportError as exc:
        if (exc.name or "").startswith("scoop_launch"):
            raise LauncherMissingError(
                "scoop.Executor starts its broker and workers with scoop-launch, which is not "
                "installed here: pip install scoop-launch"
            ) from None
        raise
    return _session


# -- done-callbacks --------------------------------------------------------------------------

_client_thread = threading.local()
_callbacks: queue.SimpleQueue[tuple[Callable[[Any], object], Any]] = queue.SimpleQueue()
_callback_thread: list[threading.Thread] = []


def _run_callbacks() -> None:
    while True:
        fn, future = _callbacks.get()
        try:
            fn(future)
        except Exception:
            logger.exception("exception calling callback for %r", future)


def _call_back(fn: Callable[[Any], object], future: Any) -> None:
    # A client thread must not run user code that may block (a callback that waits on another
    # future of the same Executor would wait forever): one thread of the process runs those.
    if not getattr(_client_thread, "active", False):
        fn(future)
        return
    if not _callback_thread:
        with _open_lock:
            if not _callback_thread:
                thread = threading.Thread(
                    target=_run_callbacks, name="scoop-callbacks", daemon=True
                )
                thread.start()
                _callback_thread.append(thread)
    _callbacks.put((fn, future))


class _TaskFuture(cf.Future[Any]):
    """The ``concurrent.futures.Future`` of one task of an Executor.

    ``cancel()`` works until the result is back (see :mod:`scoop._client`); done-callbacks never
    run in the client thread.
    """

    def __init__(self, run: _ExecutorRun, task: Future[Any]) -> None:
        super().__init__()
        self._scoop_run = run
        self._scoop_task = task
        #: set_running_or_notify_cancel() was called (it may be called once; under run.lock).
        self._scoop_told = False

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        self._scoop_run.cancelled(self)
        return True

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        super().add_done_callback(functools.partial(_call_back, fn))


# -- the run ---------------------------------------------------------------------------------


class _ExecutorRun:
    """The broker, workers and client of one Executor, and its state."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.client: ClientScheduler | None = None
        self.lock = threading.Lock()
        self.shut_down = False
        #: End the run at once (kill the processes) rather than let them end.
        self.stop_now = False
        #: Why the run ended before it was shut down (then futures fail with it).
        self.broken: str | None = None
        self.outstanding: set[_TaskFuture] = set()
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self.serve, name="scoop-client", daemon=True)
        self.pid = os.getpid()
        self.front: ExecutorFront | None = None
        #: Where the client writes what it recorded (see scoop._trace), if anything.
        self.trace_dir = ""

    # -- starting ----------------------------------------------------------------------------

    def open(self) -> None:
        """Join the run as worker 0 and start the client thread (cleans up if it cannot)."""
        try:
            client = self.client = self._join(self.session.client_config())
            self.front = ExecutorFront(client, self.submit, self.pending, self.task_runners)
            with _open_lock:
                if not _open:
                    _before[:] = [_runtime.installed()]
                _open.append(self)
                _runtime.install(self.front)
                _serialize.main_by_value = True
            atexit.register(self.at_exit)
            self.thread.start()
        except BaseException:  # Ctrl-C while it starts among others: leave nothing running
            self._abandon_start()
            raise

    @property
    def task_runners(self) -> int:
        """Workers that run tasks (the client runs none)."""
        return int(self.session.task_runners)

    def _join(self, config: dict[str, Any]) -> ClientScheduler:
        from scoop._protocol import local_versions

        transport = _plugins.load_transport(config["transport"], config.get("transport_module"))
        endpoint = transport.connect(ConnectOptions(address=config["address"]))
        client = ClientScheduler(
            endpoint,
            run_codec(config, 0),
            0,
            int(config["size"]),
            heartbeat_interval=float(config["heartbeat_interval"]),
        )
        if config.get("trace_dir"):  # trace=, report=, stats=: the client records its side too
            client.trace = Recorder("client", 0, detail=bool(config.get("trace_detail", True)))
            self.trace_dir = str(config["trace_dir"])
        # The session may find the run broken (the broker died): the client's wait for its
        # welcome, and later its communication thread, stop at once then.
        client.comm.parent_alive = lambda: self.broken is None
        try:
            client.join(local_versions(transport.name))
        except LauncherGone:
            endpoint.close()
            client.close_local()
            raise ExecutorStartError(f"the Executor could not start: {self.broken}") from None
        except BaseException:
            endpoint.close()
            client.close_local()
            raise
        return client

    def _abandon_start(self) -> None:
        if self.thread.is_alive():
            self.stop_now = True
            self.shutdown(wait=False, cancel_futures=True)
            return
        self.session.finish(now=True)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self._release()

    # -- the client thread -------------------------------------------------------------------

    def serve(self) -> None:
        """Worker 0's hub until the run ends; then the processes end (the client thread)."""
        client = self.client
        assert client is not None
        _client_thread.active = True
        _runtime.install(client, thread_only=True)
        reason: str | None = None
        try:
            reason = client.serve_client()
        except BaseException as exc:  # a defect: fail the waiters rather than leave them hanging
            logger.exception("the client thread of a scoop.Executor failed")
            reason = f"its client thread failed: {exc!r}"
        finally:
            with contextlib.suppress(Exception):
                client.close()
            if client.trace is not None:
                try:
                    client.trace.write(self.trace_dir)
                except OSError as exc:
                    logger.error("the client's part of the trace was lost: %s", exc)
            with self.lock:
                self.shut_down = True
                if reason is not None and self.broken is None:
                    self.broken = reason
                left = list(self.outstanding)
                self.outstanding.clear()
            for target in left:  # submitted as the run ended: never handed to the client
                self._fail(target, self.broken or "the run ended")
            self.session.finish(now=self.stop_now or self.broken is not None)
            if self.session.thread is not None:
                self.session.thread.join()
            self._release()
            self.finished.set()

    def on_broken(self, reason: str) -> None:
        """The session found the run broken: the broker died, or no worker is left."""
        with self.lock:
            if self.broken is None:
                self.broken = reason
        client = self.client
        if client is not None:
            client.call_soon(lambda: client.break_run(reason))

    def _release(self) -> None:
        with _open_lock:
            if self in _open:
                _open.remove(self)
            if _open:
                _runtime.install(_open[-1].front)
            else:
                _runtime.install(_before[0] if _before else None)
            _serialize.main_by_value = bool(_open)
        atexit.unregister(self.at_exit)

    # -- tasks -------------------------------------------------------------------------------

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes | None,
    ) -> _TaskFuture:
        """A task for ``fn(*args, **kwargs)``, pickled in the calling thread."""
        self._check_open()
        client = self.client
        assert client is not None
        task = client.new_future(fn, args, kwargs, fn_frame)
        target = _TaskFuture(self, task)
        task._callbacks.append(lambda done: self._settle(target, done))
        with self.lock:
            self._check_open()
            self.outstanding.add(target)
            client.call_soon(lambda: client.enqueue(task))
        return target

    def _check_open(self) -> None:
        if self.broken is not None:
            raise run_ended(self.broken)
        if self.shut_down:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _start_settling(self, target: _TaskFuture) -> bool:
        """Whether ``target`` may take an outcome now (False: it was cancelled).

        ``set_running_or_notify_cancel`` may be called once: by whoever settles the future
        (the client thread) or by ``cancel()`` (any thread), whichever comes first.
        """
        with self.lock:
            self.outstanding.discard(target)
            if target._scoop_told:
                return False
            target._scoop_told = True
            return target.set_running_or_notify_cancel()

    def _settle(self, target: _TaskFuture, task: Future[Any]) -> None:
        # The client thread: a task's outcome reaches its concurrent future, unless cancelled.
        if not self._start_settling(target):
            return
        if task._exception is not None:
            target.set_exception(task._exception)
        else:
            target.set_result(task._result)

    def _fail(self, target: _TaskFuture, reason: str) -> None:
        if self._start_settling(target):
            target.set_exception(run_ended(reason))

    def cancelled(self, target: _TaskFuture) -> None:
        """``target.cancel()`` succeeded (any thread): tell its waiters, drop its task."""
        self._start_settling(target)  # concurrent.futures.wait counts it done from now
        client = self.client
        if client is not None:
            client.call_soon(lambda: client.forget(target._scoop_task))

    def pending(self) -> list[Any]:
        """The futures not done yet."""
        with self.lock:
            return list(self.outstanding)

    # -- ending ------------------------------------------------------------------------------

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """See :meth:`Executor.shutdown`."""
        with self.lock:
            first = not self.shut_down
            self.shut_down = True
            cancelling = list(self.outstanding) if cancel_futures else []
        for target in cancelling:
            target.cancel()
        client = self.client
        if first and client is not None:
            client.call_soon(client.close_when_done)
        # In the client thread itself (a done-callback's shutdown) nobody could end the wait.
        if wait and threading.current_thread() is not self.thread:
            self.finished.wait()

    def at_exit(self) -> None:
        """The interpreter ends: a run not shut down ends now; a shut down one, once done."""
        if os.getpid() != self.pid:  # a forked child: the run is its parent's
            return
        if not self.shut_down:
            self.stop_now = True
            self.shutdown(wait=True, cancel_futures=True)
        else:
            self.finished.wait()

    def abandon(self) -> None:
        """Its Executor was collected with the run open: end the run now."""
        if not self.shut_down and os.getpid() == self.pid:
            self.stop_now = True
            self.shutdown(wait=False, cancel_futures=True)


__all__ = ["_ExecutorRun", "_TaskFuture", "_session_module"]
