"""The broker at scale: routing cost per task and memory per pending task, 16 to 1024 workers.

    python bench/broker_scale.py [--workers 16 64 256 1024] [--tasks 20000] [--batch 1 32]
                                 [--repeats 3] [--transport zmq|nng] [--pending 200000]
                                 [--futures-pending 200000] [--tiny-tasks 20000]
                                 [--heartbeat-timeout 30] [--profile FILE]

(``--workers`` with no number, ``--pending 0``, ``--futures-pending 0``, ``--tiny-tasks 0``
leave the corresponding part out.)

What runs:

* the REAL broker, started as the launcher starts it (``python -m scoop._run broker``, its
  configuration and the run's secret as a JSON line on its standard input, its address read
  from its standard output; ``parent_pid`` is this process, so it dies with it);
* one simulated submitter in this process (worker 0, the root), and N simulated workers in
  ``ceil(N / --per-process)`` processes (``bench/_simworkers.py``), each a real worker endpoint
  of the transport plugin speaking the real protocol with scoop's own Codec (HELLO with the
  real versions, WELCOME, numbered and acknowledged streams, REQUEST, RESULTS with IDLE_AFTER,
  HEARTBEAT after a quiet second, SHUTDOWN at the end).

Routing: the submitter sends M tasks (``--tasks``, at least 4 windows; fewer, but at least 2
windows, when the warm-up's rate says a round would take over ``--round-seconds``), payloads as
a tiny task's (the pickled function and the pickled call, two frames), in TASKS messages of
``--batch`` tasks each, keeping at most a window of tasks unanswered (``--window``; by default
N x batch: about one message's worth per worker, so the workers are kept busy without the
broker's queue growing); each simulated worker answers every TASKS with RESULTS at once, which
the broker routes back. Per round:

* ``cost per task``: the broker's CPU time (every thread: ``/proc/PID/task/*/schedstat``, in
  nanoseconds) over the round, divided by M, in microseconds;
* ``tasks/s``: M over the round's wall time, end to end (the simulators share the machine);
* ``broker capacity``: 1 / cost per task, the tasks/s the broker could route on one core;
* ``broker CPU share``: broker CPU time over wall time (near 1: the broker is the bottleneck);
* ``DEMAND per task``, ``tasks per worker message``: what the broker sent the workers;
* ``messages per task``, ``broker CPU per message``: every message the broker received or sent
  (counted by the simulated workers and the submitter), per task, and the broker's CPU time
  per message: a cost per task that grows with N at a flat cost per message comes from more
  messages (smaller shares of the queue per worker), not from a data structure.

Memory: a fresh broker with only the submitter (no worker takes anything) is sent
``--pending`` tasks; once it acknowledged the last message, ``memory per pending task`` is its
RSS growth over the count, and ``peak memory per pending task`` its VmHWM growth (messages
waiting in the transport's queues included). ``root memory per pending future``: the RSS growth
of a real root (``python -m scoop_launch -n 1`` running this file with ``--futures-child``) right
after it submitted ``--futures-pending`` futures of ``operator.neg`` (before it waits on them).

The real tiny-task benchmark: ``python -m scoop_launch -n --tiny-workers`` (2) runs this file
with ``--tiny-child``: ``submit`` then ``result`` of ``--tiny-tasks`` tiny tasks, and
``futures.map`` of as many, with the broker's CPU time (found among the launcher's children)
over each: its CPU share there says whether it is the bottleneck.

A round at N workers counts only if no worker was taken for lost (``--heartbeat-timeout``, the
launcher's 30 s by default) and the broker went quiet within 60 s of the last join; otherwise
that N is reported as failed (on standard error, and in the exit status).

Output: ``BENCH {json}`` lines on standard output (workload ``broker``, system ``scoop
broker``; see workloads.emit), the values being the repeats; a table and progress on standard
error. Exit status 0 unless something failed (1). ``--profile FILE`` runs the broker under
cProfile (the last N's profile is left in FILE).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import queue
import resource
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import workloads as w  # noqa: E402  (bench/ must be on the path first)

WORKLOAD = "broker"
SYSTEM = "scoop broker"
FUTURES_MARK = "BROKER_SCALE_FUTURES "
TINY_MARK = "BROKER_SCALE_TINY "
#: How long the broker and the simulators get to start, join, and to end.
START_TIMEOUT_S = 120.0
END_TIMEOUT_S = 15.0
#: How long one round (or one flood of pending tasks) may take before the bench gives up.
ROUND_TIMEOUT_S = 300.0
#: Wait on the submitter's endpoint at most this long at a time (then deadlines are checked).
PUMP_S = 0.05


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


# ------------------------------------------------------------------------ /proc measurements


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, from schedstat (ns), else stat (ticks)."""
    total_ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total_ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        return total_ns / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of ``pid`` in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


