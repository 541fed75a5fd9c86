"""Large payloads in shared memory (scoop._spill): files, flags, and what removes them."""

import errno
import os
import stat

import pytest

from scoop import _spill
from scoop._protocol import Codec, Entry, Kind
from scoop._spill import SPILL_MIN_BYTES, SPILLED, SpillStore, unspill

SECRET = os.urandom(32)
LARGE = bytes(range(256)) * (SPILL_MIN_BYTES // 256 + 7)


@pytest.fixture
def store(tmp_path):
    return SpillStore(str(tmp_path), owner=4)


def test_large_frames_become_files_that_their_reader_maps_and_removes(store, tmp_path):
    frames = store.spill(1, [b"stream", LARGE, b"small"], keep=False)
    assert frames is not None
    assert frames[:3] == [b"stream", b"", b"small"]
    (name,) = os.listdir(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    got = unspill(frames)
    assert got[0] == b"stream" and got[2] == b"small"
    assert got[1] == LARGE
    assert os.listdir(tmp_path) == []  # read once: gone
    got[1][:4] = b"mine"  # the mapping is the reader's own (copy-on-write), and writable
    assert bytes(got[1][:4]) == b"mine"


def test_small_frames_are_left_in_the_message(store, tmp_path):
    assert store.spill(1, [b"x" * (SPILL_MIN_BYTES - 1)], keep=True) is None
    assert os.listdir(tmp_path) == []
    assert not store  # nothing kept


def test_a_task_end_removes_the_files_no_worker_read(store, tmp_path):
    first = store.spill(7, [b"fn", LARGE], keep=True)
    store.spill(7, [b"fn", LARGE], keep=True)  # sent again (its worker was lost)
    store.spill(8, [b"fn", LARGE], keep=False)  # a result: its reader removes it
    assert first is not None and store
    unspill(first)
    assert len(os.listdir(tmp_path)) == 2
    store.release(7)
    assert len(os.listdir(tmp_path)) == 1  # the result's
    assert not store
    store.release(7)  # ending twice is harmless


def test_a_full_shared_memory_sends_the_frames_in_the_message(store, tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[: len(data) // 2])  # a partial write first

    monkeypatch.setattr(_spill.os, "write", write)
    assert store.spill(3, [b"fn", LARGE], keep=True) is None
    assert os.listdir(tmp_path) == []  # the partial file went too
    assert not store


def test_a_file_that_is_gone_or_of_another_size_is_an_error(store, tmp_path):
    frames = store.spill(1, [LARGE], keep=False)
    assert frames is not None
    unspill(frames)
    with pytest.raises(FileNotFoundError):
        unspill(frames)
    frames = store.spill(2, [LARGE], keep=False)
    assert frames is not None
    (name,) = os.listdir(tmp_path)
    with open(tmp_path / name, "ab") as file:
        file.write(b"more")
    with pytest.raises(OSError, match="its message says"):
        unspill(frames)


def test_a_codec_spills_only_where_payloads_carry_no_digest(store, tmp_path):
    sender, receiver = Codec(SECRET, payload_digests=False), Codec(SECRET, payload_digests=False)
    sender.spill = store
    entry = sender.seal(Entry(5, 0, b"", [b"fn", LARGE]), task=True)
    assert entry.flags == SPILLED
    message = receiver.decode(sender.encode_entries(Kind.TASKS, 0, 0, [entry]))
    (got,) = message.entries
    assert got.flags == SPILLED
    assert receiver.open(got) == [b"fn", LARGE]
    assert os.listdir(tmp_path) == []

    digests = Codec(SECRET)  # files are not digested: with digests on, all goes in the message
    digests.spill = store
    entry = digests.seal(Entry(6, 0, b"", [b"fn", LARGE]))
    assert entry.flags == 0 and entry.frames == [b"fn", LARGE]
    assert os.listdir(tmp_path) == []


def test_a_result_for_no_task_has_its_files_discarded_unread(store, tmp_path):
    frames = store.spill(9, [b"stream", LARGE, LARGE], keep=False)
    assert frames is not None and len(os.listdir(tmp_path)) == 2
    _spill.discard(frames)
    assert os.listdir(tmp_path) == []


def test_a_shared_constant_file_stays_for_every_worker(store, tmp_path):
    frames = store.spill(11, [b"stream", LARGE], keep=False)
    assert frames is not None
    for _ in range(3):  # every worker maps it, and a worker that joins later
        assert unspill(frames, shared=True)[1] == LARGE
    assert len(os.listdir(tmp_path)) == 1
