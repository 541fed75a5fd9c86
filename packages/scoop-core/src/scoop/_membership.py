"""Who is in a run, who was lost, and how many times each task's run killed its worker.

The broker keeps this beside its routing state (see :mod:`scoop._broker`). A worker is a member
from its HELLO; it stays one while messages keep coming from it (its communication thread sends a
HEARTBEAT when it has sent nothing else for a while, even while a task runs), and is lost when

* the launcher (or the agent on its host) reports that its process ended before the run did, or
  that its host was lost, or
* nothing came from it for ``heartbeat_timeout`` seconds (stopped, hung, or cut off).

A lost worker's later messages are dropped, and the launcher stops its process if it still runs.
The root is not tracked here: it is a single point of the run, and its loss ends the run (the
launcher sees that).
"""

from __future__ import annotations

import time

#: Default seconds of silence after which a worker is taken for lost (``--heartbeat-timeout``).
HEARTBEAT_TIMEOUT = 30.0
#: Default number of worker deaths a task may cause before it is given up (``--max-task-deaths``).
MAX_TASK_DEATHS = 3


def heartbeat_interval(timeout: float) -> float:
    """How often a worker says it is alive, for a broker that waits ``timeout`` seconds."""
    return min(1.0, timeout / 4) if timeout > 0 else 0.0


class Membership:
    """The broker's record of members, losses and the deaths each task caused."""

    def __init__(
        self,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        max_task_deaths: int = MAX_TASK_DEATHS,
    ) -> None:
        #: Seconds of silence after which a worker is lost; 0 turns the check off.
        self.heartbeat_timeout = heartbeat_timeout
        self.max_task_deaths = max(1, max_task_deaths)
        self.hosts: dict[int, str] = {}
        self.last_heard: dict[int, float] = {}
        #: Workers gone (lost, or left on request) and why; their messages are dropped.
        self.lost: dict[int, str] = {}
        #: Those of them that left on request (not counted as lost).
        self.left: set[int] = set()
        #: Workers added to the run -> the supervisor (launcher) that started them.
        self.supervisor_of: dict[int, int] = {}
        #: Task id -> the deaths its runs caused so far ("worker 2 on host a: killed by ...").
        self.deaths: dict[int, list[str]] = {}
        self.tasks_rerun = 0
        self.tasks_given_up = 0
        self.said_alone = False

    def joined(self, index: int, host: str, supervisor: int | None = None) -> None:
        """Worker ``index`` said HELLO from ``host`` (started by ``supervisor``, if added)."""
        self.hosts[index] = host
        if supervisor is not None:
            self.supervisor_of[index] = supervisor
        if index != 0:
            self.last_heard[index] = time.monotonic()

    def heard(self, index: int, now: float) -> None:
        """A message came from worker ``index``."""
        if index in self.last_heard:
            self.last_heard[index] = now

    def silent(self, now: float) -> list[int]:
        """Workers (the root aside) from which nothing came for ``heartbeat_timeout`` seconds."""
        if self.heartbeat_timeout <= 0:
            return []
        limit = now - self.heartbeat_timeout
        return [index for index, heard in self.last_heard.items() if heard < limit]

    def describe(self, index: int) -> str:
        """A worker as the user's messages name it."""
        return f"worker {index} on host {self.hosts.get(index, '?')}"

    def mark_lost(self, index: int, reason: str, *, left: bool = False) -> None:
        """Record that ``index`` is gone (``left``: on request); its messages are dropped."""
        self.lost[index] = reason
        if left:
            self.left.add(index)
        self.last_heard.pop(index, None)

    def task_killed(self, task_id: int, index: int, reason: str) -> list[str] | None:
        """Count a death caused by ``task_id``; return every death if it must be given up."""
        killed = self.deaths.setdefault(task_id, [])
        killed.append(f"{self.describe(index)} ({reason})")
        if len(killed) < self.max_task_deaths:
            return None
        del self.deaths[task_id]
        self.tasks_given_up += 1
        return killed

    def summary(self) -> str | None:
        """One line for the end of a run in which workers were lost, or None."""
        workers = len(self.lost) - len(self.left)
        if not workers:
            return None
        line = (
            f"scoop: {workers} worker{'s' if workers != 1 else ''} lost during the run; "
            f"{self.tasks_rerun} task{'s' if self.tasks_rerun != 1 else ''} run again"
        )
        if self.tasks_given_up:
            line += f"; {self.tasks_given_up} given up after killing their workers"
        return line


__all__ = ["HEARTBEAT_TIMEOUT", "MAX_TASK_DEATHS", "Membership", "heartbeat_interval"]