# ------------------------------------------------------------------------------- processes


class LineReader:
    """The lines of a child's standard output, read by a thread, taken with a timeout."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.name = name
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

        def read() -> None:
            for line in stream:
                self._lines.put(line)
            self._lines.put(None)

        threading.Thread(target=read, daemon=True, name=f"read-{name}").start()

    def json_line(self, key: str, timeout: float, idle: Callable[[], None] | None = None) -> Any:
        """The value of ``key`` in the next JSON line that has it; raise after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name} said no {key!r} within {timeout:g} s")
            if idle is not None:
                idle()
            try:
                line = self._lines.get(timeout=min(remaining, PUMP_S if idle else remaining))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} ended before it said {key!r}")
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and key in record:
                    return record[key]

    def drain(self, key: str) -> list[Any]:
        """The values of ``key`` in the lines already read (taken; other lines dropped)."""
        found: list[Any] = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return found
            if line is None:
                return found
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and key in record:
                    found.append(record[key])


@dataclass
class Child:
    """A process this bench started: ended in ``stop`` whatever happened."""

    name: str
    popen: subprocess.Popen[str]
    reader: LineReader

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, line: str) -> None:
        """Write one line on its standard input (ignored if it is gone)."""
        assert self.popen.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            self.popen.stdin.write(line + "\n")
            self.popen.stdin.flush()

    def stop(self, timeout: float) -> int | None:
        """Wait for it to end (at most ``timeout``), then SIGTERM, then SIGKILL: its code."""
        with contextlib.suppress(OSError, ValueError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        _log(f"  {self.name} did not end within {timeout:g} s: terminating it")
        self.popen.terminate()
        try:
            return self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)


def spawn(name: str, command: list[str], first_line: dict[str, Any]) -> Child:
    """Start a child in its own session (as the launcher does), its configuration on stdin."""
    popen = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert popen.stdout is not None
    child = Child(name, popen, LineReader(popen.stdout, name))
    child.send(json.dumps(first_line))
    return child


@dataclass
class Run:
    """One broker with its secret, and the processes around it."""

    transport: str
    transport_module: str
    secret: str = field(default_factory=lambda: os.urandom(32).hex())
    broker: Child | None = None
    address: str = ""
    sims: list[Child] = field(default_factory=list)
    #: Seconds of silence after which the broker takes a worker for lost (the launcher's 30).
    heartbeat_timeout: float = 30.0

    def start_broker(self, size: int, profile: str | None = None) -> None:
        """Start the real broker for ``size`` workers (the submitter included)."""
        prefix = [sys.executable]
        if profile:
            prefix += ["-m", "cProfile", "-o", profile]
        self.broker = spawn(
            "the broker",
            [*prefix, "-m", "scoop._run", "broker"],
            {
                "secret": self.secret,
                "transport": self.transport,
                "transport_module": self.transport_module,
                "log_level": "WARNING",
                "payload_digests": False,  # as the launcher on one machine
                "host": "127.0.0.1",
                "size": size,
                "parent_pid": os.getpid(),
                "heartbeat_timeout": self.heartbeat_timeout,
            },
        )
        self.address = self.broker.reader.json_line("address", START_TIMEOUT_S)

    def start_sims(self, count: int, per_process: int) -> None:
        """Start ``count`` simulated workers (indices 1..count) in processes of ``per_process``."""
        for first in range(1, count + 1, per_process):
            n = min(per_process, count + 1 - first)
            self.sims.append(
                spawn(
                    f"simulated workers {first}..{first + n - 1}",
                    [sys.executable, str(BENCH / "_simworkers.py")],
                    {
                        "secret": self.secret,
                        "transport": self.transport,
                        "transport_module": self.transport_module,
                        "address": self.address,
                        "first_index": first,
                        "count": n,
                        "payload_digests": False,
                        "parent_pid": os.getpid(),
                    },
                )
            )

    def sim_stats(self, idle: Callable[[], None]) -> dict[str, float]:
        """The simulators' counters, summed."""
        for sim in self.sims:
            sim.send("stats")
        totals: dict[str, float] = {}
        for sim in self.sims:
            for key, value in sim.reader.json_line("stats", START_TIMEOUT_S, idle).items():
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def stop(self) -> None:
        """End everything this run started (the broker last: the workers hear SHUTDOWN)."""
        for child in [*self.sims, *([self.broker] if self.broker else [])]:
            code = child.stop(END_TIMEOUT_S)
            if code not in (0, None):
                _log(f"  {child.name} exited with {code}")
        self.sims = []
        self.broker = None


