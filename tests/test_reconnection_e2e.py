"""A worker whose connection to the broker breaks and comes back keeps its place.

The run is started here by hand, as the launcher starts it (``python -m scoop._run broker`` and
``worker``, configuration on stdin), so that worker 1 can reach the broker through a TCP proxy
this test controls. Mid-run the proxy resets every connection it carries; the transport dials
again (zmq and nng both do), the broker recognises the worker by its authenticated messages,
and what the broken connection lost in either direction is sent again. The run ends with every
result right and no worker lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading

import pytest
from scoop_e2e_support import ROOT, SCRIPTS, installed_transport_names, wait_until

SCRIPT = SCRIPTS / "survive_losses.py"


class Proxy:
    """Forwards TCP connections to ``target``; :meth:`reset` breaks all it carries."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(self.target)
            except OSError:
                inside.close()
                continue
            with self._lock:
                self.pairs.append((inside, outside))
                self.accepted += 1
            threading.Thread(target=self._splice, args=(inside, outside), daemon=True).start()

    @staticmethod
    def _splice(a: socket.socket, b: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            try:
                while True:
                    for key, _ in sel.select():
                        data = key.fileobj.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
            except OSError:
                return

    def reset(self) -> None:
        """Break every connection now (RST both ways, data in flight lost)."""
        with self._lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()

    def close(self) -> None:
        self.listener.close()
        self.reset()


def _spawn(role: str, config: dict, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "scoop._run", role],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(config).encode() + b"\n")
    process.stdin.flush()
    return process


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", installed_transport_names())
def test_a_broken_connection_that_comes_back_loses_nothing(tmp_path, transport):
    progress = tmp_path / "progress"
    env = dict(os.environ, SCOOP_TEST_PROGRESS=str(progress), PYTHONUNBUFFERED="1")
    secret = os.urandom(32).hex()
    common = {"secret": secret, "transport": transport, "payload_digests": True}
    # A long heartbeat timeout: the worker must keep its place, not be lost and replaced.
    broker_config = {**common, "size": 2, "heartbeat_timeout": 60, "log_level": "INFO"}
    broker = _spawn("broker", broker_config, env)
    processes = [broker]
    proxy = None
    try:
        assert broker.stdout is not None
        address = json.loads(broker.stdout.readline())["address"]
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        proxy = Proxy((host, int(port)))
        workers = []
        for index in (0, 1):
            config = {
                **common,
                "index": index,
                "size": 2,
                "root": index == 0,
                "script": str(SCRIPT),
                "args": ["map", "6000"],
                "heartbeat_interval": 0.25,
            }
            worker = _spawn("worker", config, env)
            worker_address = address if index == 0 else f"tcp://127.0.0.1:{proxy.port}"
            assert worker.stdin is not None
            worker.stdin.write(json.dumps({"address": worker_address}).encode() + b"\n")
            worker.stdin.close()
            worker.stdin = None  # communicate() must not flush it
            workers.append(worker)
        processes += workers

        def tasks_by(index: int) -> int:
            with contextlib.suppress(OSError):
                return sum(
                    1 for line in progress.read_text().splitlines() if line.endswith(f" {index}")
                )
            return 0

        assert wait_until(lambda: tasks_by(1) >= 200, timeout=60), "worker 1 ran nothing"
        before = tasks_by(1)
        proxy.reset()
        assert wait_until(lambda: proxy.accepted >= 2, timeout=30), "the worker did not dial again"
        assert wait_until(lambda: tasks_by(1) >= before + 200, timeout=60), (
            "worker 1 ran nothing after its connection came back"
        )
        root_out, root_err = workers[0].communicate(timeout=60)
        assert workers[0].returncode == 0, root_err.decode()
        assert b"OK map 6000" in root_out and b"SIZE 2" in root_out, root_out + root_err
        _, worker_err = workers[1].communicate(timeout=30)
        assert workers[1].returncode == 0, worker_err.decode()
        _, broker_err = broker.communicate(timeout=30)
        assert b" lost (" not in broker_err, broker_err.decode()
        assert b"worker 1 reconnected" in broker_err, broker_err.decode()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if proxy is not None:
            proxy.close()
