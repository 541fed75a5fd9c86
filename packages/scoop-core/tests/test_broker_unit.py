"""The broker on its own, driven message by message over the in-memory transport."""

import json
import os
import struct

import pytest

from scoop._balance import APPETITE_SECONDS, MAX_APPETITE, Pace, appetite, handover_count, kept
from scoop._broker import Broker
from scoop._protocol import (
    BROKER_SENDER,
    IDLE_AFTER,
    Codec,
    Kind,
    LostStatus,
    Status,
    idle_arg,
    local_versions,
    queued_arg,
)
from scoop._worker import WorkerScheduler
from scoop.testing import memory_transport
from scoop.transport import BindOptions, ConnectOptions

SECRET = os.urandom(32)


def hello(codec, index, **versions):
    payload = json.dumps({**local_versions("memory"), **versions, "index": index, "host": "t"})
    return codec.encode(Kind.HELLO, index, 0, [(index, 0, [payload.encode()])])


class PerSender:
    """The run's codec, one per sender: each numbers its own stream, as each process does."""

    def __init__(self):
        self._codecs = {}

    def encode(self, kind, sender, *args, **options):
        codec = self._codecs.setdefault(sender, Codec(SECRET))
        return codec.encode(kind, sender, *args, **options)

    def decode(self, frames):
        return Codec(SECRET).decode(frames)


class Net:
    """A bound in-memory endpoint, the run's codecs, and worker connections closed at the end."""

    def __init__(self):
        self.transport = memory_transport()
        self.endpoint = self.transport.bind(BindOptions())
        self.codec = PerSender()
        self._links = []

    def connect(self):
        link = self.transport.connect(ConnectOptions(address=self.endpoint.address))
        self._links.append(link)
        return link

    def broker(self, size):
        return Broker(self.endpoint, Codec(SECRET), "memory", size=size)

    def close(self):
        for link in self._links:
            link.close()
        self.endpoint.close()


@pytest.fixture
def net():
    made = Net()
    try:
        yield made
    finally:
        made.close()


def test_worker_gone_before_the_welcome_does_not_crash_the_broker(net):
    broker = net.broker(2)
    hungry = net.connect()
    hungry.send(hello(net.codec, 1))
    broker.handle(*net.endpoint.recv(5))
    hungry.send(net.codec.encode(Kind.REQUEST, 1, 1))
    broker.handle(*net.endpoint.recv(5))
    assert broker.hungry == {1: 1}  # idle, and would take one task
    leaving = net.connect()
    leaving.send(hello(net.codec, 0))
    peer, frames = net.endpoint.recv(5)
    leaving.close()  # gone before the broker answers (WELCOME, then DEMAND)
    broker.handle(peer, frames)
    assert 0 not in broker.workers and broker.index_of[peer] == 0


def test_messages_before_hello_and_garbage_are_dropped_and_counted(net):
    broker = net.broker(1)
    stranger = net.connect()
    stranger.send(net.codec.encode(Kind.REQUEST, 3, 1))  # authenticated but never said HELLO
    stranger.send([b"garbage"])
    stranger.send(Codec(os.urandom(32)).encode(Kind.HELLO, 0))  # another run's secret
    for _ in range(3):
        broker.handle(*net.endpoint.recv(5))
    assert broker.dropped == 3 and not broker.workers


def test_termination_requested_from_a_signal_handler_is_acted_on_by_the_serve_loop(net):
    broker = net.broker(2)
    worker = net.connect()
    worker.send(hello(net.codec, 1))
    broker.handle(*net.endpoint.recv(5))
    assert net.codec.decode(worker.recv(5)).kind == Kind.WELCOME
    # The handler only records the request: nothing is sent until the loop runs, so a signal
    # landing while the endpoint is in use or being closed cannot break it.
    broker.request_termination(143)
    assert worker.recv(0.05) is None
    broker.serve()
    shutdown = net.codec.decode(worker.recv(5))
    assert (shutdown.kind, shutdown.arg) == (Kind.SHUTDOWN, 143)
    assert broker.stopped and broker.exit_code == 143