# ------------------------------------------------------------------------------- submitter


class Submitter:
    """Worker 0, the root: submits tasks through the broker and counts their results."""

    def __init__(self, run: Run) -> None:
        from _simworkers import SimWorker

        from scoop import _serialize
        from scoop._broker import local_versions
        from scoop._plugins import load_transport
        from scoop._protocol import Codec
        from scoop.transport import ConnectOptions

        transport = load_transport(run.transport, run.transport_module)
        codec = Codec(bytes.fromhex(run.secret), payload_digests=False)
        self.me = SimWorker(transport.connect(ConnectOptions(address=run.address)), codec, 0)
        self.versions = local_versions(transport.name)
        self.codec = codec
        #: The function frame of a tiny task, as the real submitter pickles (and caches) it.
        self.fn_frame = _serialize.dumps_in_band(operator.neg)
        self.dumps_call = _serialize.dumps_call
        self.next_task = 1
        self.outstanding: set[int] = set()
        self.results = 0
        self.unexpected = 0
        self.demands = 0
        #: The last of its messages the broker acknowledged.
        self.acked = 0

    def join(self) -> None:
        """HELLO, then wait for WELCOME."""
        self.me.hello(self.versions)
        self.pump_until(lambda: self.me.joined, START_TIMEOUT_S, "the submitter's WELCOME")

    def pump(self, timeout: float = 0.0) -> None:
        """Take what the broker sent (waiting at most ``timeout``); a HEARTBEAT if quiet."""
        from scoop._protocol import Kind

        me = self.me
        frames = me.endpoint.recv(timeout)
        while frames is not None:
            message = me.accept(frames)
            if message is not None:
                self.acked = max(self.acked, message.ack)
                kind = message.kind
                if kind == Kind.RESULTS:
                    outstanding = self.outstanding
                    for entry in message.entries:
                        if entry.id in outstanding:
                            outstanding.remove(entry.id)
                            self.results += 1
                        else:
                            self.unexpected += 1
                elif kind == Kind.DEMAND:
                    self.demands += 1
                elif kind == Kind.WELCOME:
                    me.joined = True
                elif kind == Kind.REJECT:
                    raise RuntimeError("the broker rejected the submitter")
            frames = me.endpoint.recv(0)
        me.heartbeat_if_quiet(time.monotonic())

    def pump_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump until ``done()``; raise TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s")
            self.pump(PUMP_S)

    def send_tasks(self, count: int) -> None:
        """One TASKS message of ``count`` tiny tasks (function and call pickled, two frames)."""
        from scoop._protocol import Entry, Kind

        entries = []
        digest = self.codec.digest
        for _ in range(count):
            task_id = self.next_task  # worker 0: its index bits are 0
            self.next_task += 1
            frames = [self.fn_frame, *self.dumps_call((task_id,), {})]
            entries.append(Entry(task_id, 0, digest(frames), frames))
            self.outstanding.add(task_id)
        self.me.send(Kind.TASKS, 0, entries)

    def round(self, tasks: int, batch: int, window: int, timeout: float) -> float:
        """Route ``tasks`` there and back, ``batch`` a message, ``window`` at most unanswered.

        Returns the wall time in seconds.
        """
        first = self.results
        sent = 0
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        while self.results - first < tasks:
            while sent < tasks and len(self.outstanding) + batch <= max(window, batch):
                count = min(batch, tasks - sent)
                self.send_tasks(count)
                sent += count
            self.pump(PUMP_S)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"round of {tasks} tasks: {self.results - first} results in {timeout:g} s"
                )
        return time.perf_counter() - start

    def flood(self, tasks: int, batch: int, timeout: float) -> None:
        """Send ``tasks`` tasks nobody takes; return once the broker acknowledged them all."""
        sent = 0
        while sent < tasks:
            count = min(batch, tasks - sent)
            self.send_tasks(count)
            sent += count
            if sent % (64 * batch) < batch:
                self.pump()  # acknowledge what it sends (its HEARTBEATs), as a worker would
        last = self.me.next_seq - 1
        self.pump_until(lambda: self.acked >= last, timeout, "the broker's acknowledgement")

    def shutdown(self) -> None:
        """End the run as the root does: SHUTDOWN, which the broker passes to every worker."""
        from scoop._protocol import Kind

        with contextlib.suppress(Exception):
            self.me.send(Kind.SHUTDOWN, 0)

    def close(self) -> None:
        """Close the endpoint (what was sent still goes out)."""
        with contextlib.suppress(Exception):
            self.me.endpoint.close()


