"""The per-host agent: ``python -m scoop_launch._agent``, one per host.

It starts all of its host's workers, so that a host needs one connection however many workers it
runs. The launcher starts it over ssh, or with the allocation's own tool (srun, qrsh -inherit,
blaunch, mpiexec: see scoop_launch._starters), whose standard streams carry the conversation
below. A tool that carries no standard input (pbsdsh) starts it with ``--connect HOST:PORT
--ticket-file FILE --host NAME``: it then opens two TCP connections to the launcher, shows the
ticket, and uses them as its standard input and output, and its standard error.
Conversation with the launcher:

    launcher -> stdin   line 1: the host's configuration and the run secret (never on argv)
    agent    -> stdout  one line ``SCOOP-AGENT {"ok": true}`` or ``SCOOP-AGENT {"error": ...}``,
                        printed before any worker exists, so it never mixes with user output
    launcher -> stdin   line 2: ``{"address": ...}``, forwarded to the workers
    launcher -> stdin   ``{"ending": code}`` once the broker announces the end of the run (it can
                        come before the address line): from then workers may exit with 0
    launcher -> stdin   ``{"ping": n}`` every few seconds: after ``silence_timeout`` seconds
                        without a line, the launcher is taken for gone and the workers stopped
    workers  -> stdout/stderr   inherited: the user's output flows back over the channel
    stdin EOF           the launcher is gone or ends the run: the workers are stopped

    agent    -> stdout  ``SCOOP-AGENT {"exit": index, "code": code, "running": task id}`` when a
                        worker other than the root ends before the run does (the launcher tells
                        the broker, which has its tasks run elsewhere)
    launcher -> stdin   ``{"kill": index}``: the broker took that worker for lost; SIGKILL it
    launcher -> stdin   ``{"stdin": base64}`` ... ``{"stdin_eof": true}``: the launcher's own
                        standard input, for the root's (on the root's host)

Exit status: on the root's host, the root's exit code; elsewhere 0; 1 when it stopped its workers
because the launcher fell silent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from scoop_launch._agent_connect import connect_back, relays
from scoop_launch._owneddir import remove_abandoned, run_dir
from scoop_launch._prestart import process_env

READY_PREFIX = "SCOOP-AGENT "
#: Characters of a worker's record per line sent to the launcher (its lines are bounded).
TRACE_PIECE = 16384
#: How long workers get between SIGTERM and SIGKILL when the run is stopped.
STOP_GRACE_SECONDS = 2.0
#: How long a worker's exit with code 0 may precede the announcement that the run ends (the
#: broker announces it before it tells any worker: only reading or relaying the line may lag).
#: The launcher applies it to local workers, the agent to its own.
ENDING_ANNOUNCEMENT_WAIT = 5.0


_reply_lock = threading.Lock()


def _reply(message: dict[str, Any]) -> None:
    with _reply_lock:  # the main thread and the launcher's reader both answer
        sys.stdout.write(READY_PREFIX + json.dumps(message) + "\n")
        sys.stdout.flush()


def _check(config: dict[str, Any]) -> str | None:
    """Return why this host cannot run its workers, or None."""
    try:
        import scoop
        from scoop import _plugins
    except ImportError as exc:
        return f"scoop-core is not installed for {sys.executable}: {exc}"
    from scoop_launch import __version__ as launch_version

    mine = {
        "scoop_core": scoop.__version__,
        "scoop_launch": launch_version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    theirs = config["versions"]
    differences = [
        f"{key} {mine[key]} here but {theirs.get(key)} on the launcher"
        for key in mine
        if mine[key] != theirs.get(key)
    ]
    if differences:
        return "version mismatch: " + "; ".join(differences)
    try:
        _plugins.choose_transport(config["transport"])
    except Exception as exc:
        return f"transport {config['transport']!r} is not usable here: {exc}"
    return None


def _same_file(path: str, source: bytes) -> bool:
    """True if ``path`` already holds ``source`` (a shared file system): run it in place."""
    try:
        with open(path, "rb") as handle:
            return handle.read() == source
    except OSError:
        return False


def _end_relays(code: int) -> None:
    """Say the exit status (pbsdsh does not), then send what is left and close the streams."""
    _reply({"agent_exit": code})
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    for fd in (1, 2):  # the workers are gone: these were the last writers
        with contextlib.suppress(OSError):
            os.close(fd)
    for relay in relays:
        relay.join(timeout=STOP_GRACE_SECONDS * 5)


def main(argv: list[str] | None = None) -> int:
    """Run the agent of one host."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        try:
            connect_back(argv)
        except (OSError, KeyError, ValueError) as exc:
            print(
                f"scoop: agent on {socket.gethostname()}: cannot reach the launcher: {exc}",
                file=sys.stderr,
            )
            return 3
    code = _serve()
    if relays:
        _end_relays(code)
    return code


