import os

import pytest

from scoop._protocol import MAGIC, PROTOCOL_VERSION, Codec, Kind, worker_of
from scoop.errors import AuthenticationError, ProtocolError, VersionMismatchError

SECRET = os.urandom(32)


def test_round_trip_keeps_entries_and_frames():
    codec = Codec(SECRET)
    frames = codec.encode(
        Kind.TASKS, 3, 7, [(1 << 40 | 5, 0, [b"fn", b"args"]), (9, 1, [memoryview(b"x" * 100)])]
    )
    message = codec.decode(frames)
    assert (message.kind, message.sender, message.arg) == (Kind.TASKS, 3, 7)
    assert [e.id for e in message.entries] == [1 << 40 | 5, 9]
    assert [e.status for e in message.entries] == [0, 1]
    assert [bytes(f) for f in message.entries[0].frames] == [b"fn", b"args"]
    for entry in message.entries:
        codec.verify(entry)
    assert worker_of(message.entries[0].id) == 1


def test_other_secret_is_rejected():
    frames = Codec(SECRET).encode(Kind.REQUEST, 1, 1)
    with pytest.raises(AuthenticationError):
        Codec(os.urandom(32)).decode(frames)


def test_tampered_header_is_rejected():
    frames = Codec(SECRET).encode(Kind.REQUEST, 1, 1)
    head = bytearray(frames[0])
    head[-1] ^= 1
    with pytest.raises(AuthenticationError):
        Codec(SECRET).decode([bytes(head)])


def test_tampered_payload_fails_verification_not_decoding():
    codec = Codec(SECRET)
    frames = codec.encode(Kind.RESULTS, 0, 0, [(1, 0, [b"payload"])])
    frames[1] = b"PAYLOAD"
    entry = codec.decode(frames).entries[0]
    with pytest.raises(AuthenticationError):
        codec.verify(entry)


@pytest.mark.parametrize(
    "frames",
    [[], [b""], [b"garbage"], [os.urandom(200)], [b"\x00" * 16 + MAGIC + b"\x01" * 18]],
    ids=["no-frames", "empty", "short", "random", "forged-tag"],
)
def test_garbage_raises_protocol_error(frames):
    with pytest.raises(ProtocolError):
        Codec(SECRET).decode(frames)


def test_frame_count_must_match_header():
    codec = Codec(SECRET)
    frames = codec.encode(Kind.TASKS, 0, 0, [(1, 0, [b"a", b"b"])])
    with pytest.raises(ProtocolError, match="payload frames"):
        codec.decode(frames[:-1])


@pytest.mark.parametrize(
    ("layout", "version"),
    [
        ("<2sBBIIq", 1),  # version 1's shorter header: still named as another version
        ("<2sBBIIqQ", PROTOCOL_VERSION + 1),
    ],
)
def test_other_protocol_version_is_named(layout, version):
    import hashlib
    import struct

    header = struct.pack(layout, MAGIC, version, Kind.HELLO, 0, 0, 0, *([1] * layout.count("Q")))
    tag = hashlib.blake2b(header, key=SECRET, digest_size=16).digest()
    with pytest.raises(VersionMismatchError, match=f"version {version}, this process"):
        Codec(SECRET).decode([tag + header])


def test_messages_are_numbered_and_a_repeat_is_refused():
    from scoop._sequence import SequenceCheck

    codec = Codec(SECRET)
    first = codec.encode(Kind.REQUEST, 3, 1)
    second = codec.encode(Kind.REQUEST, 3, 1)
    check = SequenceCheck()
    assert [codec.decode(f).seq for f in (first, second)] == [1, 2]
    assert check.accept(codec.decode(first))
    assert check.accept(codec.decode(second))
    assert not check.accept(codec.decode(second))  # sent again
    assert not check.accept(codec.decode(first))  # an older one
    other = Codec(SECRET).encode(Kind.REQUEST, 4, 1)  # another sender counts on its own
    assert check.accept(Codec(SECRET).decode(other))


def test_short_secret_refused():
    with pytest.raises(ValueError):
        Codec(b"short")


def test_without_payload_digests_the_header_still_authenticates():
    codec = Codec(SECRET, payload_digests=False)
    frames = codec.encode(Kind.RESULTS, 0, 0, [(1, 0, [b"payload"])])
    entry = codec.decode(frames).entries[0]
    assert entry.digest == bytes(16)
    codec.verify(entry)  # nothing to check: loopback TCP carries it unaltered
    with pytest.raises(AuthenticationError):
        Codec(os.urandom(32), payload_digests=False).decode(frames)
    # A run with digests refuses an entry that has none.
    with pytest.raises(AuthenticationError):
        Codec(SECRET).verify(entry)


def test_a_message_after_a_gap_waits_for_the_missing_one():
    from scoop._sequence import SequenceCheck

    codec = Codec(SECRET)
    first, second, third = (codec.decode(codec.encode(Kind.REQUEST, 2, 1)) for _ in range(3))
    check = SequenceCheck()
    assert check.accept(first)
    assert not check.accept(third)  # the second was lost with a broken connection
    assert "went missing" in check.explain(third)
    assert check.accept(second) and check.accept(third)  # sent again, in order
    assert not check.accept(second)  # and once only
    assert "came again" in check.explain(second)


def test_an_outbox_keeps_messages_until_acknowledged_and_resends_overdue_ones():
    from scoop._sequence import Outbox

    box = Outbox(resend_after=1.0)
    for _ in range(3):
        seq = box.number()
        box.keep(seq, [b"%d" % seq], now=0.0)
    box.acknowledged(2, now=0.5)
    assert len(box) == 1
    assert not box.overdue(1.4)  # progress at 0.5 restarted the clock
    assert box.overdue(1.6)
    assert box.to_resend(now=2.0) == [[b"3"]]
    assert not box.overdue(2.5)
    box.acknowledged(3, now=2.6)
    assert len(box) == 0 and not box.overdue(10.0)


def test_a_large_message_gets_the_time_to_travel_before_it_is_sent_again():
    from scoop._sequence import SLOWEST_TRANSFER_BYTES_PER_S, Outbox

    box = Outbox(resend_after=5.0)
    large = bytes(4 * SLOWEST_TRANSFER_BYTES_PER_S)  # 4 s at the slowest rate
    box.keep(box.number(), [b"header", large], now=0.0)
    assert not box.overdue(8.9)  # 5 s + its 4 s of travel
    assert box.overdue(9.1)
    box.to_resend(now=9.1)
    box.acknowledged(1, now=9.5)
    box.keep(box.number(), [b"small"], now=10.0)
    assert box.overdue(15.1)  # the large one is gone: back to 5 s


def test_a_large_frame_digested_in_blocks_still_covers_every_byte():
    from scoop._digest import DIGEST_BLOCK_BYTES, PARALLEL_DIGEST_MIN_BYTES, payload_digest

    data = bytearray(os.urandom(PARALLEL_DIGEST_MIN_BYTES + 12345))
    digest = payload_digest([data])
    assert payload_digest([bytes(data)]) == digest
    for position in (0, DIGEST_BLOCK_BYTES - 1, DIGEST_BLOCK_BYTES, len(data) - 1):
        data[position] ^= 1
        assert payload_digest([data]) != digest, position
        data[position] ^= 1
    # Frame boundaries count: the same bytes cut in two frames are another payload.
    cut = PARALLEL_DIGEST_MIN_BYTES // 2
    assert payload_digest([data[:cut], data[cut:]]) != digest