# ------------------------------------------------------------------------------ the figures


@dataclass
class Figures:
    """Raw values (one per repeat) by metric, with their units; emitted and tabled at the end."""

    values: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, metric: str, unit: str, value: float, note: str = "") -> None:
        """Record one value of ``metric``."""
        self.values.setdefault(metric, []).append(value)
        self.units[metric] = unit
        if note:
            self.notes[metric] = note

    def merge(self, other: Figures) -> None:
        """Add every value of ``other``."""
        for metric, values in other.values.items():
            for value in values:
                self.add(metric, other.units[metric], value, other.notes.get(metric, ""))

    def emit(self) -> None:
        """One BENCH line per metric (see workloads.emit)."""
        for metric, values in self.values.items():
            w.emit(WORKLOAD, SYSTEM, metric, self.units[metric], values, self.notes.get(metric, ""))

    def table(self) -> str:
        """A human table: median, min, max and spread of every metric."""
        lines = [f"{'metric':52} {'median':>12} {'min':>12} {'max':>12}  spread  unit"]
        for metric, values in self.values.items():
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median * 100 if median else 0.0
            lines.append(
                f"{metric:52} {_num(median):>12} {_num(min(values)):>12} "
                f"{_num(max(values)):>12} {spread:5.0f}%  {self.units[metric]}"
            )
        return "\n".join(lines)


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# -------------------------------------------------------------------------------- routing


