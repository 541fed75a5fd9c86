"""When the communication thread sends results: batched for tiny tasks, at once for long ones.

The thread is not started: its turn (``_send_queued``) is called by hand, at times set by a
fake clock, so that what goes in which message depends on nothing but the rule.
"""

from types import SimpleNamespace

import pytest

from scoop import _comm, _outgoing
from scoop._comm import RESULT_DELAY, Communicator
from scoop._protocol import Codec, Status


class RecordingEndpoint:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        self.sent.append(frames)

    def wakeup(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(now=100.0)
    for module in (_comm, _outgoing):  # the thread's loop, and what it sends
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def entries_per_message(codec: Codec, endpoint: RecordingEndpoint) -> list[int]:
    return [len(codec.decode(frames).entries) for frames in endpoint.sent]


def test_results_of_long_tasks_go_at_once_those_of_tiny_tasks_share_a_message(
    clock: SimpleNamespace,
) -> None:
    codec = Codec(b"s" * 32)
    endpoint = RecordingEndpoint()
    comm = Communicator(endpoint, codec, 1, "worker 1")  # type: ignore[arg-type]

    def result(task: int) -> None:
        comm.add_result((task, Status.OK, [b"x"]))

    result(1)  # the first in a long while: at once
    comm._send_queued()
    assert entries_per_message(codec, endpoint) == [1]
    for task in (2, 3):  # tiny tasks: wait for the others
        clock.now += RESULT_DELAY / 10
        result(task)
        comm._send_queued()
    assert entries_per_message(codec, endpoint) == [1]
    clock.now += RESULT_DELAY
    comm._send_queued()
    assert entries_per_message(codec, endpoint) == [1, 2]
    clock.now += 10 * RESULT_DELAY  # a long task: no wait for more
    result(4)
    comm._send_queued()
    assert entries_per_message(codec, endpoint) == [1, 2, 1]


def test_a_note_alone_still_waits(clock: SimpleNamespace) -> None:
    codec = Codec(b"s" * 32)
    endpoint = RecordingEndpoint()
    comm = Communicator(endpoint, codec, 1, "worker 1")  # type: ignore[arg-type]
    comm.add_result((7, Status.TAKEN, []), note=True)
    comm._send_queued()
    assert endpoint.sent == []
    clock.now += RESULT_DELAY
    comm._send_queued()
    assert entries_per_message(codec, endpoint) == [1]
