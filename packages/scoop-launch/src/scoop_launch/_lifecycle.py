"""One run: start the broker and the workers, wait for the root, leave no process behind.

Order of a run::

    broker and all workers spawned at once (each in its own session, so only the launcher sees
    a terminal's Ctrl-C); each worker gets its configuration and the secret on stdin and imports
    the script while the broker binds
    broker prints its address  -> sent to every worker on stdin -> they connect and say HELLO
    root worker exits with the script's code -> broker tells the others -> all exit
    anything left after GRACE_SECONDS -> its process group is killed

A worker or the broker that dies before the root is done aborts the run (exit 1), naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

#: How long workers get to exit after the root is done, before they are killed.
GRACE_SECONDS = 5.0
#: How long the broker gets to report its address.
BROKER_START_TIMEOUT = 60.0
#: Exit code of a worker that could not start (scoop._run.STARTUP_FAILED).
WORKER_STARTUP_FAILED = 3


class LaunchError(Exception):
    """The run could not start or had to be aborted; the message says why."""


class Interrupted(Exception):
    """The launcher received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunConfig:
    """Everything one run needs."""

    script: str
    args: list[str] = field(default_factory=list)
    workers: int = 1
    transport: str = "zmq"
    log_level: str = "WARNING"
    log_file: str | None = None
    python: str = sys.executable
    debug: bool = False


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]


class Run:
    """A run of a script on local workers."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.secret = secrets.token_bytes(32).hex()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.broker: _Process | None = None
        self.workers: list[_Process] = []

    # -- starting ----------------------------------------------------------------------------

    def _spawn(
        self, name: str, role: str, first_line: dict[str, Any], *, pipe_stdout: bool
    ) -> _Process:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        popen = subprocess.Popen(
            [self.config.python, "-m", "scoop._run", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if pipe_stdout else None,
            env=env,
            start_new_session=True,
        )
        process = _Process(name, popen)
        self._write(process, first_line)
        threading.Thread(target=self._watch, args=(process,), daemon=True).start()
        return process

    @staticmethod
    def _write(process: _Process, line: dict[str, Any], *, last: bool = False) -> None:
        stdin: IO[bytes] | None = process.popen.stdin
        if stdin is None:
            return
        try:
            stdin.write(json.dumps(line).encode() + b"\n")
            stdin.flush()
            if last:
                stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died; its exit is reported by its watcher

    def _watch(self, process: _Process) -> None:
        code = process.popen.wait()
        self.events.put(("exit", (process, code)))

    def _read_address(self, broker: _Process) -> None:
        assert broker.popen.stdout is not None
        line = broker.popen.stdout.readline()
        if line:
            self.events.put(("address", json.loads(line)["address"]))

    def start(self) -> None:
        """Spawn the broker and the workers, and hand the broker's address to the workers."""
        common = {
            "secret": self.secret,
            "transport": self.config.transport,
            "log_level": self.config.log_level,
            "log_file": self.config.log_file,
            "parent_pid": os.getpid(),
            "debug": self.config.debug,
        }
        self.broker = self._spawn(
            "the broker",
            "broker",
            {**common, "host": "127.0.0.1", "size": self.config.workers},
            pipe_stdout=True,
        )
        threading.Thread(target=self._read_address, args=(self.broker,), daemon=True).start()
        for index in range(self.config.workers):
            line = {
                **common,
                "index": index,
                "size": self.config.workers,
                "root": index == 0,
                "script": self.config.script,
                "args": self.config.args,
            }
            name = "the root worker (0)" if index == 0 else f"worker {index}"
            self.workers.append(self._spawn(name, "worker", line, pipe_stdout=False))
        address = self._wait_for_address()
        for worker in self.workers:
            self._write(worker, {"address": address}, last=True)

    def _wait_for_address(self) -> str:
        while True:
            try:
                kind, value = self.events.get(timeout=BROKER_START_TIMEOUT)
            except queue.Empty:
                raise LaunchError(
                    f"the broker did not start within {BROKER_START_TIMEOUT} s"
                ) from None
            if kind == "address":
                return str(value)
            self._abort_on_exit(*value, before_start=True)

    # -- waiting -----------------------------------------------------------------------------

    def _abort_on_exit(self, process: _Process, code: int, *, before_start: bool = False) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        when = "before the run started" if before_start else "before the root finished"
        hint = " (its error is printed above)" if code == WORKER_STARTUP_FAILED else ""
        raise LaunchError(f"{process.name} {how} {when}{hint}; stopping the run")

    def wait(self) -> int:
        """Wait for the root worker; return its exit code (128+N if killed by signal N)."""
        root = self.workers[0]
        while True:
            kind, value = self.events.get()
            if kind != "exit":
                continue
            process, code = value
            code = int(code)
            if process is root:
                return 128 - code if code < 0 else code
            if code != 0:  # exit 0 follows the root's SHUTDOWN: the normal end
                self._abort_on_exit(process, code)

    def stop(self) -> None:
        """Give every process GRACE_SECONDS to exit, then kill its process group."""
        processes = [p for p in (self.broker, *self.workers) if p is not None]
        end = time.monotonic() + GRACE_SECONDS
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, end - time.monotonic()))
        for process in processes:
            _kill_group(process.popen, signal.SIGKILL)  # also whatever its tasks started
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)

    def terminate(self) -> None:
        """Ask every process to end now (SIGTERM to its group), then make sure they did."""
        for process in (p for p in (self.broker, *self.workers) if p is not None):
            _kill_group(process.popen, signal.SIGTERM)
        self.stop()


def _kill_group(popen: subprocess.Popen[bytes], signum: int) -> None:
    # Each process leads its own session, so its group holds anything its tasks started too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signum)


def run(config: RunConfig) -> int:
    """Run a script to the end and return the launcher's exit code."""
    launched = Run(config)

    def on_signal(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            launched.start()
            code = launched.wait()
        except Interrupted as exc:
            print(f"scoop: {exc}: stopping the run", file=sys.stderr)
            launched.terminate()
            return 128 + exc.signum
        except LaunchError as exc:
            print(f"scoop: {exc}", file=sys.stderr)
            launched.terminate()
            return 1
        launched.stop()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