def settle(submitter: Submitter, pid: int, timeout: float = 60.0) -> None:
    """Pump until the broker uses under 10% of a core over 0.2 s; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before, start = cpu_seconds(pid), time.monotonic()
        while time.monotonic() - start < 0.2:
            submitter.pump(PUMP_S)
        if cpu_seconds(pid) - before < 0.02:
            return
    raise TimeoutError(
        f"the broker was still busy {timeout:g} s after every worker joined (nothing measured)"
    )


def route(options: argparse.Namespace, figures: Figures, workers: int) -> None:
    """Routing cost and throughput at ``workers`` simulated workers, every batch size.

    Its figures count only if the whole of it went well (no worker lost, every result back).
    """
    measured = Figures()
    run = Run(
        options.transport, options.transport_module, heartbeat_timeout=options.heartbeat_timeout
    )
    submitter: Submitter | None = None
    started = time.perf_counter()
    try:
        run.start_broker(workers + 1, options.profile)
        assert run.broker is not None
        broker_pid = run.broker.pid
        run.start_sims(workers, options.per_process)
        submitter = Submitter(run)
        submitter.join()
        sub = submitter
        for sim in run.sims:
            sim.reader.json_line("ready", START_TIMEOUT_S, sub.pump)
        _log(
            f"N={workers}: {len(run.sims)} simulator process(es) joined in "
            f"{time.perf_counter() - started:.1f} s"
        )
        settling = time.perf_counter()
        settle(sub, broker_pid)  # the join's DEMAND storm is over before anything is measured
        _log(f"  the broker settled in {time.perf_counter() - settling:.1f} s")
        joined_rss, _ = memory_kib(broker_pid)
        plans = []
        for batch in options.batch:
            window = options.window or workers * batch
            warm = math.ceil((window + 20 * batch) / batch) * batch
            rate = warm / sub.round(warm, batch, window, ROUND_TIMEOUT_S)  # warm-up
            tasks = max(4 * window, options.tasks)
            if tasks / rate > options.round_seconds:  # too slow for that many: fewer
                tasks = max(2 * window, int(rate * options.round_seconds))
            plans.append((batch, window, math.ceil(tasks / batch) * batch))
        for repeat in range(options.repeats):
            for batch, window, tasks in plans:
                before = run.sim_stats(sub.pump)
                demands_before = sub.demands
                messages_before = sub.me.sent + sub.me.received
                cpu_before = cpu_seconds(broker_pid)
                wall = sub.round(tasks, batch, window, ROUND_TIMEOUT_S)
                cpu = cpu_seconds(broker_pid) - cpu_before
                after = run.sim_stats(sub.pump)
                delta = {k: after[k] - before.get(k, 0.0) for k in after}
                cost_us = cpu / tasks * 1e6
                label = f"N={workers} batch={batch}"
                measured.add(f"cost per task {label}", "us", cost_us, f"window {window}")
                measured.add(f"tasks/s {label}", "tasks/s", tasks / wall)
                measured.add(f"broker capacity {label}", "tasks/s", tasks / cpu)
                measured.add(f"broker CPU share {label}", "fraction", cpu / wall)
                measured.add(
                    f"DEMAND per task {label}",
                    "messages",
                    (delta["demands"] + sub.demands - demands_before) / tasks,
                )
                messages = (
                    (sub.me.sent + sub.me.received - messages_before)
                    + delta["sent"]
                    + delta["received"]
                )
                measured.add(
                    f"broker CPU per message {label}",
                    "us",
                    cpu / messages * 1e6,
                    "every message the broker received or sent in the round",
                )
                measured.add(f"messages per task {label}", "messages", messages / tasks)
                measured.add(
                    f"tasks per worker message {label}",
                    "tasks",
                    delta["tasks"] / max(1.0, delta["task_messages"]),
                )
                measured.add(
                    f"simulator CPU per task {label}",
                    "us",
                    (delta["cpu_s"]) / tasks * 1e6,
                    "all simulated workers' processes (the submitter not included)",
                )
                _log(
                    f"  N={workers} batch={batch} repeat {repeat + 1}: {tasks} tasks, "
                    f"{cost_us:.1f} us/task of broker CPU, {tasks / wall:,.0f} tasks/s, "
                    f"broker busy {cpu / wall:.0%}, "
                    f"{delta['demands'] / tasks:.1f} DEMAND/task"
                )
        rss, hwm = memory_kib(broker_pid)
        measured.add(f"broker RSS after joins N={workers}", "MB", joined_rss / 1024)
        measured.add(f"broker RSS N={workers}", "MB", rss / 1024)
        measured.add(f"broker peak RSS N={workers}", "MB", hwm / 1024)
        if sub.unexpected:
            raise RuntimeError(f"{sub.unexpected} results that were not expected")
        lost = run.broker.reader.drain("lost")
        if lost:
            raise RuntimeError(
                f"the broker took {len(lost)} simulated workers for lost (silent for "
                f"{options.heartbeat_timeout:g} s): these figures do not count"
            )
        figures.merge(measured)
    finally:
        if submitter is not None:
            submitter.shutdown()
        run.stop()
        if submitter is not None:
            submitter.close()


# --------------------------------------------------------------------------------- memory


def pending_memory(options: argparse.Namespace, figures: Figures, batch: int) -> None:
    """Broker memory per pending task: ``--pending`` tasks that no worker takes."""
    run = Run(
        options.transport, options.transport_module, heartbeat_timeout=options.heartbeat_timeout
    )
    submitter: Submitter | None = None
    try:
        run.start_broker(1)
        assert run.broker is not None
        submitter = Submitter(run)
        submitter.join()
        time.sleep(0.5)
        submitter.pump()
        rss_before, _ = memory_kib(run.broker.pid)
        started = time.perf_counter()
        submitter.flood(options.pending, batch, ROUND_TIMEOUT_S)
        took = time.perf_counter() - started
        rss_after, hwm = memory_kib(run.broker.pid)
        per_task = (rss_after - rss_before) * 1024 / options.pending
        peak = (hwm - rss_before) * 1024 / options.pending
        label = f"batch={batch}"
        note = f"{options.pending} pending tasks"
        figures.add(f"memory per pending task {label}", "bytes", per_task, note)
        figures.add(f"peak memory per pending task {label}", "bytes", peak, note)
        figures.add(f"broker peak RSS, {options.pending} pending {label}", "MB", hwm / 1024)
        _log(
            f"  pending {options.pending} batch={batch}: {per_task:.0f} bytes/task after, "
            f"{peak:.0f} at the peak ({hwm / 1024:.0f} MB), routed in {took:.1f} s"
        )
    finally:
        if submitter is not None:
            submitter.shutdown()
        run.stop()
        if submitter is not None:
            submitter.close()


def _launched_records(
    options: argparse.Namespace, workers: int, child: list[str], mark: str
) -> list[dict[str, Any]]:
    """Run this file as a script under the real launcher; the records its root printed."""
    command = [
        sys.executable,
        "-m",
        "scoop_launch",
        "-n",
        str(workers),
        "--transport",
        options.transport,
        str(Path(__file__).resolve()),
        *child,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=ROUND_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    records = [
        json.loads(line[len(mark) :]) for line in done.stdout.splitlines() if line.startswith(mark)
    ]
    if not records:
        raise RuntimeError(f"no figure from {' '.join(command)}:\n{done.stdout[-2000:]}")
    return records


def futures_memory(options: argparse.Namespace, figures: Figures) -> None:
    """The real root's memory per pending future (``scoop_launch -n 1``, this file as child)."""
    child = ["--futures-child", str(options.futures_pending)]
    record = _launched_records(options, 1, child, FUTURES_MARK)[0]
    figures.add(
        "root memory per pending future",
        "bytes",
        record["bytes_per_future"],
        f"{record['futures']} futures of operator.neg, -n 1, RSS growth",
    )
    _log(f"  root: {record['bytes_per_future']:.0f} bytes per pending future")


