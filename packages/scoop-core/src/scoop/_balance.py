"""The load-balancing policy: how many tasks a worker takes at once, and how many it hands out.

Appetite: an idle worker says how many tasks it would take at once (the broker gives it at
least that many when it has them, scoop._dispatch): as many as it ran in ``APPETITE_SECONDS``
lately, at most ``MAX_APPETITE``, one while it does not know. Tiny tasks then travel several a
message, and the last of them waits no longer than a result may wait to share a message
(``RESULT_DELAY``); a task of a millisecond or more goes alone, to the first idle worker.

Steal-half: when ``demand`` workers are idle, a worker splits its queue evenly among itself and
them in one message, ``queued * demand // (demand + 1)`` tasks, at least one. It keeps its
appetite's worth for itself (while its tasks take no longer than their budget, see
:func:`kept`; else one) only when it would otherwise have nothing to run next: not while a task
of its own runs or is ready to resume, and not while one of its tasks waits with a timeout
(tasks are not preempted, so a task it ran itself would hold that waiter past its timeout). So
the tasks it asked for are not handed straight back to the broker.
"""

from __future__ import annotations

#: A worker takes at once the tasks it runs in this long (the communication thread's
#: RESULT_DELAY: the results of such a batch go in one message anyway).
APPETITE_SECONDS = 0.001
#: Most tasks a worker asks for at once.
MAX_APPETITE = 64


def appetite(seconds_per_task: float | None) -> int:
    """How many tasks to ask for, given the time a task took lately (None: not known yet)."""
    if seconds_per_task is None:
        return 1  # nothing known: one at a time, the balance first
    if seconds_per_task * MAX_APPETITE <= APPETITE_SECONDS:
        return MAX_APPETITE
    return max(1, int(APPETITE_SECONDS / seconds_per_task))


class Pace:
    """A worker's recent time per task: up at once on slower tasks, down by a quarter a step.

    The asymmetry keeps the balance first: one long task makes the worker ask for one task
    at a time again, and only a run of short ones makes it ask for more.
    """

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: float | None = None

    def observe(self, busy: float, tasks: int) -> None:
        """``tasks`` ended over ``busy`` seconds of the main thread's work."""
        if tasks <= 0:
            return
        per_task = busy / tasks
        known = self.seconds
        if known is None or per_task > known:
            self.seconds = per_task
        else:
            self.seconds = known - (known - per_task) / 4

    def appetite(self) -> int:
        """How many tasks to ask for now (see :func:`appetite`)."""
        return appetite(self.seconds)


def kept(appetite: int, busy_for: float) -> int:
    """How many queued tasks a worker with nothing else to run keeps from idle workers.

    Its appetite while it has been at work for less than ``APPETITE_SECONDS`` since it woke or
    asked (the tasks it asked for run in that time, if they are as short as the last ones),
    else one: a batch of tasks longer than its pace said goes on to idle workers before the
    second one starts.
    """
    return appetite if busy_for < APPETITE_SECONDS else 1


def handover_count(queued: int, demand: int, *, keep: int) -> int:
    """How many of ``queued`` tasks to hand to ``demand`` idle workers, keeping ``keep``."""
    if demand <= 0:
        return 0
    surplus = queued - keep
    if surplus <= 0:
        return 0
    return min(surplus, max(1, queued * demand // (demand + 1)))
