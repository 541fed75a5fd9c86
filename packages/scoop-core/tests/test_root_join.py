"""The root joins in its communication thread while its script runs (scoop._rootstart).

A fake broker, driven by hand over the in-memory transport, answers the HELLO: what the root
posted before the WELCOME must follow its HELLO, and a REJECT must reach ``on_failed``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from scoop._comm import Communicator
from scoop._protocol import BROKER_SENDER, Codec, Entry, Kind, Message, local_versions
from scoop.errors import VersionMismatchError
from scoop.testing import memory_transport
from scoop.transport import BindOptions, ConnectOptions

SECRET = os.urandom(32)


class Handler:
    def __init__(self) -> None:
        self.stopped: list[BaseException | None] = []

    def on_message(self, message: Message) -> None:
        pass

    def on_stop(self, error: BaseException | None) -> None:
        self.stopped.append(error)


class Run:
    """A bound in-memory broker endpoint, and the root's communicator, not yet connected."""

    def __init__(self) -> None:
        self.transport = memory_transport()
        self.broker = self.transport.bind(BindOptions())
        self.root_codec = Codec(SECRET)
        self.broker_codec = Codec(SECRET)
        self.comm = Communicator(None, self.root_codec, 0, "the root")
        self.handler = Handler()
        self.joined: list[int] = []
        self.failed: list[BaseException] = []
        self.failed_event = threading.Event()

    def start_joining(self) -> None:
        def failed(exc: BaseException) -> None:
            self.failed.append(exc)
            self.failed_event.set()

        self.comm.start_joining(
            self.handler,
            lambda: self.transport.connect(ConnectOptions(address=self.broker.address)),
            local_versions("memory"),
            "here",
            30.0,
            on_joined=self.joined.append,
            on_failed=failed,
        )

    def receive(self) -> tuple[Any, Message]:
        got = self.broker.recv(10)
        assert got is not None, "nothing came from the root"
        peer, frames = got
        return peer, self.broker_codec.decode(frames)


@pytest.fixture
def run():
    made = Run()
    yield made
    made.comm.close()
    made.broker.close()


@pytest.mark.timeout(30)
def test_what_the_root_posts_before_its_welcome_follows_its_hello(run: Run) -> None:
    payload = b"a task submitted by the script before the broker was bound"
    run.comm.post(Kind.TASKS, 0, [Entry(5, 0, run.root_codec.digest([payload]), [payload])])
    run.start_joining()
    peer, hello = run.receive()
    assert hello.kind == Kind.HELLO
    run.broker.send(peer, run.broker_codec.encode(Kind.WELCOME, BROKER_SENDER, 3, seq=1, ack=1))
    _, tasks = run.receive()
    assert tasks.kind == Kind.TASKS and tasks.seq == hello.seq + 1
    assert [bytes(f) for e in tasks.entries for f in e.frames] == [payload]
    assert run.joined == [3]
    assert run.failed == [] and run.handler.stopped == []


@pytest.mark.timeout(30)
def test_a_reject_after_the_script_started_goes_to_on_failed(run: Run) -> None:
    run.start_joining()
    peer, hello = run.receive()
    reason = b"worker 0 cannot join: another SCOOP version"
    run.broker.send(
        peer,
        run.broker_codec.encode(
            Kind.REJECT, BROKER_SENDER, 0, [(0, 0, [reason])], seq=1, ack=hello.seq
        ),
    )
    assert run.failed_event.wait(10)
    assert isinstance(run.failed[0], VersionMismatchError)
    assert "another SCOOP version" in str(run.failed[0])
    assert run.joined == [] and run.handler.stopped == []
