"""Error classes raised by SCOOP.

Every error SCOOP raises on purpose derives from :class:`ScoopError`. Transports map their native
errors (``zmq.ZMQError``, ``pynng.NNGException``...) to the :class:`TransportError` family at their
boundary, so that core and user code never see a library-specific exception.
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor

__all__ = [
    "AddressInUse",
    "AuthenticationError",
    "ExecutorBrokenError",
    "ExecutorOptionError",
    "ExecutorStartError",
    "InvalidAddress",
    "KilledWorkerError",
    "LauncherMissingError",
    "NoTransportError",
    "PeerUnreachable",
    "ProtocolError",
    "RemoteTraceback",
    "ScoopError",
    "SerializationError",
    "SharedConstantError",
    "TransportClosed",
    "TransportError",
    "UnknownTransportError",
    "VersionMismatchError",
    "WorkerLostError",
]


class ScoopError(Exception):
    """Base class of every error raised by SCOOP itself."""


class SerializationError(ScoopError):
    """An object could not be pickled or unpickled to travel between workers."""


class SharedConstantError(ScoopError, TypeError):
    """A shared constant was set twice (a TypeError, as in the original SCOOP)."""


class WorkerLostError(ScoopError):
    """A task could not be run to the end because the workers that ran it were lost."""


class KilledWorkerError(WorkerLostError):
    """A task was not run again: the workers that were running it died too many times.

    Like dask's ``KilledWorker``: a task that crashes its worker (a segfault, ``os._exit``, the
    out-of-memory killer) would take down every worker it is given to. After
    ``--max-task-deaths`` such deaths (3 by default) its waiter gets this error, naming the task's
    function and the workers it killed, and the run goes on.
    """


class ProtocolError(ScoopError):
    """A message did not follow the SCOOP wire protocol (malformed or truncated)."""


class AuthenticationError(ProtocolError):
    """A message failed the per-run authentication check; it was dropped unread."""


class VersionMismatchError(ProtocolError):
    """A worker and its broker run incompatible protocol, Python or package versions."""


class TransportError(ScoopError):
    """Base class of the errors a transport raises."""


class TransportClosed(TransportError):
    """The endpoint was closed by this process (you closed it)."""


class PeerUnreachable(TransportError):
    """The peer is unknown, gone, or its connection broke (the peer broke)."""


class AddressInUse(TransportError):
    """The address to bind is already taken by another socket."""


class InvalidAddress(TransportError):
    """The address is malformed or uses a scheme the transport does not serve."""


class NoTransportError(ScoopError):
    """No transport plugin is installed."""


class UnknownTransportError(ScoopError):
    """The transport asked for is not installed."""


class LauncherMissingError(ScoopError, ImportError):
    """Starting workers needs scoop-launch, which is not installed."""


class ExecutorOptionError(ScoopError, ValueError):
    """An option of ``scoop.Executor`` cannot work; the message says which and why."""


class ExecutorStartError(ScoopError):
    """A ``scoop.Executor`` could not start its broker or workers; the message says why."""


class ExecutorBrokenError(ScoopError, BrokenExecutor):
    """The run of a ``scoop.Executor`` ended (its broker died, a worker could not start...).

    Futures that had not finished fail with it, and the Executor takes no more tasks.
    """


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another worker, as text.

    SCOOP sets it as the ``__cause__`` of the exception re-raised in the waiting worker, so that
    the remote frames print above the local ones.
    """

    def __init__(self, traceback_text: str) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback_text.rstrip()}\n"""'
