"""The broker and workers of a ``scoop.Executor``: a run whose worker 0 is the opening process.

``scoop.Executor`` (in scoop-core) calls :func:`open_session` with the launcher's options. The
session starts the broker and the workers as the launcher would (locally, over ssh, inside an
allocation; same options, defaults and checks, see :mod:`scoop_launch._config`), with no script:
worker 0 is the Executor's own process, a client that submits and runs no task. Then one thread
watches the processes as ``Run.wait`` does: a worker that dies is reported to the broker, which
has its tasks run elsewhere; a broker that dies, or workers that cannot start, end the session
and the Executor hears why (``on_broken``).

The processes are started from that thread, which lives as long as the session: Linux ends a
child whose parent *thread* ends (the workers' death signal, see scoop._run), so they must not be
started from a caller's short-lived thread.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from scoop_launch._config import OptionError, prepare, run_config
from scoop_launch._errors import LaunchError
from scoop_launch._lifecycle import Run
from scoop_launch._options import RemoteHostError

#: Executor keywords whose launcher option has another name.
_RENAMED = {"python": "python_executable"}
#: Launcher options that make no sense for an Executor.
_NOT_FOR_EXECUTORS = frozenset(
    {"script", "args", "add_workers", "run", "dry_run", "list_transports", "root_runs_no_task"}
)


class _RaisingParser(argparse.ArgumentParser):
    """The launcher's parser, but a bad option raises instead of ending the process."""

    def error(self, message: str) -> NoReturn:
        raise OptionError(message, hint=False)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise OptionError((message or f"exit status {status}").strip(), hint=False)


def _parser() -> argparse.ArgumentParser:
    from scoop_launch._parser import build_parser

    return build_parser(_RaisingParser)  # same options, defaults and checks; errors raise


def option_names() -> list[str]:
    """The keyword arguments an Executor passes on to the launcher."""
    names = {action.dest for action in _parser()._actions if action.dest != "help"}
    renamed = {launcher: executor for executor, launcher in _RENAMED.items()}
    return sorted(renamed.get(name, name) for name in names - _NOT_FOR_EXECUTORS)


def to_argv(options: dict[str, Any]) -> list[str]:
    """The launcher's command line for an Executor's keyword arguments."""
    parser = _parser()
    flags = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in _NOT_FOR_EXECUTORS
    }
    argv: list[str] = []
    for name, value in options.items():
        action = flags.get(_RENAMED.get(name, name))
        if action is None:
            known = ", ".join(option_names())
            raise OptionError(f"unknown option {name!r}; an Executor takes: {known}", hint=False)
        flag = max(action.option_strings, key=len)
        if value is None or value is False:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(flag)
        elif isinstance(action, argparse._CountAction):
            argv.extend([flag] * int(value))
        elif isinstance(value, list | tuple):
            argv.extend([flag, *map(str, value)])
        else:
            argv.extend([flag, str(value)])
    return argv


class Session(Run):
    """A run of workers for an Executor whose process is worker 0."""

    def __init__(self, options: argparse.Namespace) -> None:
        self._options = options
        self._prepared = prepare(options)
        super().__init__(run_config(options, self._prepared, None, client=True))
        self.forward_stdin = False
        self.address = ""
        #: Set by :meth:`finish` (an event of its own: starting reads ``events`` too).
        self._finishing = threading.Event()
        self._kill_at_finish = False
        #: The session thread: it started the processes and watches them (see the docstring).
        self.thread: threading.Thread | None = None
        #: Workers lost so far.
        self._gone: set[int] = set()

    @property
    def task_runners(self) -> int:
        """Workers that run tasks (all but the client)."""
        return self.config.size - 1

    def client_config(self) -> dict[str, Any]:
        """What the Executor's process needs to join the run as worker 0."""
        return {
            **self._common(),
            "address": self.address,
            "size": self.config.size,
            "heartbeat_interval": self._heartbeat_interval,
        }

    def _shared_worker_config(self) -> dict[str, Any]:
        # The client's own entries of sys.path (not its interpreter's): its modules import on
        # the workers as they do here.
        return {**super()._shared_worker_config(), "path": _user_paths()}

    def _report_gone(self, index: int, reason: str, running: int = 0) -> None:
        super()._report_gone(index, reason, running)
        # The client runs no task: with no worker left, nothing would ever finish.
        self._gone.add(index)
        if len(self._gone) >= self.task_runners:
            raise LaunchError(
                f"every worker of the Executor was lost (the last, worker {index}: {reason})"
            )

    def run(
        self, started: queue.SimpleQueue[BaseException | None], on_broken: Callable[[str], None]
    ) -> None:
        """Start everything, then watch the processes until :meth:`finish` (the session thread)."""
        try:
            self.start()
            assert self.broker_address is not None
            self.address = self.broker_address
        except BaseException as exc:
            self.terminate()
            self._prepared.close_connections()
            started.put(exc)
            return
        started.put(None)
        failure: LaunchError | None = None
        try:
            if not self._finishing.is_set():
                failure = self._watch_until_finished()
            if failure is not None:
                on_broken(str(failure))
        finally:
            if failure is not None or self._kill_at_finish:
                self.terminate()
            else:
                self.stop()
            self._prepared.close_connections()

    def _watch_until_finished(self) -> LaunchError | None:
        while True:
            kind, value = self.events.get()
            if kind == "finish":
                return None
            try:
                self._on_event(kind, value)
            except LaunchError as failure:  # the broker died, a worker could not start
                return failure

    def finish(self, *, now: bool) -> None:
        """The Executor is done: let the processes end (``now``: kill them at once)."""
        self._kill_at_finish = now
        self._finishing.set()
        self.events.put(("finish", None))


def _user_paths() -> list[str]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}

    def installed(path: str) -> bool:
        return any(path == p or path.startswith(p + os.sep) for p in prefixes) or any(
            part in ("site-packages", "dist-packages") for part in path.split(os.sep)
        )

    return [path for path in sys.path if not installed(path)]


def open_session(options: dict[str, Any], on_broken: Callable[[str], None]) -> Session:
    """Start the broker and workers of an Executor, with the launcher's options.

    Returns once the broker is bound and the workers started (they join on their own). Raises
    OptionError for options that cannot work and LaunchError when the run cannot start.
    """
    namespace = _parser().parse_args(to_argv(options))
    try:
        session = Session(namespace)
    except RemoteHostError as exc:
        raise LaunchError(f"cannot place workers: {exc}") from None
    started: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
    session.thread = threading.Thread(
        target=session.run, args=(started, on_broken), name="scoop-session", daemon=True
    )
    session.thread.start()
    try:
        problem = started.get()
    except BaseException:  # Ctrl-C while it starts: end it as soon as it has
        session.finish(now=True)
        raise
    if problem is not None:
        raise problem
    return session


__all__ = ["OptionError", "Session", "open_session", "option_names"]
