"""``scoop.Executor``: SCOOP from Python and notebooks, as a ``concurrent.futures.Executor``.

Opening one starts a broker and workers through scoop-launch (the launcher's options, defaults
and host sources: locally, over ssh, inside an allocation), then joins the run as worker 0, a
client that runs no task, served by its own thread (see :mod:`scoop._client`). While it is open,
``scoop.futures`` and ``scoop.shared`` called in this process's threads use it, and objects of
``__main__`` (a notebook's cells, the script that opened it) travel by value.

The run lives in an :class:`scoop._executorrun._ExecutorRun`, which the client thread,
``atexit`` and the futures refer to; the Executor object only fronts it, so that an Executor
nobody refers to any more (a notebook cell run twice) is collected, and its run ended, as
``ProcessPoolExecutor``'s is.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from scoop import _batch
from scoop._executorrun import _ExecutorRun, _session_module
from scoop.errors import ExecutorOptionError, ExecutorStartError

T = TypeVar("T")


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
    message and the remote traceback chained. ``cancel()`` works until a task's result is back
    (not only before it starts): a task not started yet is dropped wherever it waits; one
    already running runs on, its result dropped.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        hosts: Sequence[str] | str | None = None,
        hostfile: str | None = None,
        transport: str | None = None,
        **options: Any,
    ) -> None:
        session_module = _session_module()
        from scoop_launch import LaunchError

        if isinstance(hosts, str):
            hosts = [hosts]
        launch_options = {
            "workers": workers,
            "hosts": list(hosts) if hosts else None,
            "hostfile": hostfile,
            "transport": transport,
            **options,
        }
        broken: list[str] = []
        run: _ExecutorRun | None = None

        def on_broken(reason: str) -> None:  # the session thread; the run may not exist yet
            if run is None:
                broken.append(reason)
            else:
                run.on_broken(reason)

        try:
            session = session_module.open_session(launch_options, on_broken)
        except session_module.OptionError as exc:
            raise ExecutorOptionError(str(exc)) from None
        except LaunchError as exc:
            raise ExecutorStartError(f"the Executor could not start: {exc}") from None
        run = _ExecutorRun(session)
        if broken:
            run.broken = broken[0]
        run.open()
        self._run = run
        #: Workers that run tasks (this process runs none).
        self.workers: int = run.task_runners
        # Collected while open (a notebook cell that opens one, run twice): end its run. At the
        # interpreter's end, run.at_exit does what is due.
        weakref.finalize(self, run.abandon).atexit = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; return its ``concurrent.futures.Future``.

        The call is pickled here: one that cannot travel raises SerializationError at once.
        Raises RuntimeError after :meth:`shutdown`, ExecutorBrokenError once the run ended.
        """
        return self._run.submit(fn, args, kwargs, None)

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
        and the iterables are read as results are taken; without, they are read now. Leaving
        the results unread (closing the iterator, an exception, a timeout) cancels the rest.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        if buffersize is not None:
            if not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self._run
        client = run.client
        assert client is not None
        items = zip(*iterables, strict=False)
        calls: Iterator[Any] = items
        if chunksize > 1:
            calls = iter(lambda: list(itertools.islice(items, chunksize)), [])
            chunk_frame = client.pickle_function(_batch.run_chunk)

            def submit_next(call: Any) -> cf.Future[Any]:
                return run.submit(_batch.run_chunk, (fn, call), {}, chunk_frame)

        else:
            fn_frame = client.pickle_function(fn)

            def submit_next(call: Any) -> cf.Future[Any]:
                return run.submit(fn, call, {}, fn_frame)

        first = calls if buffersize is None else itertools.islice(calls, buffersize)
        in_flight = deque(submit_next(call) for call in first)
        more = None if buffersize is None else calls
        return _map_results(in_flight, more, submit_next, deadline, chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more tasks; end the run once the submitted ones are done.

        ``cancel_futures`` cancels the futures not yet done (see the class's note on
        cancelling). ``wait`` waits until every process of the run has ended.
        """
        self._run.shutdown(wait, cancel_futures)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is not None:
            # An exception leaves the block (Ctrl-C in a notebook cell among them): nobody will
            # read the results, so the run ends now, tasks running or not.
            self._run.stop_now = True
            self.shutdown(wait=True, cancel_futures=True)
        else:
            self.shutdown(wait=True)

    def __repr__(self) -> str:
        run = self._run
        state = "broken" if run.broken else ("shut down" if run.shut_down else "open")
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
            if more is not None:  # as Python 3.14: the next call goes out before the wait
                call = next(more, None)
                if call is not None:
                    in_flight.append(submit_next(call))
            fut = in_flight.popleft()
            try:
                value = fut.result(None if deadline is None else deadline - time.monotonic())
            except BaseException:
                fut.cancel()
                raise
            if chunked:
                yield from _batch.unwrap(value)
            else:
                yield value
    finally:
        for fut in in_flight:
            fut.cancel()


__all__ = ["Executor"]
