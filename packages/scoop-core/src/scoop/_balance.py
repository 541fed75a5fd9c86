"""The load-balancing policy: how many queued tasks a worker hands to idle workers.

Steal-half: when ``demand`` workers are idle, a worker splits its queue evenly among itself and
them in one message, ``queued * demand // (demand + 1)`` tasks, at least one. It keeps one task
for itself only when it would otherwise have nothing to run next: not while a task of its own
runs or is ready to resume, and not while one of its tasks waits with a timeout (tasks are not
preempted, so a task it ran itself would hold that waiter past its timeout).
"""

from __future__ import annotations


def handover_count(queued: int, demand: int, *, keep_one: bool) -> int:
    """How many of ``queued`` tasks to hand to ``demand`` idle workers."""
    if demand <= 0:
        return 0
    surplus = queued - (1 if keep_one else 0)
    if surplus <= 0:
        return 0
    return min(surplus, max(1, queued * demand // (demand + 1)))
