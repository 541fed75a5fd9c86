"""The broker: routes task and result frames between workers; never unpickles a payload.

State it keeps, all keyed by ids from authenticated headers::

    workers   index -> transport peer          (learned from HELLO)
    queue     tasks spilled by busy workers and not yet given to anyone
    hungry    workers that asked for tasks and got none yet, in arrival order
    holder    task id -> index of the worker it was given to (until its result passes by), so
              that a worker's loss can be traced to the tasks it held
    constants shared constants, replayed to workers that join later

A message that fails to decode or authenticate is dropped and counted, and the run goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from scoop._protocol import PROTOCOL_VERSION, Codec, Entry, Kind, Message, worker_of
from scoop.errors import PeerUnreachable, ProtocolError
from scoop.transport import BrokerEndpoint

logger = logging.getLogger("scoop.broker")


def local_versions(transport: str) -> dict[str, Any]:
    """The versions a worker and its broker must agree on."""
    from scoop import __version__

    return {
        "protocol": PROTOCOL_VERSION,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "scoop_core": __version__,
        "transport": transport,
    }


def version_mismatch(mine: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """Describe how two version sets differ, or None if they are compatible."""
    differences = [
        f"{key} {theirs.get(key)!s} on the worker but {mine[key]!s} on the broker"
        for key in ("protocol", "python", "scoop_core", "transport")
        if theirs.get(key) != mine[key]
    ]
    return "; ".join(differences) or None


class Broker:
    """Routes messages for one run."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        codec: Codec,
        transport: str,
        *,
        parent_pid: int | None = None,
        is_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.codec = codec
        self.versions = local_versions(transport)
        self.parent_pid = parent_pid
        self.workers: dict[int, Hashable] = {}
        self.index_of: dict[Hashable, int] = {}
        self.queue: deque[Entry] = deque()
        self.hungry: dict[int, None] = {}
        self.holder: dict[int, int] = {}
        self.constants: dict[int, Entry] = {}
        self.dropped = 0
        self.stopped = False
        self.exit_code: int | None = None

    def serve(self, until: Callable[[], bool] | None = None) -> None:
        """Route messages until the root ends the run (or ``until()`` becomes true)."""
        while not self.stopped and not (until is not None and until()):
            received = self.endpoint.recv(1.0)
            if received is None:
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    logger.error("broker: its launcher is gone; exiting")
                    self.shutdown(1)
                continue
            peer, frames = received
            self.handle(peer, frames)

    def handle(self, peer: Hashable, frames: list[Any]) -> None:
        """Decode, authenticate and act on one message; drop it if it is not ours."""
        try:
            message = self.codec.decode(frames)
        except ProtocolError as exc:
            self.dropped += 1
            logger.warning(
                "broker dropped a message from %r (%d dropped so far): %s", peer, self.dropped, exc
            )
            return
        sender = self.index_of.get(peer)
        if message.kind == Kind.HELLO:
            self._hello(peer, message)
        elif sender is None:
            self.dropped += 1
            logger.warning("broker dropped a %s message from a worker that never said HELLO", message.kind.name)
        elif message.kind == Kind.TASKS:
            for entry in message.entries:
                self.holder.pop(entry.id, None)
            self.queue.extend(message.entries)
            self._dispatch()
        elif message.kind == Kind.REQUEST:
            self.hungry[sender] = None
            self._dispatch()
            if sender in self.hungry:
                self._announce_demand()
        elif message.kind == Kind.RESULTS:
            self._route_results(message)
        elif message.kind == Kind.CONST:
            self._constant(sender, message)
        elif message.kind == Kind.SHUTDOWN:
            self._forget(sender)  # the root has left
            self.shutdown(message.arg)
        elif message.kind == Kind.BYE:
            self._forget(sender)
        else:
            self.dropped += 1
            logger.warning("broker dropped an unexpected %s message", message.kind.name)

    def _send(self, index: int, frames: list[Any]) -> None:
        peer = self.workers.get(index)
        if peer is None:
            logger.warning("broker has no worker %d to send to", index)
            return
        try:
            self.endpoint.send(peer, frames)
        except PeerUnreachable as exc:
            logger.warning("broker lost worker %d: %s", index, exc)
            self._forget(index)

    def _hello(self, peer: Hashable, message: Message) -> None:
        try:
            entry = message.entries[0]
            Codec.verify(entry)
            theirs = json.loads(bytes(entry.frames[0]))
            index = int(theirs["index"])
        except (IndexError, ValueError, KeyError, TypeError, ProtocolError) as exc:
            self.dropped += 1
            logger.warning("broker dropped a malformed HELLO: %s", exc)
            return
        problem = version_mismatch(self.versions, theirs)
        if problem:
            reason = f"worker {index} on host {theirs.get('host', '?')} cannot join: {problem}"
            logger.error("broker rejected %s", reason)
            self.endpoint.send(peer, self.codec.encode(Kind.REJECT, 0, 0, [(index, 0, [reason.encode()])]))
            return
        self.workers[index] = peer
        self.index_of[peer] = index
        self.endpoint.send(peer, self.codec.encode(Kind.WELCOME, 0))
        for constant in self.constants.values():
            self.endpoint.send(peer, self.codec.encode_entries(Kind.CONST, 0, 0, [constant]))
        logger.debug("broker: worker %d joined from %s", index, theirs.get("host"))

    def _dispatch(self) -> None:
        """Give queued tasks to hungry workers, splitting the queue evenly among them."""
        while self.queue and self.hungry:
            share = math.ceil(len(self.queue) / len(self.hungry))
            index = next(iter(self.hungry))
            del self.hungry[index]
            batch = [self.queue.popleft() for _ in range(min(share, len(self.queue)))]
            for entry in batch:
                self.holder[entry.id] = index
            self._send(index, self.codec.encode_entries(Kind.TASKS, 0, 0, batch))

    def _announce_demand(self) -> None:
        frames = self.codec.encode(Kind.DEMAND, 0, len(self.hungry))
        for index in list(self.workers):
            if index not in self.hungry:
                self._send(index, frames)

    def _route_results(self, message: Message) -> None:
        by_origin: dict[int, list[Entry]] = {}
        for entry in message.entries:
            self.holder.pop(entry.id, None)
            by_origin.setdefault(worker_of(entry.id), []).append(entry)
        for origin, entries in by_origin.items():
            self._send(origin, self.codec.encode_entries(Kind.RESULTS, 0, 0, entries))

    def _constant(self, sender: int, message: Message) -> None:
        for entry in message.entries:
            if entry.id in self.constants:
                continue  # first definition wins; the worker that set it twice was told
            self.constants[entry.id] = entry
            frames = self.codec.encode_entries(Kind.CONST, 0, 0, [entry])
            for index in list(self.workers):
                if index != sender:
                    self._send(index, frames)

    def _forget(self, index: int) -> None:
        peer = self.workers.pop(index, None)
        if peer is not None:
            self.index_of.pop(peer, None)
        self.hungry.pop(index, None)

    def tasks_held_by(self, index: int) -> list[int]:
        """Ids of the tasks the broker gave to worker ``index`` whose results it has not seen."""
        return [task_id for task_id, holder in self.holder.items() if holder == index]

    def shutdown(self, code: int) -> None:
        """Tell every worker the run is over."""
        self.exit_code = code
        frames = self.codec.encode(Kind.SHUTDOWN, 0, code)
        for index in list(self.workers):
            self._send(index, frames)
        self.stopped = True
