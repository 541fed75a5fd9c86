"""One run: start the broker and the workers, wait for the root, leave no process behind.

Order of a run::

    remote hosts: one ssh connection each, all opened first, then one agent each, which checks
    its host (Python, scoop, versions, transport, --path) and answers before any worker exists:
    a host that fails stops the launch here, naming the host and the cause, with nothing started
    broker and local workers spawned at once (each in its own session, so only the launcher sees
    a terminal's Ctrl-C); each gets its configuration and the secret on stdin and imports the
    script while the broker binds
    broker prints its address -> sent to every worker and agent -> workers connect, say HELLO
    root exits with the script's code -> the broker tells the others -> all exit
    anything left after GRACE_SECONDS -> killed (local process groups; remote agents stop theirs)

A worker, agent or the broker that fails before the root is done aborts the run (exit 1).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

# The agent states the rule its side applies as well (a stdlib-only module: cheap to import).
from scoop_launch._agent import ENDING_ANNOUNCEMENT_WAIT

#: How long workers get to exit after the root is done, before they are killed.
GRACE_SECONDS = 5.0
#: How long the broker gets to report its address.
BROKER_START_TIMEOUT = 60.0
#: Exit code of a worker that could not start (scoop._run.STARTUP_FAILED).
WORKER_STARTUP_FAILED = 3
#: Host names that mean this machine: their workers start as local processes, not over ssh.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class LaunchError(Exception):
    """The run could not start or had to be aborted; the message says why."""

    #: The launcher's exit code when this ends the run.
    exit_code = 1


class RootLost(LaunchError):
    """The root worker was killed, or the connection to its host broke."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
    #: ``(host, workers)`` in order; the root runs on the first host.
    placement: list[tuple[str, int]] = field(default_factory=lambda: [("localhost", 1)])
    transport: str = "zmq"
    #: The plugin module that provides it (workers load it directly); "" to discover it.
    transport_module: str = ""
    log_level: str = "WARNING"
    log_file: str | None = None
    python: str = sys.executable
    debug: bool = False
    #: Options for remote hosts (scoop_launch._ssh.SshOptions); None when all are local.
    ssh: Any = None
    #: Open ssh connections (scoop_launch._ssh.Connections), shared with placement.
    connections: Any = None
    #: The address workers on other hosts use to reach the broker (default: found by routing).
    broker_hostname: str | None = None
    #: Workers on other hosts reach the broker through ssh port forwarding.
    tunnel: bool = False
    #: Digest payloads even when every worker is on this machine (always done otherwise).
    verify_payloads: bool = False

    @property
    def size(self) -> int:
        """Total number of workers."""
        return sum(count for _, count in self.placement)


