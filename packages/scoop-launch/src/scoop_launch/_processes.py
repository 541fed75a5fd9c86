"""Processes of a run as the launcher sees them, and small helpers about hosts and addresses."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

from scoop._slot import read_running

#: Host names that mean this machine: their workers start as local processes, not over ssh.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_local(host: str) -> bool:
    """True if ``host`` names this machine (its name, or any loopback address)."""
    if host in LOCAL_NAMES or host in (socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Handle(Protocol):
    name: str

    def wait(self) -> int: ...


@dataclass
class Named:
    """A process known only by its name (a remote worker, as its agent reports it)."""

    name: str


class Local:
    """A process on this machine."""

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        index: int | None = None,
        running_slot: str | None = None,
    ) -> None:
        self.name = name
        self.popen = popen
        #: The worker's index (None for the broker), and the file of its running slot.
        self.index = index
        self.running_slot = running_slot
        #: Set once :meth:`wait` has seen the process end (the launcher has a thread in it).
        self._ended = threading.Event()

    def running_task(self) -> int:
        """The task its running slot names (see scoop._slot); 0 if none, or no slot."""
        return read_running(self.running_slot) if self.running_slot else 0

    def wait(self) -> int:
        code = self.popen.wait()
        self._ended.set()
        return code

    def wait_ended(self, timeout: float) -> bool:
        """Whether the process ended within ``timeout`` seconds, while a thread is in :meth:`wait`.

        ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms: a run's teardown waited on
        processes that had ended long before.
        """
        return self._ended.wait(max(0.0, timeout)) or self.popen.poll() is not None

    def send_line(self, line: dict[str, Any], *, last: bool = False) -> None:
        stdin: IO[bytes] | None = self.popen.stdin
        if stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.write(json.dumps(line).encode() + b"\n")
            stdin.flush()
            if last:
                stdin.close()

    def signal_group(self, signum: int) -> None:
        # Each process leads its own session, so its group holds anything its tasks started too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


def advertised(address: str, host: str | None = None, port: int | None = None) -> str:
    """``address`` (scheme://host:port) with its host and/or port replaced."""
    scheme, _, rest = address.partition("://")
    old_host, _, old_port = rest.rpartition(":")
    new_host = host if host is not None else old_host
    if ":" in new_host and not new_host.startswith("["):
        new_host = f"[{new_host}]"
    return f"{scheme}://{new_host}:{port if port is not None else old_port}"


def route_source(address: str) -> str:
    """This machine's address on the route to ``address`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        return str(probe.getsockname()[0])


def in_parallel(
    fn: Callable[[Any], Any], items: list[Any], limit: int = 16
) -> list[tuple[Any, Exception | None]]:
    """``fn`` on every item, ``limit`` at a time; (result, None) or (None, error) for each.

    Daemon threads, joined with a timeout: a Ctrl-C interrupts the wait at once, and a thread
    still blocked in ssh (connecting, or waiting for an agent) does not keep the launcher alive.
    """
    outcomes: list[tuple[Any, Exception | None]] = [(None, None)] * len(items)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(items)):
        todo.put(index)

    def work() -> None:
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcomes[index] = (fn(items[index]), None)
            except Exception as exc:
                outcomes[index] = (None, exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(limit, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    return outcomes


__all__ = [
    "LOCAL_NAMES",
    "Handle",
    "Local",
    "Named",
    "advertised",
    "in_parallel",
    "is_local",
    "route_source",
]