def _serve() -> int:
    line = sys.stdin.readline()
    if not line:  # a connection back that the launcher refused (or a launcher gone)
        print(
            f"scoop: agent on {socket.gethostname()}: no configuration came from the launcher",
            file=sys.stderr,
        )
        return 3
    config = json.loads(line)
    hostname = socket.gethostname()
    problem = _check(config)
    workdir = config.get("path")
    if problem is None and workdir:
        try:
            os.chdir(workdir)
        except OSError as exc:
            problem = f"cannot use working directory {workdir!r} (--path): {exc}"
    shipped_dir = None
    script = config["script"]  # "" for an Executor's workers
    source = base64.b64decode(config["script_base64"])
    if problem is None and script and not _same_file(script, source):
        shipped_dir = tempfile.mkdtemp(prefix="scoop-script-")
        script = os.path.join(shipped_dir, os.path.basename(config["script"]))
        with open(script, "wb") as handle:
            handle.write(source)
    if problem is not None:
        _reply({"error": problem, "host": hostname})
        return 3
    _reply({"ok": True, "host": hostname, "pid": os.getpid()})
    try:
        return _run_workers(config, script, hostname)
    finally:
        if shipped_dir is not None:
            shutil.rmtree(shipped_dir, ignore_errors=True)


def _run_workers(config: dict[str, Any], script: str, hostname: str) -> int:
    slots = run_dir()  # kept with a lock, as the launcher's: see scoop_launch._owneddir
    remove_abandoned(keep=[slots.path])  # what agents and launchers killed outright left here
    try:
        return _supervise(config, script, hostname, slots.path)
    finally:
        slots.remove()
        _remove_channels(config)


def _remove_channels(config: dict[str, Any]) -> None:
    """Remove the direct-path sockets that killed workers of this host could not."""
    try:
        from scoop._direct import remove_channels

        remove_channels(bytes.fromhex(config["worker"]["secret"]), config["indices"])
    except Exception as exc:  # a leftover in /tmp is no reason to fail the run
        print(f"scoop: could not clean the run's sockets up: {exc}", file=sys.stderr)