def test_a_replayed_message_is_dropped_not_acted_on(net):
    """Someone who captured a worker's messages sends them again: nothing runs twice."""
    broker = net.broker(2)
    worker = net.connect()
    hello_frames = hello(net.codec, 1)
    worker.send(hello_frames)
    worker_peer, frames = net.endpoint.recv(5)
    broker.handle(worker_peer, frames)
    tasks = net.codec.encode(Kind.TASKS, 1, 0, [((1 << 40) | 7, 0, [b"fn", b"args"])])
    worker.send(tasks)
    broker.handle(*net.endpoint.recv(5))
    assert len(broker.queue) == 1 and broker.dropped == 0
    attacker = net.connect()
    for frames in (tasks, hello_frames):  # over its own connection, and over the worker's
        attacker.send(frames)
        broker.handle(*net.endpoint.recv(5))
        worker.send(frames)
        broker.handle(*net.endpoint.recv(5))
    assert len(broker.queue) == 1, "a replayed task was queued again"
    assert broker.workers[1] == worker_peer  # the replayed HELLO did not take its place
    # Not counted as bad: a message sent twice after a reconnection looks the same.
    assert broker.dropped == 0


def test_a_worker_drops_a_replayed_broker_message_and_one_not_from_the_broker(net):
    link = net.connect()
    worker = WorkerScheduler(link, Codec(SECRET), 1, 2, hostname="t")
    link.send([b"hello"])
    peer, _ = net.endpoint.recv(5)
    demand = net.codec.encode(Kind.DEMAND, BROKER_SENDER, 3)
    for frames in (demand, demand, net.codec.encode(Kind.DEMAND, 0, 5)):
        net.endpoint.send(peer, frames)
    while (frames := link.recv(0.5)) is not None:  # as the communication thread reads them
        message = worker.comm._decode(frames)
        if message is not None:
            worker.on_message(message)
    assert worker.demand == 3 and worker.dropped == 1  # the replay is ignored, not counted


def test_tasks_given_out_say_how_many_workers_are_still_idle(net):
    """A worker that gets tasks learns the demand anew: with one task and two idle workers, the
    one that gets it is told that one worker is still idle (else nobody would feed it)."""
    broker = net.broker(3)
    links = []
    for index in range(3):
        link = net.connect()
        link.send(hello(net.codec, index))
        broker.handle(*net.endpoint.recv(5))
        assert net.codec.decode(link.recv(5)).kind == Kind.WELCOME
        links.append(link)
    for index in (1, 2):
        links[index].send(net.codec.encode(Kind.REQUEST, index, 1))
        broker.handle(*net.endpoint.recv(5))
    links[0].send(net.codec.encode(Kind.TASKS, 0, 0, [((0 << 40) | 1, 0, [b"f", b"a"])]))
    broker.handle(*net.endpoint.recv(5))
    kinds = {}
    for index in (1, 2):
        while (frames := links[index].recv(0.2)) is not None:
            message = net.codec.decode(frames)
            kinds.setdefault(index, []).append((message.kind, message.arg))
    given = [index for index in (1, 2) if (Kind.TASKS, 1) in kinds.get(index, [])]
    assert len(given) == 1, kinds


def _joined(net, broker, count):
    links = []
    for index in range(count):
        link = net.connect()
        link.send(hello(net.codec, index))
        broker.handle(*net.endpoint.recv(5))
        assert net.codec.decode(link.recv(5)).kind == Kind.WELCOME
        links.append(link)
    return links


def _send(net, broker, link, *message):
    link.send(net.codec.encode(*message))
    broker.handle(*net.endpoint.recv(5))


def _received(net, link):
    got = []
    while (frames := link.recv(0.1)) is not None:
        got.append(net.codec.decode(frames))
    return got


GIVEN, TAKEN, DELIVERED = Status.GIVEN, Status.TAKEN, Status.DELIVERED
TASK = (0 << 40) | 9  # a task of the root


