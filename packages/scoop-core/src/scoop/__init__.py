"""SCOOP: Scalable COncurrent Operations in Python.

Spread a Python program over every core of a machine, a cluster or a grid::

    from scoop import futures
    results = list(futures.map(f, data))     # run with: python -m scoop_launch script.py

Layout of the package (private modules start with an underscore and are re-exported here)::

    futures.py      the public API: submit, map, wait, as_completed, mapReduce, mapScan...
    _executor.py    scoop.Executor: a concurrent.futures.Executor that starts its own workers
    _executorrun.py the run behind an open Executor: its session, client thread and futures
    _client.py      an Executor's client: its thread (worker 0, runs no task), its user's side
    shared.py       setConst / getConst: constants broadcast to every worker
    errors.py       every error class SCOOP raises
    transport.py    the transport interface (Protocols) that plugins implement
    hookspecs.py    the pluggy hooks: how a plugin provides transports
    testing/        the conformance kit for transports, and an in-memory transport
    _future.py      the Future type
    _scheduler.py   the greenlet scheduler of one worker (serial mode uses it alone)
    _waiting.py     its waits: parked greenlets, waiters that futures notify, timeouts
    _worker.py      the scheduler on a network (main thread): joining, leaving, the root task
    _inbox.py       what its main thread reads from the network: results, losses, constants
    _handover.py    a worker's queued tasks handed to the broker (demand, timeouts, losses)
    _comm.py        a worker's communication thread: owns the endpoint, answers while tasks run
    _outgoing.py    what that thread sends: posted messages, batched results, the word "idle"
    _balance.py     the load-balancing policy: how many queued tasks go to idle workers
    _outcome.py     a task's outcome as it travels: exceptions, tracebacks, exit codes
    _slot.py        the running-task slot: which task a worker runs, read after it died
    _broker.py      the broker: routes frames, never unpickles payloads
    _joins.py       the broker's side of workers that join (HELLO, WELCOME, reconnections)
    _relays.py      what the broker relays besides tasks: constants, cancellations, progress
    _membership.py  who is in the run, who was lost and why, deaths per task
    _departures.py  the broker's side of lost and leaving workers: reruns, the root alone
    _streams.py     the broker's numbered, acknowledged stream to each worker, and its sends
    _supervisor.py  the connection of a launcher that added workers to a running run
    _protocol.py    message framing, authentication, the codec of a run's processes
    _sequence.py    numbered streams: sequence checks and outboxes
    _digest.py      payload digests (large frames in blocks, on every core)
    _spill.py       large payloads in shared memory between the processes of one machine
    _serialize.py   pickling with out-of-band buffers
    _plugins.py     transport discovery through entry points
    _run.py         process entry points started by the launcher
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from scoop._install_check import mixed_with_original

if (_problem := mixed_with_original()) is not None:
    raise ImportError(_problem)

from scoop.errors import RemoteTraceback, ScoopError

if TYPE_CHECKING:
    from scoop import futures, shared
    from scoop._executor import Executor

__all__ = [
    "BROKER_ADDRESS",
    "DEBUG",
    "IS_ORIGIN",
    "IS_RUNNING",
    "SIZE",
    "Executor",
    "RemoteTraceback",
    "ScoopError",
    "__version__",
    "futures",
    "logger",
    "shared",
    "worker",
]

__version__ = "0.1.0"

#: True inside a run started by the launcher; False when futures run serially in-process.
IS_RUNNING = False
#: True on the worker that runs the user's script as ``__main__`` (the root).
IS_ORIGIN = True
#: Number of workers in the run (1 outside a run).
SIZE = 1
#: This worker, as ``(hostname, index)``; the root is index 0. None outside a run.
worker: tuple[str, int] | None = None
#: The address workers use to reach the broker (for diagnostics). None outside a run. Set once
#: the broker is bound: the root starts before it, and reading this there waits for it.
BROKER_ADDRESS: str | None
#: True when the launcher was given ``--debug``.
DEBUG = False
#: The logger SCOOP and its users log to (``scoop.logger.warning(...)``).
logger = logging.getLogger("scoop")


def __getattr__(name: str) -> Any:
    # `futures` and `shared` load on first use, so that the launcher, which only needs the
    # plugin machinery, does not pay for greenlet and cloudpickle.
    if name in ("futures", "shared"):
        return importlib.import_module(f"scoop.{name}")
    if name == "BROKER_ADDRESS":  # not set yet
        from scoop._rootstart import broker_address

        return broker_address()
    if name == "Executor":
        from scoop._executor import Executor

        return Executor
    raise AttributeError(f"module 'scoop' has no attribute {name!r}")
