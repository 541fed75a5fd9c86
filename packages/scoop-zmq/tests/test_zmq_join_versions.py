"""A worker joining with other versions is refused with a message naming both sides."""

import json
import os
import signal
import subprocess
import sys

import pytest

import scoop
from scoop._protocol import PROTOCOL_VERSION, Codec, local_versions
from scoop._worker import WorkerScheduler
from scoop.errors import VersionMismatchError
from scoop.transport import ConnectOptions
from scoop_zmq import connect


@pytest.fixture
def broker():
    secret = os.urandom(32)
    process = subprocess.Popen(
        [sys.executable, "-m", "scoop._run", "broker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        config = {"secret": secret.hex(), "transport": "zmq", "host": "127.0.0.1", "size": 2}
        process.stdin.write(json.dumps(config) + "\n")
        process.stdin.flush()
        address = json.loads(process.stdout.readline())["address"]
        yield address, secret
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def join_with(address, secret, **overrides):
    endpoint = connect(ConnectOptions(address=address))
    worker = WorkerScheduler(endpoint, Codec(secret), 1, 2, hostname="testhost")
    try:
        worker.join({**local_versions("zmq"), **overrides}, timeout=10)
    finally:
        endpoint.close()


@pytest.mark.timeout(30)
def test_matching_versions_join(broker):
    join_with(*broker)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("field", "theirs", "ours"),
    [
        ("scoop_core", "0.0.1", scoop.__version__),
        ("protocol", 99, PROTOCOL_VERSION),
        ("python", "3.99", f"{sys.version_info.major}.{sys.version_info.minor}"),
        ("transport", "nng", "zmq"),
    ],
)
def test_other_versions_are_refused_naming_both(broker, field, theirs, ours):
    with pytest.raises(VersionMismatchError) as info:
        join_with(*broker, **{field: theirs})
    message = str(info.value)
    assert f"{field} {theirs} on the worker but {ours} on the broker" in message
    assert "worker 1 on host testhost" in message