def is_local(host: str) -> bool:
    """True if ``host`` names this machine (its name, or any loopback address)."""
    if host in LOCAL_NAMES or host in (socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Handle(Protocol):
    name: str

    def wait(self) -> int: ...


class _Local:
    """A process on this machine."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.popen = popen

    def wait(self) -> int:
        return self.popen.wait()

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


def _advertised(address: str, host: str | None = None, port: int | None = None) -> str:
    """``address`` (scheme://host:port) with its host and/or port replaced."""
    scheme, _, rest = address.partition("://")
    old_host, _, old_port = rest.rpartition(":")
    new_host = host if host is not None else old_host
    if ":" in new_host and not new_host.startswith("["):
        new_host = f"[{new_host}]"
    return f"{scheme}://{new_host}:{port if port is not None else old_port}"


def _route_source(address: str) -> str:
    """This machine's address on the route to ``address`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        return str(probe.getsockname()[0])


class Run:
    """A run of a script on local and remote workers."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.secret = secrets.token_bytes(32).hex()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.broker: _Local | None = None
        self.local: list[_Local] = []
        self.agents: list[Any] = []  # scoop_launch._ssh.RemoteAgent
        self.root: _Handle | None = None
        self._broker_port: int | None = None
        #: Set once the broker announced the end of the run: workers may exit with 0 from then.
        self.ending = False
        self._stopping = threading.Event()
        # Payloads carry a SHA-256 digest when any worker is on another host; on one machine
        # loopback TCP cannot be altered in flight and the header tag alone authenticates.
        self.payload_digests = config.verify_payloads or any(
            not is_local(host) for host, _ in config.placement
        )

    # -- starting ----------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "transport": self.config.transport,
            "transport_module": self.config.transport_module,
            "log_level": self.config.log_level,
            "log_file": self.config.log_file,
            "debug": self.config.debug,
            "payload_digests": self.payload_digests,
        }

    def _spawn(
        self, name: str, role: str, first_line: dict[str, Any], *, pipe_stdout: bool
    ) -> _Local:
        popen = subprocess.Popen(
            [self.config.python, "-m", "scoop._run", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if pipe_stdout else None,
            env=dict(os.environ),
            start_new_session=True,
        )
        process = _Local(name, popen)
        process.send_line(first_line)
        self._watch(process)
        return process

    def _watch(self, handle: _Handle) -> None:
        def watch() -> None:
            self.events.put(("exit", (handle, handle.wait())))

        threading.Thread(target=watch, daemon=True).start()

    def _read_broker(self, broker: _Local) -> None:
        # The broker's standard output carries only its address, then the end of the run.
        assert broker.popen.stdout is not None
        for line in broker.popen.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing): this reader must not die of it
            if not isinstance(message, dict):
                continue
            if "address" in message:
                self.events.put(("address", message["address"]))
            elif "ending" in message:
                # Relayed from this thread: the main one may have returned from wait() already
                # (the root exits right after its SHUTDOWN) while remote workers still end.
                self.ending = True
                for agent in self.agents:
                    agent.send_line({"ending": message["ending"]})
                self.events.put(("ending", message["ending"]))

    def _index_plan(self) -> list[tuple[str, list[int]]]:
        plan, next_index = [], 0
        for host, count in self.config.placement:
            plan.append((host, list(range(next_index, next_index + count))))
            next_index += count
        return plan

    def _start_agents(self, remote: list[tuple[str, list[int]]]) -> None:
        from scoop_launch import _ssh

        options = self.config.ssh
        if self.config.connections is None:
            self.config.connections = _ssh.Connections(options)
        connections = self.config.connections
        outcomes = _in_parallel(connections.get, [host for host, _ in remote])
        failures = [str(error) for _, error in outcomes if error is not None]
        clients = [client for client, _ in outcomes]
        if failures:
            connections.close_all()
            raise LaunchError("cannot start the run: " + "; ".join(failures))
        from scoop import __version__ as core_version
        from scoop_launch import __version__ as launch_version

        with open(self.config.script, "rb") as handle:
            # base64 of the bytes: a script may declare another encoding than UTF-8 (PEP 263).
            source = base64.b64encode(handle.read()).decode("ascii")
        worker_common = {**self._common(), "size": self.config.size, "args": self.config.args}
        for (host, indices), client in zip(remote, clients, strict=True):
            agent = _ssh.RemoteAgent(host, client, options)
            self.agents.append(agent)
            if self.config.tunnel:
                try:
                    agent.open_tunnel(self._broker_target)
                except _ssh.RemoteHostError as exc:
                    raise LaunchError(f"cannot start the run: {exc}") from None
            agent.send_line(
                {
                    "versions": {
                        "scoop_core": core_version,
                        "scoop_launch": launch_version,
                        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                    },
                    "transport": self.config.transport,
                    "path": options.path,
                    "script": self.config.script,
                    "script_base64": source,
                    "silence_timeout": options.silence_timeout,
                    "indices": indices,
                    "worker": worker_common,
                }
            )
        outcomes = _in_parallel(lambda agent: agent.wait_ready(), self.agents)
        failures = [str(error) for _, error in outcomes if error is not None]
        if failures:
            raise LaunchError("cannot start the run: " + "; ".join(failures))
        if options.silence_timeout > 0:
            threading.Thread(
                target=self._ping_agents, args=(options.silence_timeout / 3,), daemon=True
            ).start()

    def _ping_agents(self, interval: float) -> None:
        # Each agent stops its workers when it hears nothing for the silence timeout: a host
        # cut off from this machine does not keep running a run that is over.
        count = 0
        while not self._stopping.wait(interval):
            count += 1
            for agent in self.agents:
                agent.send_line({"ping": count})

    def _broker_target(self) -> tuple[str, int]:
        assert self._broker_port is not None
        return "127.0.0.1", self._broker_port

    def _bind_host(self, remote: list[tuple[str, list[int]]]) -> tuple[str, str | None]:
        """Interface the broker binds, and the host remote workers connect to."""
        if not remote or self.config.tunnel:
            return "127.0.0.1", None
        if self.config.broker_hostname:
            return "0.0.0.0", self.config.broker_hostname
        from scoop_launch import _ssh

        target = socket.getaddrinfo(_ssh.resolve(remote[0][0], self.config.ssh)["hostname"], 22)
        source = _route_source(str(target[0][4][0]))
        return source, source

    def start(self) -> None:
        """Check the remote hosts, spawn everything, and hand out the broker's address."""
        plan = self._index_plan()
        remote = [(host, indices) for host, indices in plan if not is_local(host)]
        local = [index for host, indices in plan if is_local(host) for index in indices]
        if remote:
            self._start_agents(remote)
        bind_host, advertised_host = self._bind_host(remote)
        self.broker = self._spawn(
            "the broker",
            "broker",
            {
                **self._common(),
                "host": bind_host,
                "size": self.config.size,
                "parent_pid": os.getpid(),
            },
            pipe_stdout=True,
        )
        threading.Thread(target=self._read_broker, args=(self.broker,), daemon=True).start()
        for index in local:
            line = {
                **self._common(),
                "index": index,
                "size": self.config.size,
                "root": index == 0,
                "script": self.config.script,
                "args": self.config.args,
                "parent_pid": os.getpid(),
            }
            name = "the root worker (0)" if index == 0 else f"worker {index}"
            process = self._spawn(name, "worker", line, pipe_stdout=False)
            self.local.append(process)
            if index == 0:
                self.root = process
        for agent in self.agents:
            agent.pump_output(sys.stdout.buffer, sys.stderr.buffer)
            self._watch(agent)
            if self.root is None and 0 in dict(remote).get(agent.host, []):
                self.root = agent
        address = self._wait_for_address()
        self._broker_port = int(address.rpartition(":")[2])
        for process in self.local:
            process.send_line({"address": address}, last=True)
        for agent in self.agents:
            if self.config.tunnel:
                agent_address = _advertised(address, "127.0.0.1", agent.tunnel_port)
            else:
                agent_address = _advertised(address, advertised_host)
            agent.send_line({"address": agent_address})

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

    def _abort_on_exit(self, handle: _Handle, code: int, *, before_start: bool = False) -> None:
        if code == -1 and handle in self.agents:
            how = "lost their ssh connection (or their agent died)"
        elif code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        when = "before the run started" if before_start else "before the root finished"
        hint = " (its error is printed above)" if code in (WORKER_STARTUP_FAILED, 1) else ""
        raise LaunchError(f"{handle.name} {how} {when}{hint}; stopping the run")

    def wait(self) -> int:
        """Wait for the root worker; return its exit code (128+N if killed by signal N).

        A worker that fails before the root is done aborts the run; one that failed while the
        root was finishing is found by :meth:`failed_workers` once everything has ended.
        """
        early_exits: dict[_Handle, float] = {}  # exited with 0, but the end is not announced
        while True:
            wait = None
            if early_exits:
                wait = max(0.0, min(early_exits.values()) - time.monotonic())
            try:
                kind, value = self.events.get(timeout=wait)
            except queue.Empty:
                handle = min(early_exits, key=early_exits.__getitem__)
                raise LaunchError(
                    f"{handle.name} exited with code 0 before the run ended (did a task call "
                    "os._exit?); its tasks are lost; stopping the run"
                ) from None
            if kind == "ending":
                early_exits.clear()
                continue
            if kind != "exit":
                continue
            handle, code = value
            code = int(code)
            if handle is self.root:
                if code == -1 and handle in self.agents:
                    raise RootLost(
                        f"{handle.name}, the root's among them, lost their ssh connection (or "
                        "their agent died); stopping the run",
                        1,
                    )
                if code < 0:
                    raise RootLost(
                        f"{handle.name} was killed by signal {-code}; stopping the run", 128 - code
                    )
                return code
            if code != 0:
                self._abort_on_exit(handle, code)
            elif not self.ending:  # normal only after the broker announced the end
                early_exits[handle] = time.monotonic() + ENDING_ANNOUNCEMENT_WAIT

    def failed_workers(self) -> list[str]:
        """Workers (or remote hosts' agents) that failed; call once everything has ended."""
        # Only a worker that could not start counts (exit 3; an agent says 1 for its workers): one
        # killed after the grace period, still busy with a task the root no longer needed, does not.
        failed = [
            p.name
            for p in self.local
            if p is not self.root and p.popen.returncode == WORKER_STARTUP_FAILED
        ]
        failed += [
            a.name
            for a in self.agents
            if a is not self.root
            and a.channel.exit_status_ready()
            and a.channel.recv_exit_status() == 1
        ]
        return failed

    def stop(self) -> None:
        """Give every process GRACE_SECONDS to exit, then kill what is left."""
        self._stopping.set()
        end = time.monotonic() + GRACE_SECONDS
        for process in self.local:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, end - time.monotonic()))
        workers_gone = all(p.popen.poll() is not None for p in self.local) and not self.agents
        if self.broker is not None and workers_gone:
            # Every worker is gone: the broker need not wait for late joiners.
            self.broker.signal_group(signal.SIGTERM)
        processes = [p for p in (self.broker, *self.local) if p is not None]
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, end - time.monotonic()))
        for agent in self.agents:
            agent.stop()  # EOF on its stdin: it stops whatever of its workers is left
        for agent in self.agents:
            agent.channel.status_event.wait(max(0.1, end - time.monotonic()))
            agent.close()
        for process in processes:
            process.signal_group(signal.SIGKILL)  # also whatever its tasks started
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)

    def terminate(self) -> None:
        """Ask every process to end now, then make sure they did."""
        for process in (p for p in (self.broker, *self.local) if p is not None):
            process.signal_group(signal.SIGTERM)
        for agent in self.agents:
            agent.stop()
        self.stop()


def _in_parallel(
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


def run(config: RunConfig) -> int:
    """Run a script to the end and return the launcher's exit code."""
    launched = Run(config)

    interruptible = True

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interruptible
        # Only the first signal interrupts: a second one (Ctrl-C pressed again) must not cut the
        # clean-up short, which is bounded anyway (GRACE_SECONDS, then SIGKILL).
        if interruptible:
            interruptible = False
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            launched.start()
            code = launched.wait()
            launched.stop()
        except Interrupted as exc:  # on_signal already made further signals harmless
            print(f"scoop: {exc}: stopping the run", file=sys.stderr)
            launched.terminate()
            return 128 + exc.signum
        except LaunchError as exc:
            interruptible = False
            print(f"scoop: {exc}", file=sys.stderr)
            launched.terminate()
            return exc.exit_code
        interruptible = False
        failed = launched.failed_workers()
        if failed:
            # e.g. a worker that could not import the script: the run did not run as asked
            print(f"scoop: {', '.join(failed)} failed (see above)", file=sys.stderr)
            return code or 1
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