def tiny_share(options: argparse.Namespace, figures: Figures) -> None:
    """The broker's part of the real tiny-task benchmark (``scoop_launch -n --tiny-workers``)."""
    child = ["--tiny-child", str(options.tiny_tasks), "--repeats", str(options.repeats)]
    for record in _launched_records(options, options.tiny_workers, child, TINY_MARK):
        label = f"{record['api']} -n {options.tiny_workers}"
        note = f"{record['tasks']} tiny tasks of operator.neg, real launcher and workers"
        figures.add(f"tiny-task benchmark tasks/s, {label}", "tasks/s", record["rate"], note)
        figures.add(
            f"tiny-task benchmark broker CPU share, {label}", "fraction", record["share"], note
        )
        figures.add(f"tiny-task benchmark broker CPU per task, {label}", "us", record["us"], note)
        _log(
            f"  tiny tasks, {label}: {record['rate']:,.0f} tasks/s, broker busy "
            f"{record['share']:.0%}, {record['us']:.2f} us of broker CPU per task"
        )


def _broker_of_this_run() -> int:
    """The pid of this run's broker: the launcher's child that runs ``scoop._run broker``."""
    launcher = os.getppid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"scoop._run" in cmdline and b"broker" in cmdline:
                return int(entry)
    raise RuntimeError("the broker of this run was not found among the launcher's children")


def tiny_child(count: int, repeats: int) -> None:
    """Under the launcher: the tiny-task benchmark (submit, map), the broker's CPU measured."""
    from scoop import futures

    broker = _broker_of_this_run()
    runs: dict[str, Callable[[int], list[int]]] = {
        "submit": lambda n: [
            f.result() for f in [futures.submit(operator.neg, i) for i in range(n)]
        ],
        "map": lambda n: list(futures.map(operator.neg, range(n))),
    }
    for api, run in runs.items():
        run(min(count, 1000))  # warm-up
        for _ in range(repeats):
            cpu = cpu_seconds(broker)
            start = time.perf_counter()
            result = run(count)
            wall = time.perf_counter() - start
            cpu = cpu_seconds(broker) - cpu
            assert result == [-i for i in range(count)]
            record = {
                "api": api,
                "tasks": count,
                "rate": count / wall,
                "share": cpu / wall,
                "us": cpu / count * 1e6,
            }
            print(TINY_MARK + json.dumps(record), flush=True)


