"""A worker runs tasks submitted elsewhere, and finishes its own futures with their results.

A mixin of :class:`scoop._worker.WorkerScheduler`. A task that came over the network is checked
(its tag, or its digest), its function and arguments are unpickled, it runs, and its result (or
its exception, with the worker named) goes back: straight to a worker of this machine when that
one awaits it (scoop._directpeers), else through the broker. A result that cannot be pickled
fails here with a :class:`~scoop.errors.SerializationError`, as it does where it was submitted
(:meth:`ForeignTasks.result_problem`): a program must not work only when a task happened to run
where it was submitted.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from scoop import _batch, _serialize
from scoop._comm import Communicator
from scoop._future import Future, TaskUnwound
from scoop._outcome import TaskLoadError, pack_exception, rebuild_exception
from scoop._protocol import Codec, Entry, Status
from scoop.errors import SerializationError
from scoop.transport import Frame

__all__ = ["ForeignTasks"]

#: Functions kept unpickled, by their pickle (most tasks of a run share a few functions).
_FUNCTION_CACHE_SIZE = 256
#: A function pickled larger than this carries data by value: not worth keeping.
_FUNCTION_CACHE_MAX_FRAME = 64 * 1024


class ForeignTasks:
    """Running tasks from elsewhere, and results from elsewhere (mixed into WorkerScheduler)."""

    codec: Codec
    comm: Communicator
    trace: Any
    _functions: dict[bytes, Any]

    if TYPE_CHECKING:  # defined by the class this is mixed into (and scoop._directpeers)

        @property
        def where(self) -> str: ...

        def _result_directly(self, task_id: int, status: int, frames: list[Frame]) -> bool: ...

    def _load_function(self, frame: Frame) -> Any:
        key = bytes(frame)
        fn = self._functions.get(key)
        if fn is None:
            fn = pickle.loads(key)
            if len(key) > _FUNCTION_CACHE_MAX_FRAME:
                return fn  # a function that carries data by value: not worth keeping
            if len(self._functions) >= _FUNCTION_CACHE_SIZE:
                self._functions.clear()
            self._functions[key] = fn
        return fn

    def run_foreign(self, task: Entry) -> None:
        task_id = task.id
        try:
            frames = self.codec.open(task)
            fn = self._load_function(frames[0])
            args, kwargs = _serialize.loads(frames[1:])
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
            self._queue_result(task_id, Status.RAISED, pack_exception(error, self.where))
            return
        del task, frames  # the payload frames are not needed while the task runs
        try:
            value = fn(*args, **kwargs)
        except TaskUnwound:
            raise
        except BaseException as exc:
            if self.trace is not None:
                self.trace.failed(task_id, exc)
            self._queue_result(task_id, Status.RAISED, pack_exception(exc, self.where))
            return
        try:
            frames = _serialize.dumps(value)
        except Exception as exc:
            result_error = self._unpicklable_result(fn, args, value, exc)
            self._queue_result(task_id, Status.RAISED, pack_exception(result_error, self.where))
        else:
            self._queue_result(task_id, Status.OK, frames)

    def result_problem(self, fut: Future[Any], value: Any) -> BaseException | None:
        """A result that cannot be pickled fails here as it would on another worker.

        A task may run on any worker: a program must not work only when the scheduler happened
        to run a task where it was submitted. Out-of-band buffers are not copied by the check.
        """
        try:
            _serialize.check_picklable(value)
        except Exception as exc:
            return self._unpicklable_result(fut._fn, fut._args, value, exc)
        return None

    def _unpicklable_result(
        self, fn: Any, args: tuple[Any, ...], value: Any, exc: Exception
    ) -> SerializationError:
        what = f"the result of {_serialize.describe(fn)}, {_serialize.describe(value)},"
        if fn is _batch.run_chunk:  # a chunk of a map: name the user's function and item
            what = _batch.describe_unpicklable(args[0], args[1], value) or what
        return SerializationError(
            f"{what} on {self.where} cannot be pickled to travel back: {_serialize.safe_str(exc)}"
        )

    def _queue_result(self, task_id: int, status: int, frames: list[Frame]) -> None:
        if not self._result_directly(task_id, status, frames):
            self.comm.add_result((task_id, status, frames))

    def deliver(self, fut: Future[Any], entry: Entry) -> None:
        """Finish one of our futures with a result that came back from another worker."""
        try:
            frames = self.codec.open(entry)
            if entry.status == Status.OK:
                value = _serialize.loads(frames)
            else:
                fut._set_exception(rebuild_exception(frames))
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