def test_notes_on_the_direct_path_keep_the_broker_s_record(net):
    """The root sent a task straight to worker 1 (GIVEN), which took it (TAKEN) and sent the
    result straight back (DELIVERED): the broker counts worker 1 busy in between, and knows
    who holds the task."""
    broker = net.broker(3)
    links = _joined(net, broker, 3)
    for index in (1, 2):
        _send(net, broker, links[index], Kind.REQUEST, index, 1)
    _send(net, broker, links[0], Kind.RESULTS, 0, 0, [(TASK, GIVEN, [struct.pack("<I", 1)])])
    assert broker.holder == {TASK: 1} and list(broker.hungry) == [2]
    # Worker 1's word that it is idle, sent before it saw the task, must not count.
    _send(net, broker, links[1], Kind.REQUEST, 1, 1)
    assert list(broker.hungry) == [2]
    _send(net, broker, links[1], Kind.RESULTS, 1, 0, [(TASK, TAKEN, [])])
    assert broker.holder == {TASK: 1} and 1 not in broker.hungry and not broker.coming
    _send(net, broker, links[1], Kind.RESULTS, 1, IDLE_AFTER, [(TASK, DELIVERED, [])])
    assert broker.holder == {} and set(broker.hungry) == {1, 2}
    assert not [m for m in _received(net, links[0]) if m.kind == Kind.RESULTS]  # not forwarded


def test_a_worker_s_notes_before_the_submitter_s_leave_it_idle(net):
    """Worker 1 took the task, ran it and said it is idle before the root's GIVEN came: the
    late note must not take the idle worker off the list (it would never get work again)."""
    broker = net.broker(2)
    links = _joined(net, broker, 2)
    notes = [(TASK, TAKEN, []), (TASK, DELIVERED, [])]
    _send(net, broker, links[1], Kind.RESULTS, 1, IDLE_AFTER, notes)
    assert 1 in broker.hungry and broker.holder == {}
    _received(net, links[0])
    _send(net, broker, links[0], Kind.RESULTS, 0, 0, [(TASK, GIVEN, [struct.pack("<I", 1)])])
    assert 1 in broker.hungry and broker.holder == {} and not broker.coming
    assert not broker.settled_early  # the note found its worker's word: nothing kept
    assert not [m for m in _received(net, links[0]) if m.kind == Kind.DEMAND]  # nothing to tell


def test_a_note_naming_a_lost_worker_has_the_task_run_again(net):
    broker = net.broker(3)
    links = _joined(net, broker, 3)
    broker.lose(2, "killed by signal 9")
    _received(net, links[0])
    _send(net, broker, links[0], Kind.RESULTS, 0, 0, [(TASK, GIVEN, [struct.pack("<I", 2)])])
    (lost,) = [m for m in _received(net, links[0]) if m.kind == Kind.LOST]
    assert [(e.id, e.status) for e in lost.entries] == [(TASK, LostStatus.RERUN)]
    assert TASK not in broker.holder


def test_a_note_on_another_worker_s_task_is_dropped(net):
    broker = net.broker(3)
    links = _joined(net, broker, 3)
    _send(net, broker, links[2], Kind.RESULTS, 2, 0, [(TASK, GIVEN, [struct.pack("<I", 1)])])
    _send(net, broker, links[0], Kind.RESULTS, 0, 0, [((0 << 40) | 10, GIVEN, [b"?"])])
    assert broker.holder == {} and broker.dropped == 2


def _tasks_given(net, links, indices):
    """How many tasks each of ``indices`` was given, and the demand its TASKS said."""
    given = {}
    for index in indices:
        for message in _received(net, links[index]):
            if message.kind == Kind.TASKS:
                given[index] = (len(message.entries), message.arg)
    return given


def _root_tasks(count):
    return [((0 << 40) | i, 0, [b"f", b"a"]) for i in range(1, count + 1)]


def test_a_hand_out_gives_each_worker_at_least_what_it_asked_for(net):
    """Workers that run tiny tasks ask for several (their appetite): 8 tasks for three idle
    workers asking for 4 each go as two messages of 4, not three messages of 3, 3 and 2 (with
    1024 idle workers, a batch of 32 would otherwise become 32 messages of one task); the
    third stays idle, and the two fed are told so (they may hand it some)."""
    broker = net.broker(4)
    links = _joined(net, broker, 4)
    for index in (1, 2, 3):
        _send(net, broker, links[index], Kind.REQUEST, index, 4)
    _send(net, broker, links[0], Kind.TASKS, 0, 0, _root_tasks(8))
    assert _tasks_given(net, links, (1, 2, 3)) == {1: (4, 1), 2: (4, 1)}
    assert list(broker.hungry) == [3] and not broker.queue


