"""Watching a run's processes: the broker's start, the root's end, workers that end before it.

A mixin of :class:`scoop_launch._lifecycle.Run`. Every process of the run has a thread waiting
for its end, and remote hosts' agents report theirs; all of it arrives on the run's ``events``
queue, which :meth:`Watching.wait` (and, while the broker starts, ``_wait_for_address``) reads.
What ends the run raises a :class:`~scoop_launch._errors.LaunchError`; a worker that ends
early is reported to the broker, which has its tasks run elsewhere.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from scoop_launch._agentlink import AgentLink
from scoop_launch._errors import LaunchError
from scoop_launch._processes import Handle, Local, Named
from scoop_launch._runconfig import RunConfig

__all__ = [
    "BROKER_START_TIMEOUT",
    "ROOT_FAILURE_WAIT",
    "WORKER_STARTUP_FAILED",
    "RootLost",
    "RunProcesses",
    "StartupFailed",
    "Watching",
]

#: How long the broker gets to report its address.
BROKER_START_TIMEOUT = 60.0
#: Exit code of a worker that could not start (scoop._run.STARTUP_FAILED).
WORKER_STARTUP_FAILED = 3
#: When a worker could not start, how long the root gets to end (and show why) before the
#: launcher stops the run.
ROOT_FAILURE_WAIT = 2.0


class StartupFailed(LaunchError):
    """A worker other than the root could not start (it could not import the script, say)."""


class RootLost(LaunchError):
    """The root worker was killed, or the connection to its host broke."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunProcesses:
    """What a Run keeps of its processes, which its parts (mixins) read: declared once."""

    events: queue.Queue[tuple[str, Any]]
    broker: Local | None
    root: Handle | None
    local: list[Local]
    agents: list[AgentLink]
    ending: bool


class Watching(RunProcesses):
    """The events of a run's processes, as the launcher acts on them (mixed into Run)."""

    config: RunConfig

    def _report_gone(self, index: int, reason: str, running: int = 0) -> None:
        raise NotImplementedError

    def _wait_for_address(self) -> str:
        # A worker other than the root that could not start (it could not import the script,
        # say) is dealt with once the run has started, as wait() does: the root, which imports
        # the same script, then gets the time to show the whole traceback.
        could_not_start: list[tuple[str, Any]] = []
        while True:
            try:
                kind, value = self.events.get(timeout=BROKER_START_TIMEOUT)
            except queue.Empty:
                raise LaunchError(
                    f"the broker did not start within {BROKER_START_TIMEOUT} s"
                ) from None
            if kind == "address":
                for event in could_not_start:
                    self.events.put(event)
                return str(value)
            if kind == "exit":
                handle, code = value
                if code == WORKER_STARTUP_FAILED and handle not in (self.broker, self.root):
                    could_not_start.append((kind, value))
                    continue
                self._abort_on_exit(handle, code, before_start=True)
            elif kind == "worker_exit":
                agent, index, code, _ = value
                if int(code) == WORKER_STARTUP_FAILED and index != 0:
                    could_not_start.append((kind, value))
                    continue
                name = f"worker {index} on host {agent.host}"
                self._abort_on_exit(Named(name), int(code), before_start=True)

    # -- waiting -----------------------------------------------------------------------------

    def _abort_on_exit(self, handle: Any, code: int, *, before_start: bool = False) -> None:
        if code == -1 and handle in self.agents:
            how = f"lost their {handle.via} link (or their agent died)"
        elif code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        when = (
            "before the run started"
            if before_start
            else (
                "while the Executor was open" if self.config.client else "before the root finished"
            )
        )
        hint = " (its error is printed above)" if code in (WORKER_STARTUP_FAILED, 1) else ""
        raise LaunchError(f"{handle.name} {how} {when}{hint}; stopping the run")

    def wait(self) -> int:
        """Wait for the root worker; return its exit code (128+N if killed by signal N).

        Another worker that ends before the run does is reported to the broker, which has its
        tasks run elsewhere. The broker, or a worker that could not start, ends the run; in the
        latter case the root gets ROOT_FAILURE_WAIT to end first, since it most often fails the
        same way (it imports the same script) and shows the whole traceback.
        """
        could_not_start: tuple[StartupFailed, float] | None = None
        while True:
            try:
                if could_not_start is None:
                    kind, value = self.events.get()
                else:
                    left = could_not_start[1] - time.monotonic()
                    kind, value = self.events.get(timeout=max(0.0, left))
            except queue.Empty:
                assert could_not_start is not None
                raise could_not_start[0] from None
            try:
                code = self._on_event(kind, value)
            except StartupFailed as failure:
                if could_not_start is None:
                    could_not_start = (failure, time.monotonic() + ROOT_FAILURE_WAIT)
                continue
            if code is not None:
                return code

    def _on_event(self, kind: str, value: Any) -> int | None:
        """Act on one event of :meth:`wait`; return the root's exit code once it ended."""
        if kind == "worker_exit":  # reported by the agent on its host
            _, index, code, running = value
            if index != 0:
                self._worker_ended(f"worker {index}", int(index), int(code), int(running))
            return None
        if kind != "exit":
            return None
        handle, code = value
        code = int(code)
        if handle is self.root and handle is not None:
            if code == -1 and handle in self.agents:
                raise RootLost(
                    f"{handle.name}, the root's among them, lost their {handle.via} link (or "
                    "their agent died); stopping the run",
                    1,
                )
            if code < 0:
                raise RootLost(
                    f"{handle.name} was killed by signal {-code}; stopping the run", 128 - code
                )
            return code
        if handle is self.broker:
            if code != 0:  # it exits with 0 only once the run ends
                self._abort_on_exit(handle, code)
        elif handle in self.agents:
            self._host_ended(handle, code)
        else:
            self._worker_ended(handle.name, handle.index, code, handle.running_task())
        return None

    def _worker_ended(self, name: str, index: int, code: int, running: int) -> None:
        if self.ending:
            return  # workers end with the run: whatever they did then changes nothing
        if code == WORKER_STARTUP_FAILED:
            raise StartupFailed(
                f"{name} could not start (its error is printed above); stopping the run"
            )
        if code < 0:
            how = f"killed by signal {-code}"
        elif code == 0:
            how = "exited with code 0 before the run ended: did a task call os._exit?"
        else:
            how = f"exited with code {code}"
        self._report_gone(index, how, running)

    def _host_ended(self, agent: Any, code: int) -> None:
        # Each worker that ended there was reported by the agent; a lost connection took the
        # others with it (the agent stops them once it hears nothing for --ssh-keepalive).
        if self.ending or code == 0:
            return
        if code == -1:
            how = f"host {agent.host} was lost: its {agent.via} link closed or its agent died"
        else:
            how = f"the agent on host {agent.host} exited with status {code}"
        for index in agent.indices:
            self._report_gone(index, how)

    def failed_workers(self) -> list[str]:
        """Workers (or remote hosts' agents) that failed; call once everything has ended."""
        # Only a worker that could not start counts (exit 3; an agent says 1 for its workers): one
        # killed after the grace period, still busy with a task the root no longer needed, does not.
        failed = [
            p.name
            for p in self.local
            if p is not self.root and p.popen.returncode == WORKER_STARTUP_FAILED
        ]
        failed += [a.name for a in self.agents if a is not self.root and a.exit_status() == 1]
        return failed
