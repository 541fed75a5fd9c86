"""scoop.Executor when processes die: a lost worker's task runs again; a dead broker ends it."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _checks import check, raises, run_checks

import scoop
from scoop.errors import ExecutorBrokenError


def started_then_sleep(directory, seconds):
    """Say which process started (a file named by its pid), then sleep."""
    with open(os.path.join(directory, str(os.getpid())), "w"):
        pass
    time.sleep(seconds)
    return os.getpid()


def wait_for_file(directory, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = os.listdir(directory)
        if names:
            return int(names[0])
        time.sleep(0.01)
    raise AssertionError("the task never started")


def ended(process):
    return process.popen.poll() is not None


@check
def a_killed_workers_task_runs_again_elsewhere():
    directory = tempfile.mkdtemp()
    with scoop.Executor(2) as executor:
        fut = executor.submit(started_then_sleep, directory, 0.5)
        first = wait_for_file(directory)
        os.kill(first, signal.SIGKILL)
        again = fut.result(60)
        assert again != first, "the result came from the killed worker"
        assert executor.submit(abs, -4).result(30) == 4  # the Executor goes on


@check
def a_dead_broker_ends_the_executor_with_a_clear_error():
    directory = tempfile.mkdtemp()
    executor = scoop.Executor(1)
    fut = executor.submit(started_then_sleep, directory, 30)
    wait_for_file(directory)
    os.kill(executor._run.session.broker.popen.pid, signal.SIGKILL)
    exc = raises(ExecutorBrokenError, lambda: fut.result(30))
    assert "broker" in str(exc), exc
    raises(ExecutorBrokenError, lambda: executor.submit(abs, 1))  # a broken Executor takes none
    executor.shutdown()
    assert all(ended(p) for p in executor._run.session.local)


@check
def a_broker_ending_the_run_fails_what_is_pending_even_submits_on_the_way():
    executor = scoop.Executor(1)
    submitted = []
    stop = threading.Event()

    def submit_without_pause():
        while not stop.is_set():
            try:
                submitted.append(executor.submit(time.sleep, 0.01))
            except (ExecutorBrokenError, RuntimeError):
                return

    thread = threading.Thread(target=submit_without_pause)
    thread.start()
    while len(submitted) < 50:
        time.sleep(0.01)
    os.kill(executor._run.session.broker.popen.pid, signal.SIGTERM)
    thread.join(30)
    stop.set()
    executor.shutdown()
    assert "broken" in repr(executor), executor
    assert all(f.done() for f in submitted), "futures left pending"
    assert all(ended(p) for p in executor._run.session.local)


def die():
    os._exit(1)


@check
def an_executor_that_lost_every_worker_says_so():
    start = time.monotonic()
    with scoop.Executor(1) as executor:
        fut = executor.submit(die)
        exc = raises(ExecutorBrokenError, lambda: fut.result(60))
        assert "every worker" in str(exc), exc
    assert time.monotonic() - start < 30


@check
def shutdown_without_waiting_then_the_end_of_the_program_lets_tasks_finish():
    directory = tempfile.mkdtemp()
    program = (
        "import os, sys, time, scoop\n"
        "def write(directory, name):\n"
        "    time.sleep(0.2)\n"
        "    open(os.path.join(directory, str(name)), 'w').close()\n"
        "executor = scoop.Executor(2)\n"
        "for i in range(4):\n"
        "    executor.submit(write, sys.argv[1], i)\n"
        "executor.shutdown(wait=False)\n"
    )
    subprocess.run([sys.executable, "-c", program, directory], timeout=60, check=True)
    assert sorted(os.listdir(directory)) == ["0", "1", "2", "3"]


if __name__ == "__main__":
    run_checks(wait_for_workers=False)
