"""The broker's side of workers that join: HELLO, the version check, WELCOME, reconnections.

:class:`Joins` is a part of :class:`scoop._broker.Broker` (a mixin, for the size of the module).
A worker's first message is its HELLO (authenticated, naming its index, host and versions): a
worker of another version is rejected with the reason; one that joins gets WELCOME with the
number of workers, the shared constants set so far and the demand; one added to a running run
(``--add-workers``) is announced to everyone. A member that speaks from a new connection (its old
one broke and came back) is bound to it, and gets again what it did not acknowledge.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from scoop._membership import Membership
from scoop._protocol import (
    BROKER_SENDER,
    TASK_SEQ_BITS,
    Codec,
    Entry,
    Kind,
    Message,
    version_mismatch,
)
from scoop._streams import Streams
from scoop.errors import PeerUnreachable, ProtocolError
from scoop.transport import BrokerEndpoint

logger = logging.getLogger("scoop.broker")

#: Worker indices live in the bits of a task id above its sequence number (64 bits in all).
MAX_WORKER_INDEX = 1 << (64 - TASK_SEQ_BITS)


class Joins:
    """Workers joining and coming back; mixed into the broker, whose state it uses."""

    # The broker's state this part reads and changes (see scoop._broker.Broker).
    codec: Codec
    endpoint: BrokerEndpoint
    versions: dict[str, Any]
    size: int
    workers: dict[int, Hashable]
    supervisors: dict[int, Hashable]
    index_of: dict[Hashable, int]
    members: Membership
    streams: Streams
    told_to_stop: set[int]
    joined_late: int
    uninformed: dict[int, None]
    exit_code: int | None
    constants: dict[int, Entry]
    hungry: dict[int, int]
    say: Callable[[str], None]

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        raise NotImplementedError

    def _resend(self, index: int) -> None:
        raise NotImplementedError

    def _drop(self, peer: Hashable, reason: str) -> None:
        raise NotImplementedError

    def _forget(self, index: int) -> None:
        raise NotImplementedError

    def _stop_if_everyone_told(self) -> None:
        raise NotImplementedError

    def _supervisor_joined(self, index: int, peer: Hashable) -> None:
        raise NotImplementedError

    def live_count(self) -> int:
        raise NotImplementedError

    def _announce_size(self) -> None:
        raise NotImplementedError

    def _rebind(self, index: int, peer: Hashable) -> None:
        """Worker ``index`` speaks from a new connection (its old one broke and came back)."""
        if index in self.supervisors:
            self.supervisors[index] = peer
        else:
            self.workers[index] = peer
        self.index_of[peer] = index
        logger.info("worker %d reconnected", index)
        self._resend(index)

    def _is_member(self, index: int) -> bool:
        return index in self.supervisors or (
            index in self.members.hosts
            and index not in self.members.lost
            and index not in self.told_to_stop
        )

    def _hello(self, peer: Hashable, message: Message) -> None:
        try:
            entry = message.entries[0]
            self.codec.verify(entry)
            theirs = json.loads(bytes(entry.frames[0]))
            index = int(theirs["index"])
        except (IndexError, ValueError, KeyError, TypeError, ProtocolError) as exc:
            self._drop(peer, f"malformed HELLO: {exc}")
            return
        if index != message.sender or not 0 <= index < MAX_WORKER_INDEX:
            self._drop(peer, f"HELLO of worker {message.sender} names index {index}")
            return
        if index in self.members.lost:
            self._drop(peer, f"HELLO of worker {index}, which was lost")
            return
        problem = version_mismatch(self.versions, theirs)
        if problem:
            reason = f"worker {index} on host {theirs.get('host', '?')} cannot join: {problem}"
            logger.error("broker rejected %s", reason)
            with contextlib.suppress(PeerUnreachable):  # it may not wait for the answer
                self.endpoint.send(
                    peer,
                    self.codec.encode(
                        Kind.REJECT,
                        BROKER_SENDER,
                        0,
                        [(index, 0, [reason.encode()])],
                        seq=1,
                        ack=message.seq,
                    ),
                )
            return
        self.streams.open(index)
        late = index >= self.size and index not in self.members.hosts
        if theirs.get("role") == "supervisor":
            self._supervisor_joined(index, peer)
            return
        self.workers[index] = peer
        self.index_of[peer] = index
        supervisor = theirs.get("supervisor")
        self.members.joined(
            index,
            str(theirs.get("host", "?")),
            supervisor if isinstance(supervisor, int) else None,
        )
        if late:  # added to a running run (--add-workers)
            self.joined_late += 1
        self.uninformed[index] = None
        # Sent through _send: a worker can be welcomed, run, and leave before the next send.
        self._send(index, Kind.WELCOME, self.live_count())
        if self.exit_code is not None:  # joined after the root ended the run
            self._send(index, Kind.SHUTDOWN, self.exit_code)
            self.told_to_stop.add(index)
            self._forget(index)
            self._stop_if_everyone_told()
            return
        for constant in self.constants.values():
            self._send(index, Kind.CONST, 0, [constant])
        if self.hungry:  # workers that asked for work before this one joined
            self._send(index, Kind.DEMAND, len(self.hungry))
        logger.info("worker %d joined from host %s", index, theirs.get("host"))
        if late:
            self.say(f"scoop: {self.members.describe(index)} joined the run")
            self._announce_size()


__all__ = ["MAX_WORKER_INDEX", "Joins"]
