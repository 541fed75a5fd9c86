"""A supervisor: the connection of a launcher that added workers to a running run.

The launcher that started a run tells its broker about its workers on the broker's standard
input. One that adds workers later (``python -m scoop_launch --add-workers N``) cannot: it joins
the broker like a worker does (HELLO, authenticated with the run's secret), but as a supervisor,
which runs no task. Over that connection it reports its workers whose process ended (GONE), and
the broker asks it to stop those it took for lost (STOP) and tells it when the run ends
(SHUTDOWN).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from scoop._comm import Communicator
from scoop._protocol import Codec, Entry, Kind, Message
from scoop.transport import WorkerEndpoint

logger = logging.getLogger("scoop")


class SupervisorLink:
    """A supervisor's connection to the broker, served by a communication thread."""

    def __init__(
        self,
        endpoint: WorkerEndpoint,
        codec: Codec,
        index: int,
        *,
        on_stop_worker: Callable[[int], None],
        on_end: Callable[[int | None], None],
        heartbeat_interval: float = 0.0,
    ) -> None:
        self.codec = codec
        self.on_stop_worker = on_stop_worker
        self.on_end = on_end
        self.comm = Communicator(
            endpoint,
            codec,
            index,
            f"the supervisor of added workers ({index})",
            heartbeat_interval=heartbeat_interval,
        )

    def join(self, versions: dict[str, Any], hostname: str, timeout: float = 60.0) -> None:
        """Say HELLO as a supervisor, wait for WELCOME, and start serving the connection."""
        self.comm.join(self, {**versions, "role": "supervisor"}, hostname, timeout)
        self.comm.start(self)

    def gone(self, index: int, reason: str, running: int) -> None:
        """Report that the process of worker ``index`` ended (any thread)."""
        payload = json.dumps({"reason": reason, "running": running}).encode()
        self.comm.post(Kind.GONE, 0, [Entry(index, 0, self.codec.digest([payload]), [payload])])

    def close(self) -> None:
        """Close the connection."""
        self.comm.close()

    # -- Handler, called in the communication thread --------------------------------------------

    def on_message(self, message: Message) -> None:
        """Act on a message of the broker."""
        if message.kind == Kind.STOP:
            self.on_stop_worker(message.arg)
        elif message.kind == Kind.SHUTDOWN:
            self.on_end(message.arg)
        elif message.kind not in (Kind.MEMBERS, Kind.DEMAND, Kind.CONST):
            logger.debug("supervisor ignored a %s message", message.kind.name)

    def on_stop(self, error: BaseException | None) -> None:
        """The connection ended: the broker is gone."""
        self.on_end(None)


__all__ = ["SupervisorLink"]
