"""Payload digests: what ties an entry's payload to its authenticated header.

Each entry of a message carries a SHA-256 (truncated to :data:`DIGEST_SIZE` bytes) of its
payload frames, lengths included; the header tag covers it (see scoop._protocol). The sender
computes it, the receiver checks it before it unpickles anything. On one machine payloads carry
none (the launcher leaves them off): the header tag alone authenticates there.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoop.transport import Frame

if TYPE_CHECKING:
    from concurrent.futures import Executor

DIGEST_SIZE = 16
_LENGTH = struct.Struct("<Q")

#: A frame at least this large is digested in blocks of DIGEST_BLOCK_BYTES, on several threads
#: (hashlib lets go of the GIL): SHA-256 of 64 MiB takes 38 ms on one core of the benchmark
#: machine, four of them each 64 MiB round trip between hosts.
PARALLEL_DIGEST_MIN_BYTES = 8 << 20
DIGEST_BLOCK_BYTES = 2 << 20


def payload_digest(frames: Iterable[Frame]) -> bytes:
    """Digest of an entry's payload frames (lengths included, so frame boundaries count).

    A large frame counts by the digests of its blocks (a hash tree of one level), which the
    cores of the machine compute together.
    """
    hasher = hashlib.sha256()
    for frame in frames:
        view = memoryview(frame)
        hasher.update(_LENGTH.pack(view.nbytes))
        if view.nbytes >= PARALLEL_DIGEST_MIN_BYTES:
            hasher.update(_block_digests(view.cast("B")))
        else:
            hasher.update(view)
    return hasher.digest()[:DIGEST_SIZE]


def _block_digest(block: memoryview) -> bytes:
    return hashlib.sha256(block).digest()


@functools.cache
def _digest_pool() -> Executor:
    from concurrent.futures import ThreadPoolExecutor  # here: most processes never need it

    return ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="scoop-digest")


def _block_digests(view: memoryview) -> bytes:
    blocks = [view[i : i + DIGEST_BLOCK_BYTES] for i in range(0, view.nbytes, DIGEST_BLOCK_BYTES)]
    return b"".join(_digest_pool().map(_block_digest, blocks))
