"""A worker hands the tasks queued behind the one it runs on to idle workers.

The communication thread is not started: the main thread's hand-out (``offload``) and the
thread's turn (``_serve``, stopped at its first wait) are called by hand, so that what is sent,
and how long the thread would block, depend on nothing but the rule.
"""

import os

import pytest

from scoop._comm import DIRECT_POLL_INTERVAL, IDLE_CHECK_INTERVAL
from scoop._protocol import (
    BROKER_SENDER,
    Codec,
    Entry,
    Kind,
    Message,
    idle_arg,
    queued_arg,
    queued_of,
)
from scoop._worker import WorkerScheduler

SECRET = os.urandom(32)


class StopTurn(Exception):
    """Raised by the endpoint where the communication thread would block."""


class Endpoint:
    """Keeps what is sent; records how long each ``recv`` would block, and stops the turn."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []
        self.waits: list[float] = []

    def send(self, frames: list[bytes]) -> None:
        self.sent.append(frames)

    def recv(self, timeout: float) -> list[bytes] | None:
        self.waits.append(timeout)
        raise StopTurn

    def wakeup(self) -> None:
        pass


@pytest.fixture
def worker():
    made = WorkerScheduler(Endpoint(), Codec(SECRET), 1, 1, hostname="t")
    try:
        yield made
    finally:
        made.close_local()


def test_a_hand_out_of_surplus_says_how_many_tasks_stay_queued(worker):
    """Three tasks queued, one worker idle as far as it knows: one goes, and the TASKS says one
    more stays queued besides the one it runs next (the broker may know of more idle workers
    and then says so: see test_broker_unit)."""
    for x in range(3):
        worker.submit(abs, (x,), {})
    worker.demand = 1
    worker.pace_since -= 1.0  # at work for a while: it keeps one task only (scoop._balance.kept)
    worker.offload()
    ((kind, arg, entries),) = worker.comm._outgoing
    assert kind == Kind.TASKS and len(entries) == 1 and worker.demand == 0
    assert queued_of(arg) == 1 and len(worker.local) == 2


def test_the_idle_word_replaces_the_count_of_tasks_still_queued(worker):
    worker.comm.post(Kind.TASKS, queued_arg(3), [])  # 3 stay queued ...
    worker.comm.request_work(4)  # ... then ran them, and has nothing left: idle
    worker.comm._send_queued()
    message = Codec(SECRET).decode(worker.comm.endpoint.sent[-1])
    assert (message.kind, message.arg) == (Kind.TASKS, idle_arg(4))


def _turn(worker) -> float:
    """How long the communication thread would block at its next turn."""
    with pytest.raises(StopTurn):
        worker.comm._serve(worker)
    return worker.comm.endpoint.waits[-1]


def test_the_communication_thread_keeps_its_turns_short_once_it_woke_the_main_thread(worker):
    """Tasks came while the main thread slept: the communication thread queued them and woke it,
    and looks at how long it may block before the main thread has started the first. It must
    look again within DIRECT_POLL_INTERVAL (whence the second goes on to an idle worker if the
    first turns out long), not block for a whole turn because the main thread was not at work
    yet: then the second waited for the first (a flaky check of tests/scripts/api_responsive.py).
    """
    worker.wake_event._sleeping = True  # the main thread sleeps, nothing queued
    assert _turn(worker) == IDLE_CHECK_INTERVAL
    tasks = [Entry((2 << 40) | i, 0, b"", [b"f", b"a"]) for i in (1, 2)]
    worker.on_message(Message(Kind.TASKS, BROKER_SENDER, 2, tasks))
    assert len(worker.local) == 2 and not worker.busy  # woken, not at work yet
    assert _turn(worker) <= DIRECT_POLL_INTERVAL
    worker.wake_event.clear()
    worker.wake_event._sleeping = False  # at work
    assert _turn(worker) <= DIRECT_POLL_INTERVAL
