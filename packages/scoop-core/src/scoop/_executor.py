"""``scoop.Executor``: SCOOP from Python and notebooks, as a ``concurrent.futures.Executor``.

Opening one starts a broker and workers through scoop-launch (the launcher's options, defaults
and host sources: locally, over ssh, inside an allocation), then joins the run as worker 0, a
client that runs no task, served by its own thread (see :mod:`scoop._client`). While it is open,
``scoop.futures`` and ``scoop.shared`` called in this process's threads use it, and objects of
``__main__`` (a notebook's cells, the script that opened it) travel by value.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from scoop import _batch, _plugins, _runtime, _serialize
from scoop._client import ClientScheduler, ExecutorFront, settle
from scoop._future import Future
from scoop._protocol import Codec
from scoop.errors import (
    ExecutorBrokenError,
    ExecutorOptionError,
    ExecutorStartError,
    LauncherMissingError,
)
from scoop.transport import ConnectOptions

T = TypeVar("T")

#: Executors open in this process, newest last: ``scoop.futures`` uses the newest.
_open: list[Executor] = []
_open_lock = threading.Lock()


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


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` whose tasks run on SCOOP workers.

    ``Executor(4)`` starts 4 workers on this machine; ``hosts=["a", "b"]`` or ``hostfile=``
    spread them over hosts by ssh, and inside a SLURM, PBS, SGE or LSF allocation its hosts are
    used, as with the launcher. Every other keyword is a launcher option under its long name
    with underscores (``heartbeat_timeout=10``, ``ssh_keepalive=0``, ``python=...`` for
    ``--python-executable``, ``verbose=1``); the defaults are the launcher's.

    This process is a client: it runs no task, so it stays free while the workers compute.
    Tasks may submit and wait on subtasks with ``scoop.futures`` as under the launcher. Futures
    are ``concurrent.futures.Future`` instances; a task's exception is raised with its type,
    message and the remote traceback chained.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        hosts: Sequence[str] | None = None,
        hostfile: str | None = None,
        transport: str | None = None,
        **options: Any,
    ) -> None:
        session_module = _session_module()
        from scoop_launch import LaunchError

        self._lock = threading.Lock()
        self._shut_down = False
        self._stop_now = False
        self._broken: str | None = None
        self._outstanding: set[cf.Future[Any]] = set()
        self._finished = threading.Event()
        launch_options = {
            "workers": workers,
            "hosts": list(hosts) if hosts else None,
            "hostfile": hostfile,
            "transport": transport,
            **options,
        }
        try:
            self._session = session_module.open_session(launch_options, self._on_broken)
        except session_module.OptionError as exc:
            raise ExecutorOptionError(str(exc)) from None
        except LaunchError as exc:
            raise ExecutorStartError(f"the Executor could not start: {exc}") from None
        #: Workers that run tasks (this process runs none).
        self.workers: int = self._session.task_runners
        self._thread = threading.Thread(target=self._serve, name="scoop-client", daemon=True)
        try:
            self._client = self._join(self._session.client_config())
            self._front = ExecutorFront(self._client, self._submit, self._pending, self.workers)
            with _open_lock:
                _open.append(self)
                _runtime.install(self._front)
                _serialize.main_by_value = True
            atexit.register(self._at_exit)
            self._thread.start()
        except BaseException:  # Ctrl-C while it starts among others: leave nothing running
            self._abandon(getattr(self, "_client", None))
            raise

    # -- starting ----------------------------------------------------------------------------

    @staticmethod
    def _join(config: dict[str, Any]) -> ClientScheduler:
        from scoop._broker import local_versions

        transport = _plugins.load_transport(config["transport"], config.get("transport_module"))
        endpoint = transport.connect(ConnectOptions(address=config["address"]))
        client = ClientScheduler(
            endpoint,
            Codec(bytes.fromhex(config["secret"]), payload_digests=config["payload_digests"]),
            0,
            int(config["size"]),
            heartbeat_interval=float(config["heartbeat_interval"]),
        )
        try:
            client.join(local_versions(transport.name))
        except BaseException:
            endpoint.close()
            raise
        return client

    def _abandon(self, client: ClientScheduler | None) -> None:
        if self._thread.is_alive():
            self._stop_now = True
            self.shutdown(wait=False, cancel_futures=True)
            return
        self._session.finish(now=True)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._release()

    def _serve(self) -> None:
        # The client thread: worker 0's hub, until the run ends; then the processes end.
        client = self._client
        _runtime.install(client, thread_only=True)
        try:
            client.serve_client()
        except BaseException as exc:  # a defect: fail the waiters rather than leave them hanging
            client.fail_unfinished(f"its client thread failed: {exc!r}")
        finally:
            try:
                client.close()
            finally:
                with self._lock:
                    self._shut_down = True
                    if self._broken is None and client.broken is not None:
                        self._broken = client.broken
                self._session.finish(now=self._stop_now or self._broken is not None)
                if self._session.thread is not None:
                    self._session.thread.join()
                self._release()
                self._finished.set()

    def _on_broken(self, reason: str) -> None:
        # The session thread: the broker died, or workers could not start.
        with self._lock:
            self._broken = reason
        self._client.call_soon(lambda: self._client.break_run(reason))

    def _release(self) -> None:
        with _open_lock:
            if self in _open:
                _open.remove(self)
            _runtime.install(_open[-1]._front if _open else None)
            _serialize.main_by_value = bool(_open)
        atexit.unregister(self._at_exit)

    # -- submitting --------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; return its ``concurrent.futures.Future``.

        The call is pickled here: one that cannot travel raises SerializationError at once.
        Raises RuntimeError after :meth:`shutdown`, ExecutorBrokenError once the run ended.
        """
        return self._submit(fn, args, kwargs, None)

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn_frame: bytes | None,
    ) -> cf.Future[Any]:
        self._check_open()
        client = self._client
        task = client.new_future(fn, args, kwargs, fn_frame)  # pickled in the caller's thread
        target: cf.Future[Any] = cf.Future()
        task._callbacks.append(lambda done: settle(target, done))
        with self._lock:
            self._check_open()
            self._outstanding.add(target)
            client.call_soon(lambda: client.enqueue(task))
        target.add_done_callback(lambda done: self._on_done(done, task))
        return target

    def _check_open(self) -> None:
        if self._broken is not None:
            raise ExecutorBrokenError(f"the Executor's run ended: {self._broken}")
        if self._shut_down:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _on_done(self, target: cf.Future[Any], task: Future[Any]) -> None:
        with self._lock:
            self._outstanding.discard(target)
        if target.cancelled():
            self._client.call_soon(lambda: self._client.forget(task))

    def _pending(self) -> list[cf.Future[Any]]:
        with self._lock:
            return list(self._outstanding)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """Like ``concurrent.futures.Executor.map`` (Python 3.14's, ``buffersize`` included).

        Results come in input order. ``timeout`` counts from this call. ``chunksize`` items
        travel and run as one task. With ``buffersize``, at most that many tasks are in flight
        and the iterables are read as results are taken; without, they are read now.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        if buffersize is not None:
            if not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        deadline = None if timeout is None else time.monotonic() + timeout
        items = zip(*iterables, strict=False)
        calls: Iterator[Any] = items
        if chunksize > 1:
            calls = iter(lambda: list(itertools.islice(items, chunksize)), [])
            chunk_frame = self._client.pickle_function(_batch.run_chunk)

            def submit_next(call: Any) -> cf.Future[Any]:
                return self._submit(_batch.run_chunk, (fn, call), {}, chunk_frame)

        else:
            fn_frame = self._client.pickle_function(fn)

            def submit_next(call: Any) -> cf.Future[Any]:
                return self._submit(fn, call, {}, fn_frame)

        first = calls if buffersize is None else itertools.islice(calls, buffersize)
        in_flight = deque(submit_next(call) for call in first)
        more = None if buffersize is None else calls
        return _map_results(in_flight, more, submit_next, deadline, chunksize > 1)

    # -- ending ------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more tasks; end the run once the submitted ones are done.

        ``cancel_futures`` cancels the futures not yet done (their tasks may still run, their
        results are dropped). ``wait`` waits until every process of the run has ended.
        """
        with self._lock:
            first = not self._shut_down
            self._shut_down = True
            cancelling = list(self._outstanding) if cancel_futures else []
        for target in cancelling:
            target.cancel()
        if first:
            self._client.call_soon(self._client.close_when_done)
        if wait:
            self._finished.wait()

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is not None:
            # An exception leaves the block (Ctrl-C in a notebook cell among them): nobody will
            # read the results, so the run ends now, tasks running or not.
            self._stop_now = True
            self.shutdown(wait=True, cancel_futures=True)
        else:
            self.shutdown(wait=True)

    def _at_exit(self) -> None:
        # The interpreter ends with the Executor open (a kernel restarted, a script that never
        # shut it down): end the run now rather than leave workers behind.
        self._stop_now = True
        self.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        state = "broken" if self._broken else ("shut down" if self._shut_down else "open")
        return f"<scoop.Executor {self.workers} workers, {state}>"


def _map_results(
    in_flight: deque[cf.Future[Any]],
    more: Iterator[Any] | None,
    submit_next: Callable[[Any], cf.Future[Any]],
    deadline: float | None,
    chunked: bool,
) -> Iterator[Any]:
    try:
        while in_flight:
            fut = in_flight.popleft()
            value = fut.result(None if deadline is None else deadline - time.monotonic())
            if more is not None:
                call = next(more, None)
                if call is not None:
                    in_flight.append(submit_next(call))
            if chunked:
                yield from _batch.unwrap(value)
            else:
                yield value
    finally:
        for fut in in_flight:
            fut.cancel()


__all__ = ["Executor"]