def futures_child(count: int) -> None:
    """Under the launcher: submit ``count`` futures, print the RSS growth, then wait on them."""
    import gc

    from scoop import futures

    gc.collect()
    rss_before, _ = memory_kib(os.getpid())
    pending = [futures.submit(operator.neg, i) for i in range(count)]
    rss_after, _ = memory_kib(os.getpid())
    record = {
        "futures": count,
        "bytes_per_future": (rss_after - rss_before) * 1024 / count,
    }
    print(FUTURES_MARK + json.dumps(record), flush=True)
    futures.wait(pending, timeout=ROUND_TIMEOUT_S)


# ---------------------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[16, 64, 256, 1024])
    parser.add_argument(
        "--tasks", type=int, default=20000, help="tasks per round (at least 4 windows)"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--window", type=int, default=0, help="tasks unanswered at most (0: N x batch)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=20.0,
        help="a round that would take longer (at the warm-up's rate) gets fewer tasks, "
        "at least 2 windows",
    )
    parser.add_argument("--transport", default="zmq")
    parser.add_argument("--per-process", type=int, default=256, help="simulated workers a process")
    parser.add_argument("--pending", type=int, default=200_000, help="0: no broker memory figure")
    parser.add_argument("--futures-pending", type=int, default=200_000, help="0: no root figure")
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=30.0,
        help="the broker's (the launcher's default: 30 s)",
    )
    parser.add_argument("--profile", help="run the broker under cProfile, writing this file")
    parser.add_argument(
        "--tiny-tasks",
        type=int,
        default=20000,
        help="tasks of the real tiny-task benchmark whose broker CPU is measured (0: none)",
    )
    parser.add_argument("--tiny-workers", type=int, default=w.WORKERS, help="its -n")
    parser.add_argument("--futures-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tiny-child", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure every configuration; BENCH lines on stdout, the table on stderr."""
    options = parse(argv)
    if options.futures_child:
        futures_child(options.futures_child)
        return 0
    if options.tiny_child:
        tiny_child(options.tiny_child, options.repeats)
        return 0
    from scoop._plugins import choose_transport

    options.transport_module = choose_transport(options.transport).module
    limit = raise_fd_limit()
    _log(f"broker_scale: transport {options.transport}, open files up to {limit}")
    figures = Figures()
    failed = False
    for workers in options.workers:
        try:
            route(options, figures, workers)
        except Exception as exc:
            failed = True
            _log(f"N={workers}: FAILED: {exc!r}\n{traceback.format_exc()}")
            w.emit_skip(WORKLOAD, f"{SYSTEM} N={workers}", f"failed: {exc}")
    for batch in options.batch if options.pending else []:
        for _ in range(options.repeats):
            try:
                pending_memory(options, figures, batch)
            except Exception as exc:
                failed = True
                _log(f"pending memory batch={batch}: FAILED: {exc!r}")
    for _ in range(options.repeats if options.futures_pending else 0):
        try:
            futures_memory(options, figures)
        except Exception as exc:
            failed = True
            _log(f"root memory: FAILED: {exc!r}")
    if options.tiny_tasks:
        try:
            tiny_share(options, figures)
        except Exception as exc:
            failed = True
            _log(f"tiny-task benchmark: FAILED: {exc!r}")
    ratios(options, figures)
    figures.emit()
    _log(figures.table())
    return 1 if failed else 0


def ratios(options: argparse.Namespace, figures: Figures) -> None:
    """Cost per task at the largest N over the smallest, per batch (the goal: at most 1.5)."""
    if len(options.workers) < 2:
        return
    low, high = min(options.workers), max(options.workers)
    for batch in options.batch:
        small = figures.values.get(f"cost per task N={low} batch={batch}")
        large = figures.values.get(f"cost per task N={high} batch={batch}")
        if small and large:
            for a, b in zip(large, small, strict=False):
                figures.add(
                    f"cost ratio N={high}/N={low} batch={batch}", "x", a / b, "goal: <= 1.5"
                )


if __name__ == "__main__":
    sys.exit(main())
