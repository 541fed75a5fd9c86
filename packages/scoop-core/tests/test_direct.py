"""The direct path's pieces on their own: the datagram channel and the main thread's wake-up."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pytest

from scoop._direct import (
    DIRECT_MAX_BYTES,
    DirectChannel,
    MainWake,
    pack_frames,
    remove_channels,
    unpack_frames,
)
from scoop._protocol import Codec, Entry, Kind
from scoop.errors import ProtocolError

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the direct path uses Linux's abstract sockets"
)


@pytest.fixture
def pair():
    codec = Codec(os.urandom(32))
    made = [DirectChannel(codec, 0, "root"), DirectChannel(codec, 1, "worker 1")]
    yield made
    for channel in made:
        channel.close()


def _task(task_id: int, payload: bytes = b"call") -> Entry:
    return Entry(task_id, 0, b"", [payload])


def test_frames_round_trip_and_malformed_datagrams_are_refused():
    frames = [b"head", b"", b"x" * 1000]
    assert [bytes(f) for f in unpack_frames(pack_frames(frames))] == frames
    data = pack_frames(frames)
    for bad in (b"", data[:1], data[:-1], data + b"!"):
        with pytest.raises(ProtocolError):
            unpack_frames(bad)


def test_a_message_reaches_the_other_worker_authenticated(pair):
    root, worker = pair
    assert root.send(1, Kind.TASKS, 0, [_task(5), _task(6, b"other")])
    (message,) = worker.receive()
    assert (message.kind, message.sender) == (Kind.TASKS, 0)
    assert [e.id for e in message.entries] == [5, 6]
    for entry in message.entries:
        worker.codec.verify(entry)  # the payload digest came with it
    assert [bytes(e.frames[0]) for e in message.entries] == [b"call", b"other"]
    assert worker.receive() == []  # nothing more, and no blocking
    assert (root.sent, worker.received) == (1, 1)


def test_replayed_garbage_and_foreign_datagrams_are_dropped(pair):
    root, worker = pair
    spy = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        captured = pack_frames(root._tagger.encode_entries(Kind.TASKS, 0, 0, [_task(1)], seq=7))
        spy.sendto(captured, worker.address_of(1))
        spy.sendto(captured, worker.address_of(1))  # the same message again: a replay
        spy.sendto(b"garbage", worker.address_of(1))
        other_run = Codec(os.urandom(32))  # right address, wrong secret
        spy.sendto(
            pack_frames(other_run.encode_entries(Kind.TASKS, 0, 0, [_task(2)], seq=8)),
            worker.address_of(1),
        )
        spy.sendto(  # a kind the direct path does not carry
            pack_frames(root._tagger.encode_entries(Kind.SHUTDOWN, 0, 0, [], seq=9)),
            worker.address_of(1),
        )
        spy.sendto(  # a message of a connection to the broker (the run's key): no good here
            pack_frames(root.codec.encode_entries(Kind.TASKS, 0, 0, [_task(3)], seq=10)),
            worker.address_of(1),
        )
    finally:
        spy.close()
    messages = worker.receive()
    assert [m.entries[0].id for m in messages] == [1]
    assert worker.dropped == 5


def test_what_cannot_go_directly_is_refused_not_blocked(pair):
    root, worker = pair
    assert not root.send(0, Kind.TASKS, 0, [_task(1)])  # itself
    assert not root.send(1, Kind.TASKS, 0, [_task(1, b"x" * DIRECT_MAX_BYTES)])  # too large
    assert not root.send(7, Kind.TASKS, 0, [_task(1)])  # nobody there (another machine)
    assert 7 in root.unreachable
    assert root.sent == 0
    # A receiver that does not read: the sender is told no (the broker takes it), never blocks.
    start = time.monotonic()
    sent = 0
    while root.send(1, Kind.TASKS, 0, [_task(sent, b"y" * 30_000)]):
        sent += 1
        assert sent < 10_000
    assert time.monotonic() - start < 5
    assert 1 not in root.unreachable  # full, not gone
    assert len(worker.receive()) == sent


def test_each_run_has_its_own_addresses():
    first, second = Codec(os.urandom(32)), Codec(os.urandom(32))
    a = DirectChannel(first, 1, "a")
    b = DirectChannel(second, 1, "b")  # same index, another run: no clash
    try:
        assert a.address_of(1) != b.address_of(1)
        with pytest.raises(OSError):
            DirectChannel(first, 1, "again")  # the same worker twice in one run
    finally:
        a.close()
        b.close()


def test_the_sockets_live_in_a_private_directory_removed_with_the_last(pair):
    root, worker = pair
    info = os.stat(root.directory)
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
    assert root.directory == worker.directory
    assert sorted(os.listdir(root.directory)) == ["0", "1"]
    root.close()
    assert os.listdir(worker.directory) == ["1"]
    worker.close()
    assert not os.path.exists(worker.directory)


def _killed(channel: DirectChannel) -> None:
    channel._socket.close()  # its process died: the socket's file stays


def test_remove_channels_clears_what_killed_workers_left():
    secret = os.urandom(32)
    left = [DirectChannel(Codec(secret), index, f"worker {index}") for index in (1, 2, 3)]
    for channel in left:
        _killed(channel)
    directory = left[0].directory
    remove_channels(secret, [1, 2])  # another launcher's worker 3 (a joiner) may still be there
    assert os.listdir(directory) == ["3"]
    remove_channels(secret, [3])
    assert not os.path.exists(directory)
    remove_channels(secret, [3])  # nothing there: nothing to do


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away takes root")
def test_remove_channels_leaves_a_directory_that_is_not_the_users_alone():
    secret = os.urandom(32)
    channel = DirectChannel(Codec(secret), 1, "worker 1")
    _killed(channel)
    os.chown(channel.directory, 65534, 65534)  # as if another user had made it
    try:
        remove_channels(secret, [1])
        assert os.listdir(channel.directory) == ["1"]
    finally:
        os.chown(channel.directory, os.getuid(), os.getgid())
    remove_channels(secret, [1])
    assert not os.path.exists(channel.directory)


def test_a_directory_others_can_enter_is_refused():
    codec = Codec(os.urandom(32))
    first = DirectChannel(codec, 0, "root")
    try:
        os.chmod(first.directory, 0o755)  # as if someone else had made it, or opened it up
        assert DirectChannel.open(codec, 1, "worker 1") is None
    finally:
        os.chmod(first.directory, 0o700)
        first.close()


def test_the_direct_path_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SCOOP_DIRECT_PATH", "off")
    assert DirectChannel.open(Codec(os.urandom(32)), 0, "root") is None


def test_main_wake_wakes_on_set_from_another_thread_and_on_a_direct_message(pair):
    root, worker = pair
    wake = MainWake(worker)
    try:
        timer = threading.Timer(0.05, wake.set)
        timer.start()
        start = time.monotonic()
        assert wake.wait(10)
        assert time.monotonic() - start < 5
        timer.join()
        wake.clear()
        assert not wake.wait(0.01)  # nothing: times out
        root.send(1, Kind.RESULTS, 0, [_task(3)])
        start = time.monotonic()
        assert not wake.wait(10, spin=0.001)  # a datagram ends the sleep, without set()
        assert time.monotonic() - start < 5
        assert len(worker.receive()) == 1
        wake.set()
        assert wake.is_set() and wake.wait(10)  # set before the wait: no sleep at all
    finally:
        wake.close()