def test_a_hand_out_to_workers_asking_for_one_task_still_splits_evenly(net):
    """Tasks of a millisecond or more (appetite 1) spread over every idle worker, as before;
    and a queue larger than the appetites is shared by all."""
    broker = net.broker(4)
    links = _joined(net, broker, 4)
    for index in (1, 2, 3):
        _send(net, broker, links[index], Kind.REQUEST, index, 1)
    _send(net, broker, links[0], Kind.TASKS, 0, 0, _root_tasks(8))
    assert _tasks_given(net, links, (1, 2, 3)) == {1: (3, 0), 2: (3, 0), 3: (2, 0)}
    for index in (1, 2, 3):  # the word that it is idle rides on its results, with its appetite
        _send(net, broker, links[index], Kind.RESULTS, index, idle_arg(2), [])
    assert broker.hungry == {1: 2, 2: 2, 3: 2}
    _send(net, broker, links[0], Kind.TASKS, 0, 0, _root_tasks(12)[8:])
    assert _tasks_given(net, links, (1, 2, 3)) == {1: (2, 1), 2: (2, 1)}


def test_a_worker_that_handed_out_too_few_is_told_how_many_are_still_idle(net):
    """The root was told once that a worker is idle, not again as two more went idle: it hands
    out one of its three long tasks (what a demand of one calls for) and says that one more
    stays queued besides the one it runs next. The broker tells it that two workers are still
    idle, so that it hands that one out too, instead of running both one after the other
    (a flaky check of tests/scripts/api_responsive.py: 3 long tasks on 2 workers)."""
    broker = net.broker(4)
    links = _joined(net, broker, 4)
    for index in (1, 2, 3):
        _send(net, broker, links[index], Kind.REQUEST, index, 1)
    assert [(m.kind, m.arg) for m in _received(net, links[0])] == [(Kind.DEMAND, 1)]
    _send(net, broker, links[0], Kind.TASKS, 0, queued_arg(1), _root_tasks(1))
    assert _tasks_given(net, links, (1, 2, 3)) == {1: (1, 2)}
    assert [(m.kind, m.arg) for m in _received(net, links[0])] == [(Kind.DEMAND, 2)]
    # A hand-out that leaves nothing queued (a client's, the last of a queue): nothing to tell.
    _send(net, broker, links[0], Kind.TASKS, 0, 0, _root_tasks(2)[1:])
    assert _tasks_given(net, links, (1, 2, 3)) == {2: (1, 1)}
    assert not _received(net, links[0])
    # Nobody idle after the hand-out: nothing to tell either.
    _send(net, broker, links[0], Kind.TASKS, 0, queued_arg(5), _root_tasks(3)[2:])
    assert _tasks_given(net, links, (1, 2, 3)) == {3: (1, 0)}
    assert not _received(net, links[0]) and not broker.hungry


def test_appetite_follows_the_time_a_task_takes_and_the_balance_comes_first():
    assert appetite(None) == 1  # nothing known yet: one at a time
    assert appetite(0.0) == MAX_APPETITE
    assert appetite(0.0001) == 10 and appetite(0.002) == 1
    pace = Pace()
    pace.observe(0.0001, 1)
    assert pace.appetite() == 10
    pace.observe(0.5, 1)  # one long task: one at a time again, at once
    assert pace.appetite() == 1
    pace.observe(0.0, 0)  # woke, ran nothing: no news
    assert pace.appetite() == 1
    for _ in range(40):  # only a run of short ones brings the appetite back
        pace.observe(0.00001, 10)
    assert pace.appetite() == MAX_APPETITE


def test_a_worker_keeps_what_it_asked_for_and_hands_out_the_rest():
    # Given its appetite's worth (4) with 5 workers still idle: nothing goes back.
    assert handover_count(4, 5, keep=4) == 0
    assert handover_count(10, 5, keep=4) == 6
    assert handover_count(10, 1, keep=1) == 5  # steal-half, as before
    assert handover_count(10, 0, keep=0) == 0  # nobody idle
    # Tasks longer than its pace said: after their budget, it keeps one only, as before.
    assert kept(8, 0.0) == 8 and kept(8, APPETITE_SECONDS) == 1