def _supervise(config: dict[str, Any], script: str, hostname: str, slots: str) -> int:
    # SimpleQueue: its put() is reentrant, so the SIGTERM handler may call it even while this
    # thread is inside events.get() (a Queue's lock would deadlock there).
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    workers: dict[int, subprocess.Popen[bytes]] = {}
    env = process_env()  # as the launcher starts its own workers (huge pages for large blocks)
    # A traced run: the workers here record into a directory of this host, sent back at the end.
    trace_dir = tempfile.mkdtemp(prefix="scoop-trace-") if config["worker"].get("trace_dir") else ""
    for index in config["indices"]:
        popen = subprocess.Popen(
            [sys.executable, "-m", "scoop._run", "worker"],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        workers[index] = popen
        line = {
            **config["worker"],
            "index": index,
            "root": index == 0,
            "runs_tasks": index != 0 or config.get("root_runs_tasks", True),
            "script": script,
            "parent_pid": os.getpid(),
            "trace_dir": trace_dir,
        }
        if index != 0:
            line["running_slot"] = os.path.join(slots, f"running-{index}")
        assert popen.stdin is not None
        popen.stdin.write(json.dumps(line).encode() + b"\n")
        popen.stdin.flush()
        threading.Thread(
            target=lambda i=index, p=popen: events.put(("exit", (i, p.wait()))), daemon=True
        ).start()

    silence = float(config.get("silence_timeout") or 0)  # 0: never give up on the launcher
    last_heard = [time.monotonic()]

    def read_launcher() -> None:
        for line in sys.stdin:  # until the launcher closes the channel
            last_heard[0] = time.monotonic()
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if "address" in message:
                events.put(("address", line))
            elif "ending" in message:  # may come first: the root can end before we start
                events.put(("ending", None))
            elif "kill" in message:  # the broker took this worker for lost
                events.put(("kill", message["kill"]))
            elif "stdin" in message:  # the launcher's standard input, for the root
                events.put(("stdin", base64.b64decode(message["stdin"])))
            elif "stdin_eof" in message:
                events.put(("stdin", b""))
            elif "clock" in message:  # the launcher measures this host's clock against its own
                _reply({"clock": message["clock"], "now": time.monotonic_ns(), "host": hostname})
        events.put(("eof", None))

    threading.Thread(target=read_launcher, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: events.put(("eof", None)))
    root_code: int | None = None
    failed = False
    ending = False  # the launcher relayed the broker's announcement that the run ends
    orphans_deadline: float | None = None  # the root here ended, the end is not announced yet
    running = set(workers)
    while running:
        deadlines = [orphans_deadline] if orphans_deadline else []
        if silence:
            deadlines.append(last_heard[0] + silence)
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        try:
            kind, value = events.get(timeout=wait)
        except queue.Empty:
            if silence and time.monotonic() - last_heard[0] >= silence:
                # The launcher pings every few seconds: its host or the network between is gone.
                print(
                    f"scoop: host {hostname}: no word from the launcher for {silence:g} s; "
                    "stopping its workers",
                    file=sys.stderr,
                    flush=True,
                )
                _stop(workers)
                failed = True
                break
            if orphans_deadline is not None and orphans_deadline <= time.monotonic():
                # The root died without ending the run: nobody will tell the others to stop.
                orphans_deadline = None
                _stop(workers)
            continue
        if kind == "ending":
            ending = True
            orphans_deadline = None
        elif kind == "address":
            for index, popen in workers.items():
                assert popen.stdin is not None
                with contextlib.suppress(OSError):
                    popen.stdin.write(value.encode())
                    popen.stdin.flush()
                    if index != 0:  # the root's carries the launcher's standard input next
                        popen.stdin.close()
        elif kind == "stdin":
            root = workers.get(0)
            if root is not None and root.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    if value:
                        root.stdin.write(value)
                        root.stdin.flush()
                    else:
                        root.stdin.close()
        elif kind == "eof":
            _stop(workers)
            break
        elif kind == "kill":
            lost = workers.get(value)
            if lost is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(lost.pid, signal.SIGKILL)
        elif kind == "exit":
            index, code = value
            running.discard(index)
            if index == 0:
                root_code = 128 - code if code < 0 else code
                if not ending and running:
                    orphans_deadline = time.monotonic() + ENDING_ANNOUNCEMENT_WAIT
                if code < 0:
                    print(
                        f"scoop: the root worker (0) on host {hostname} was killed by signal "
                        f"{-code}",
                        file=sys.stderr,
                        flush=True,
                    )
            elif not ending:
                # The launcher tells the broker, which has its tasks run elsewhere.
                from scoop._slot import read_running  # scoop is there: _check imported it

                slot = os.path.join(slots, f"running-{index}")
                _reply({"exit": index, "code": code, "running": read_running(slot)})
    for popen in workers.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=STOP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
    if trace_dir:
        _send_traces(trace_dir)
    if failed:
        return 1
    return root_code if root_code is not None else 0


def _send_traces(directory: str) -> None:
    """Send the launcher what this host's workers recorded (scoop._trace), then forget it."""
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            # In pieces: the launcher reads the agent's lines up to a bounded length.
            with contextlib.suppress(OSError):
                for at in range(0, len(text), TRACE_PIECE):
                    _reply({"trace_part": text[at : at + TRACE_PIECE]})
                _reply({"trace_end": True})
    shutil.rmtree(directory, ignore_errors=True)


def _stop(workers: dict[int, subprocess.Popen[bytes]]) -> None:
    # SIGKILL: a worker takes SIGTERM as a request to leave the run cleanly, finishing its
    # tasks first, and the run is over here.
    for popen in workers.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
