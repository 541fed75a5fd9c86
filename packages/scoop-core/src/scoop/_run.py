"""Process entry points the launcher starts: ``python -m scoop._run broker|worker``.

Nothing secret is on the command line. Each process reads JSON lines on its standard input:

* broker: one line ``{"secret", "transport", "host", "port", "log_level", "heartbeat_timeout",
  "max_task_deaths"}``, then reports of the launcher, one per line: ``{"gone": index, "reason":
  text, "running": task id}`` when a worker's process ended (or its host was lost). It prints
  ``{"address": ...}`` on its standard output once it is bound, ``{"lost": index}`` when it takes
  a worker for lost (the launcher stops that process if it still runs), and ``{"ending": code}``
  when the run ends, before it tells the workers.
* worker: line 1 ``{"secret", "transport", "index", "size", "root", "script", "args",
  "log_level", "parent_pid", "heartbeat_interval", "running_slot", "supervisor"}`` (given at
  start, so the script is imported while the broker starts; "supervisor" for a worker added to a
  running run, see scoop._supervisor), then line 2 ``{"address": ...}`` once the broker is bound.
  The root's standard input then carries the launcher's own, as the script's ``sys.stdin``.

Exit codes: a worker returns the root script's code (root) or 0; 3 means the worker could not
start (its message on stderr says why).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
import traceback
import types
from typing import TYPE_CHECKING, Any

import scoop
from scoop import _plugins, _rootstart
from scoop._protocol import local_versions, run_codec
from scoop._rootstart import read_line
from scoop.errors import ScoopError
from scoop.transport import BindOptions, ConnectOptions

if TYPE_CHECKING:
    from scoop._broker import Broker
    from scoop._trace import Recorder

# Each role imports only its own modules, in its main function: every process of a run starts
# while the others do, on the same cores, so what one imports for nothing delays them all (the
# broker has no use for greenlet, cloudpickle or the scheduler; a worker none for the broker's).

#: Exit code of a worker or broker that could not start.
STARTUP_FAILED = 3

_LOG_FORMAT = "[%(asctime)s] %(levelname)-7s %(name)s %(processName)s: %(message)s"


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to end this process when its parent (the launcher) dies.

    The request only covers a death after it is made: a launcher killed while this process was
    still starting (Python, imports) is caught by checking that the parent is still ours.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the idle loop's parent check still ends us
    if os.getppid() != parent_pid:
        os._exit(STARTUP_FAILED)  # nothing of ours to clean up yet


def _setup_logging(config: dict[str, Any], name: str) -> None:
    """Set up logging at the launcher's verbosity.

    The log goes to the launcher's ``--log`` file (appended to: every process of the run shares
    it), else to stderr.
    """
    import multiprocessing

    multiprocessing.current_process().name = name
    level = config.get("log_level", "WARNING")
    log_file = config.get("log_file")
    if log_file:
        try:
            logging.basicConfig(level=level, format=_LOG_FORMAT, filename=log_file)
            return
        except OSError as exc:  # e.g. its directory does not exist on this (remote) host
            print(
                f"scoop: {name} on host {socket.gethostname()} cannot write the log file "
                f"{log_file!r} ({exc.strerror}); logging to stderr",
                file=sys.stderr,
            )
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)


def _announce_ending(code: int) -> None:
    # Tells the launcher, before any worker is told, that workers may now exit with 0.
    _tell_launcher({"ending": code})


def _tell_launcher(message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the launcher may be gone
        print(json.dumps(message), flush=True)


def _read_reports(broker: Broker) -> None:
    # The launcher's reports on the broker's standard input, until it closes it.
    for line in sys.stdin:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            broker.reports.put(report)


def broker_main() -> int:
    """Run the broker of one run."""
    from scoop._broker import Broker
    from scoop._membership import HEARTBEAT_TIMEOUT, MAX_TASK_DEATHS, Membership
    from scoop._trace import Recorder

    config = read_line("the configuration")
    _setup_logging(config, "broker")
    parent_pid = config.get("parent_pid")
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    transport = _plugins.load_transport(config["transport"], config.get("transport_module"))
    endpoint = transport.bind(
        BindOptions(host=config.get("host", "127.0.0.1"), port=int(config.get("port", 0)))
    )
    print(json.dumps({"address": endpoint.address}), flush=True)
    broker = Broker(
        endpoint,
        run_codec(config),
        transport.name,
        size=int(config.get("size", 0)),
        parent_pid=parent_pid,
        on_ending=_announce_ending,
        members=Membership(
            float(config.get("heartbeat_timeout", HEARTBEAT_TIMEOUT)),
            int(config.get("max_task_deaths", MAX_TASK_DEATHS)),
        ),
        on_lost=lambda index: _tell_launcher({"lost": index}),
    )
    trace_dir = str(config.get("trace_dir") or "")
    if trace_dir:
        broker.trace = Recorder("broker", 0, detail=bool(config.get("trace_detail", True)))
    if config.get("progress"):  # the run's totals on our stdout, for the launcher's display
        broker.on_progress = lambda totals: _tell_launcher({"progress": totals})
    threading.Thread(target=_read_reports, args=(broker,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: broker.request_termination(143))
    try:
        broker.serve()
    finally:
        endpoint.close()
        if broker.trace is not None:
            _write_trace(broker.trace, trace_dir)
    if broker.dropped:
        logging.getLogger("scoop.broker").warning(
            "broker dropped %d messages that failed to decode or authenticate", broker.dropped
        )
    return 0


def worker_main() -> int:
    """Run one worker (the root when the configuration says so)."""
    from scoop import _runtime, _script
    from scoop._comm import SWITCH_INTERVAL
    from scoop._trace import Recorder
    from scoop._worker import WorkerScheduler

    try:
        config = read_line("the configuration")
    except ScoopError:
        # Started ahead by the launcher (scoop_launch._prestart), which ended or had no use for
        # this process: nothing ran here, nothing to say.
        return STARTUP_FAILED
    index = int(config["index"])
    hostname = socket.gethostname()
    _setup_logging(config, f"worker-{index}")
    parent_pid = config.get("parent_pid")
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    is_root = bool(config.get("root"))
    control = sys.stdin  # the launcher's lines
    if not is_root:
        # Neither the script, which this worker imports, nor a task may read the launcher's
        # lines (a top-level input() took the broker's address): only the root gets input.
        sys.stdin = open(os.devnull)  # noqa: SIM115 - open for the life of the process
    scoop.IS_RUNNING = True
    scoop.IS_ORIGIN = is_root
    scoop.SIZE = int(config["size"])
    scoop.worker = (hostname, index)
    scoop.DEBUG = bool(config.get("debug"))
    try:
        transport = _plugins.load_transport(config["transport"], config.get("transport_module"))
    except ScoopError as exc:
        print(f"scoop: worker {index} on host {hostname}: {exc}", file=sys.stderr)
        return STARTUP_FAILED
    script = config["script"]
    if script:
        loaded = _load_script(script, config, index, hostname, is_root)
        if isinstance(loaded, int):
            return loaded
        module, code = loaded
    else:  # an Executor's worker: no script, the client's functions travel by value
        _script.blank_main(config.get("path", []))
    endpoint = None
    if not is_root:  # the root connects while its script runs (see scoop._rootstart)
        address = scoop.BROKER_ADDRESS = read_line("the broker's address", control)["address"]
        control.close()
        endpoint = transport.connect(ConnectOptions(address=address))
    scheduler = WorkerScheduler(
        endpoint,
        run_codec(config, index),
        index,
        int(config["size"]),
        hostname=hostname,
        parent_pid=parent_pid,
        heartbeat_interval=float(config.get("heartbeat_interval", 0.0)),
        running_slot=config.get("running_slot"),
        runs_tasks=bool(config.get("runs_tasks", True)),
    )
    trace_dir = str(config.get("trace_dir") or "")
    if trace_dir:
        scheduler.trace = Recorder("worker", index, detail=bool(config.get("trace_detail", True)))
        scheduler.trace_dir = trace_dir
    if config.get("progress"):
        scheduler.comm.progress = (-1, -1, -1)  # not None: send its counts from now
    _runtime.install(scheduler)
    # The communication thread must get the GIL soon while a task runs (see SWITCH_INTERVAL).
    sys.setswitchinterval(SWITCH_INTERVAL)
    versions = local_versions(transport.name)
    if config.get("supervisor") is not None:  # added to a running run (--add-workers)
        versions["supervisor"] = int(config["supervisor"])

    def join_failed(exc: BaseException) -> None:
        print(
            f"scoop: worker {index} on host {hostname} could not join the run: {exc}",
            file=sys.stderr,
        )

    if is_root:
        _rootstart.join_while_running(scheduler, transport, versions, join_failed, STARTUP_FAILED)
    else:
        assert endpoint is not None
        try:
            scheduler.join(versions)
        except ScoopError as exc:
            join_failed(exc)
            endpoint.close()
            return STARTUP_FAILED
    try:
        if is_root:
            code_ = scheduler.run_root(lambda: exec(code, module.__dict__))
        else:
            # SIGTERM (a cluster's preemption notice, or the user) asks the worker to leave the
            # run cleanly; a second one ends it at once.
            signal.signal(signal.SIGTERM, lambda *_: scheduler.leave())
            scheduler.serve()
            code_ = 0
    finally:
        scheduler.close()
        if scheduler.trace is not None:
            _write_trace(scheduler.trace, trace_dir)
    return code_


def _write_trace(recorder: Recorder, directory: str) -> None:
    try:
        recorder.write(directory)
    except OSError as exc:  # the run's result matters more than its trace
        print(f"scoop: the trace of this process was lost: {exc}", file=sys.stderr)


def _load_script(
    script: str, config: dict[str, Any], index: int, hostname: str, is_root: bool
) -> tuple[types.ModuleType, types.CodeType] | int:
    """Prepare the user's script: the root's ``__main__``, imported on other workers.

    Returns the module and the script's code, or the exit code of a worker that cannot start.
    """
    from scoop import _runtime, _script, _serialize

    _script.prepare(script, list(config.get("args", [])))
    try:
        source, code = _script.read_script(script)
    except (OSError, SyntaxError, ValueError) as exc:  # e.g. changed since the launcher read it
        print(f"scoop: worker {index} on host {hostname} cannot read {script}:", file=sys.stderr)
        print("".join(traceback.format_exception_only(exc)), end="", file=sys.stderr)
        return STARTUP_FAILED
    _serialize.main_only_names = _script.names_only_under_main_guard(source)
    if is_root:
        module = _script.new_module(script, "__main__")
    else:
        # Import the script as a module so that its functions and classes exist here.
        module = _script.new_module(script, _script.WORKER_MODULE_NAME)
        _runtime.install(_runtime.ImportingScript(script, index))  # type: ignore[arg-type]
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            # One line: every worker imports the script, and the root, which runs it, prints
            # the whole traceback of the same failure; n copies would bury it.
            hint = (
                " (workers import the script without its `if __name__ == '__main__':` block, "
                "and only the root reads standard input: put the code that reads it there)"
                if isinstance(exc, EOFError)
                else ""
            )
            print(
                f"scoop: worker {index} on host {hostname} could not import {script}"
                f"{_failing_line(exc, script)}: "
                f"{''.join(traceback.format_exception_only(exc)).strip()}{hint}",
                file=sys.stderr,
            )
            return STARTUP_FAILED
        except SystemExit as exc:
            print(
                f"scoop: worker {index} on host {hostname}: {script} called sys.exit({exc.code!r})"
                " while the worker imported it; code that ends the program belongs under "
                "`if __name__ == '__main__':`",
                file=sys.stderr,
            )
            return STARTUP_FAILED
        finally:
            _runtime.install(None)
    return module, code


def _failing_line(exc: BaseException, script: str) -> str:
    """`` (line N)``: the script's line where ``exc`` was raised, if it is the script's."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
    if not frames:
        return ""
    return f" (line {frames[-1].lineno})"


def _line_buffered_output() -> None:
    # Each line of the user's output leaves in one write: lines from several workers sharing the
    # launcher's terminal or pipe never mix mid-line (unbuffered output, as PYTHONUNBUFFERED or
    # -u give, writes the newline apart), and a line shows as soon as it is complete.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]


def main() -> None:
    """Dispatch on the role given as the first argument."""
    _line_buffered_output()
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "broker":
        code = broker_main()
    elif role == "worker":
        code = worker_main()
    else:
        print(
            "usage: python -m scoop._run broker|worker (started by scoop_launch)", file=sys.stderr
        )
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
