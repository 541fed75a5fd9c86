"""The launcher's lifecycle end to end: exit codes, tracebacks, usage errors, worker output,
signals, and that no process of a run is left behind whatever way it ended."""

from __future__ import annotations

import glob
import os
import re
import signal
import tempfile
import time
from pathlib import Path

import pytest
from scoop_e2e_support import (
    EXAMPLES,
    SCRIPTS,
    describe_processes,
    processes_with_marker,
    run_launcher,
    wait_until,
)

SCRIPTS_DIR = SCRIPTS


def assert_nothing_left(result_or_started) -> None:
    # The launcher has exited and reaped its children: nothing with the run's marker may live.
    left = result_or_started.leftover()
    assert not left, f"processes of the run left behind: {left}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("arg", "code"), [("3", 3), ("0", 0), ("none", 0), ("42", 42)])
def test_exit_code_is_the_scripts(arg: str, code: int) -> None:
    result = run_launcher(SCRIPTS_DIR / "exit_with.py", arg, n=2)
    assert result.returncode == code, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert "SystemExit" not in result.stderr, result.explain()
    assert_nothing_left(result)


@pytest.mark.timeout(60)
def test_exit_with_a_message_prints_it_and_exits_1() -> None:
    result = run_launcher(SCRIPTS_DIR / "exit_with.py", "msg", "goodbye from the script", n=1)
    assert result.returncode == 1, result.explain()
    assert "goodbye from the script" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_worker_output_reaches_the_user() -> None:
    result = run_launcher(SCRIPTS_DIR / "exit_with.py", "0", n=3)
    assert result.returncode == 0, result.explain()
    for index in (1, 2):
        assert f"worker {index} imported the script" in result.stdout, result.explain()
        assert f"worker {index} writes to stderr" in result.stderr, result.explain()
    for i in range(3):
        assert re.search(rf"^task {i} printed on worker \d$", result.stdout, re.M), result.explain()


@pytest.mark.timeout(60)
def test_uncaught_exception_in_the_root_prints_traceback_and_exits_1() -> None:
    result = run_launcher(SCRIPTS_DIR / "raise_uncaught.py", "local", n=2)
    assert result.returncode == 1, result.explain()
    assert "Traceback (most recent call last)" in result.stderr
    assert "local_boom_function" in result.stderr
    assert "RuntimeError: the root script failed" in result.stderr
    assert_nothing_left(result)


@pytest.mark.timeout(60)
def test_uncaught_remote_exception_prints_remote_frames_and_exits_1() -> None:
    result = run_launcher(SCRIPTS_DIR / "raise_uncaught.py", "remote", n=4)
    assert result.returncode == 1, result.explain()
    err = result.stderr
    assert "Traceback (most recent call last)" in err, result.explain()
    assert "remote_boom_function" in err, result.explain()
    assert re.search(r"^ValueError: boom number \d+ on worker \d$", err, re.M), result.explain()
    if "remote failures: 0" not in result.stdout:  # one came from another worker
        assert "RemoteTraceback" in err, result.explain()
        assert "The above exception was the direct cause" in err
        remote_part = err.split("The above exception was the direct cause")[0]
        assert "remote_boom_function" in remote_part
        assert re.search(r"raised in a task on worker [1-3] on host ", err), result.explain()
    assert_nothing_left(result)


@pytest.mark.timeout(60)
def test_missing_script_is_a_usage_error() -> None:
    result = run_launcher(SCRIPTS_DIR / "no_such_script.py", n=1)
    assert result.returncode == 2, result.explain()
    assert "no_such_script.py" in result.stderr and "not found" in result.stderr
    result = run_launcher("", n=1)
    assert result.returncode == 2, result.explain()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module", ["scoop_launch", "scoop"])  # the original's command too
@pytest.mark.parametrize("options", [["--heartbeat-timeout", "-1"], ["--hosts", "[::1"]])
def test_a_usage_error_leaves_no_process_behind(tmp_path, options, module) -> None:
    # The root's process starts before the options are read through (scoop_launch._prestart).
    # Output to a file, not a pipe: waiting for a pipe's end would wait for that process too.
    import subprocess

    from scoop_e2e_support import kill_marked, launcher_command, marked_env, new_marker

    marker = new_marker()
    command = launcher_command(SCRIPTS_DIR / "exit_with.py", "0", n=1, options=options)
    command[2] = module
    with open(tmp_path / "output", "wb") as output:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=marked_env(marker),
            timeout=30,
            check=False,
        )
    try:
        left = processes_with_marker(marker)
    finally:
        kill_marked(marker)
    assert done.returncode == 2, (tmp_path / "output").read_text()
    assert not left, describe_processes(left)


@pytest.mark.timeout(60)
def test_no_script_is_a_usage_error() -> None:
    import subprocess
    import sys

    from scoop_e2e_support import launcher_command

    cmd = launcher_command("", n=1)[:-1]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2, proc
    assert "script" in proc.stderr and sys.executable


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", ["0", "-1", "abc"])
def test_bad_worker_count_is_a_usage_error(bad: str) -> None:
    import subprocess

    from scoop_e2e_support import launcher_command

    cmd = launcher_command(SCRIPTS_DIR / "exit_with.py", "0", n=None)
    cmd[3:3] = ["-n", bad]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2, proc
    assert "-n" in proc.stderr or "workers" in proc.stderr, proc.stderr
    assert bad in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (b"def f(:\n    pass\n", "SyntaxError: invalid syntax"),
        (b'x = "\xff\xfe"\n', "can't decode byte 0xff"),
        (b"x = 1\x00\n", "null bytes"),
    ],
    ids=["syntax", "not-utf8", "null-byte"],
)
def test_script_that_does_not_compile_fails_before_anything_starts(
    tmp_path, source: bytes, expected: str
) -> None:
    script = tmp_path / "broken.py"
    script.write_bytes(source)
    result = run_launcher(script, n=2)
    assert result.returncode == 1, result.explain()
    assert f"scoop: script {str(script)!r} does not compile" in result.stderr, result.explain()
    assert expected in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert_nothing_left(result)


@pytest.mark.timeout(60)
def test_script_declaring_another_encoding_runs(tmp_path) -> None:
    script = tmp_path / "latin1.py"
    script.write_bytes(
        b"# -*- coding: latin-1 -*-\nfrom scoop import futures\n"
        b"def cafe(n):\n    return 'caf\xe9' * n\n"
        b"if __name__ == '__main__':\n    print(list(futures.map(cafe, range(3))))\n"
    )
    result = run_launcher(script, n=2)
    assert result.returncode == 0, result.explain()
    assert "['', 'café', 'cafécafé']" in result.stdout, result.explain()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
def test_unwritable_log_file_is_a_usage_error(tmp_path, where: str) -> None:
    log = tmp_path / "no" / "such" / "dir" / "run.log" if where == "missing-dir" else tmp_path
    result = run_launcher(SCRIPTS_DIR / "exit_with.py", "0", n=2, options=["--log", str(log)])
    assert result.returncode == 2, result.explain()
    assert f"cannot write the log file {str(log)!r} (--log)" in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert_nothing_left(result)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_launcher_stops_the_whole_run(start_launcher, signum, code) -> None:
    run = start_launcher(SCRIPTS_DIR / "run_until_killed.py", n=3)
    run.wait_for_line("started")
    assert len(run.leftover()) >= 4  # the launcher, the broker and three workers
    run.proc.send_signal(signum)
    returncode, out, err = run.finish(timeout=30)
    assert returncode == code, (returncode, out, err)
    assert "was not stopped" not in out
    assert_nothing_left(run)


@pytest.mark.timeout(90)
def test_ctrl_c_pressed_twice_still_cleans_up(start_launcher) -> None:
    # Workers that ignore SIGTERM keep the launcher in its clean-up (grace period, then SIGKILL)
    # long enough for the second Ctrl-C to land there.
    run = start_launcher(SCRIPTS_DIR / "run_until_killed.py", "ignore-sigterm", n=3)
    run.wait_for_line("started")
    run.proc.send_signal(signal.SIGINT)
    run.wait_for_line("stopping the run", stream="stderr")
    run.proc.send_signal(signal.SIGINT)  # while the launcher is stopping its processes
    returncode, out, err = run.finish(timeout=30)
    assert returncode == 130, (returncode, out, err)
    assert "Traceback" not in err, err
    assert_nothing_left(run)


@pytest.mark.timeout(90)
def test_a_killed_root_ends_the_run_at_once_naming_it(start_launcher) -> None:
    run = start_launcher(SCRIPTS_DIR / "run_until_killed.py", n=3)
    root_pid = int(run.wait_for_line("started")[-1].split()[-1])
    started = time.monotonic()
    os.kill(root_pid, signal.SIGKILL)
    returncode, _, err = run.finish(timeout=30)
    assert returncode == 128 + signal.SIGKILL, (returncode, err)
    assert "the root worker (0) was killed by signal 9" in err, err
    # The others are told to stop at once, not after the grace period of a normal end.
    from scoop_launch._lifecycle import GRACE_SECONDS

    assert time.monotonic() - started < GRACE_SECONDS, time.monotonic() - started
    assert_nothing_left(run)


@pytest.mark.timeout(90)
def test_a_killed_broker_ends_the_run_at_once_naming_it(start_launcher) -> None:
    # The broker is a single point of the run, like the root: no worker can go on without it.
    run = start_launcher(SCRIPTS_DIR / "run_until_killed.py", n=3)
    run.wait_for_line("started")
    (broker,) = [
        pid
        for pid in run.leftover()
        if b"scoop._run\0broker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    started = time.monotonic()
    os.kill(broker, signal.SIGKILL)
    returncode, _, err = run.finish(timeout=30)
    assert returncode == 1, (returncode, err)
    assert "the broker was killed by signal 9 before the root finished" in err, err
    from scoop_launch._lifecycle import GRACE_SECONDS

    assert time.monotonic() - started < GRACE_SECONDS, time.monotonic() - started
    assert_nothing_left(run)


@pytest.mark.timeout(90)
def test_killed_launcher_takes_its_workers_along(start_launcher) -> None:
    owned = "/dev/shm/scoop-*", os.path.join(tempfile.gettempdir(), "scoop-run-*")
    before = {path for pattern in owned for path in glob.glob(pattern)}
    run = start_launcher(SCRIPTS_DIR / "run_until_killed.py", n=2)
    run.wait_for_line("started")
    # The run's directories: in shared memory (scoop._spill) and its run directory.
    made = {path for pattern in owned for path in glob.glob(pattern)} - before
    assert len(made) == 2, made
    run.proc.kill()
    run.proc.wait()
    # The broker and workers notice their parent's death (PR_SET_PDEATHSIG or the idle check).
    assert wait_until(lambda: not run.leftover(), timeout=15), describe_processes(run.leftover())
    # Nobody of the run was left to remove its directories: the next launcher does (their
    # locks died with the launcher).
    assert all(os.path.isdir(path) for path in made)
    after = run_launcher(SCRIPTS_DIR / "exit_with.py", "0", n=1)
    assert after.returncode == 0, after.explain()
    assert not any(os.path.exists(path) for path in made)


@pytest.mark.timeout(60)
def test_no_process_left_after_success_and_failure() -> None:
    ok = run_launcher(SCRIPTS_DIR / "exit_with.py", "0", n=4)
    assert ok.returncode == 0, ok.explain()
    assert_nothing_left(ok)
    bad = run_launcher(SCRIPTS_DIR / "raise_uncaught.py", "local", n=4)
    assert bad.returncode == 1, bad.explain()
    assert_nothing_left(bad)


# -- load balancing when the root joins after the other workers asked for work -----------------


@pytest.mark.timeout(90)
def test_worker_that_asked_before_the_root_joined_still_gets_work() -> None:
    env = {
        "SCOOP_TEST_DELAY_ROOT_JOIN": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(SCRIPTS_DIR / "delay_root_join"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = run_launcher(SCRIPTS_DIR / "spread_after_late_root.py", n=2, env=env)
    assert result.returncode == 0, result.explain()
    assert "workers used: [0, 1]" in result.stdout, result.explain()


@pytest.mark.timeout(60)
def test_workers_joining_after_the_root_ended_do_not_delay_the_end() -> None:
    start = time.monotonic()
    result = run_launcher(SCRIPTS_DIR / "late_workers.py", n=2)
    assert result.returncode == 0, result.explain()
    assert "root done" in result.stdout
    assert time.monotonic() - start < 20
    assert_nothing_left(result)


@pytest.mark.timeout(60)
def test_log_option_writes_every_process_log_to_the_file(tmp_path) -> None:
    log = tmp_path / "run.log"
    result = run_launcher(EXAMPLES / "hello_map.py", n=2, options=["-v", "--log", str(log)])
    assert result.returncode == 0, result.explain()
    text = log.read_text()
    assert "worker 0 joined" in text and "worker 1 joined" in text, text
    assert "joined" not in result.stderr  # the log went to the file, not to the terminal


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("9", "exited with code 9"),
        # Exit status 0 is also how workers end after the run: only the broker's announcement
        # of the end tells the two apart.
        ("0", "exited with code 0 before the run ended: did a task call os._exit?"),
    ],
)
def test_a_worker_that_dies_mid_run_is_named_and_the_run_goes_on(status, reason) -> None:
    # Every task ends the process of the worker other than the root that runs it: that worker
    # is lost, its tasks run again, and the root finishes alone.
    result = run_launcher(SCRIPTS / "worker_dies.py", status, n=2)
    assert result.returncode == 0, result.explain()
    assert result.stdout.splitlines()[-1] == str(sum(range(200))), result.explain()
    assert re.search(rf"worker 1 on host \S+ lost \({re.escape(reason)}\)", result.stderr), (
        result.explain()
    )
    assert "no worker is left but the root; it goes on alone" in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert not result.leftover(), result.leftover()


@pytest.mark.timeout(60)
def test_sys_exit_while_a_worker_imports_the_script_is_named(tmp_path) -> None:
    script = tmp_path / "exits_on_import.py"
    script.write_text(
        "import sys\nimport scoop\nif not scoop.IS_ORIGIN:\n    sys.exit(0)\n"
        "from scoop import futures\n"
        "if __name__ == '__main__':\n    print(list(futures.map(abs, [-1, -2])))\n"
    )
    result = run_launcher(script, n=2)
    assert result.returncode == 1, result.explain()
    assert "called sys.exit(0) while the worker imported it" in result.stderr, result.explain()
    assert not result.leftover(), result.leftover()


@pytest.mark.timeout(60)
def test_main_code_without_guard_is_refused_with_the_fix() -> None:
    result = run_launcher(SCRIPTS / "no_main_guard.py", n=2)
    assert result.returncode == 1, result.explain()
    assert "used the SCOOP API at import time" in result.stderr, result.explain()
    assert 'if __name__ == "__main__":' in result.stderr
    assert not result.leftover()
    alone = run_launcher(SCRIPTS / "no_main_guard.py", n=1)  # the root alone runs it as __main__
    assert alone.returncode == 0 and "285" in alone.stdout, alone.explain()


@pytest.mark.timeout(60)
def test_lines_printed_by_many_workers_at_once_stay_whole() -> None:
    result = run_launcher(SCRIPTS / "many_lines.py", n=4, env={"PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.explain()
    lines = [x for x in result.stdout.splitlines() if not x.startswith("workers")]
    whole = re.compile(r"^line \d+ of task \d+ on worker \d x{60}$")
    broken = [x for x in lines if not whole.match(x)]
    assert not broken and len(lines) == 40 * 50, broken[:5]


@pytest.mark.timeout(60)
def test_workers_busy_with_abandoned_tasks_are_stopped_and_the_run_succeeds() -> None:
    result = run_launcher(SCRIPTS / "abandon_busy_workers.py", n=2)
    assert result.returncode == 0, result.explain()
    assert re.search(r"abandoned [1-9]", result.stdout), result.explain()
    assert result.duration < 30, result.duration  # killed after the grace period, not 60 s
    assert not result.leftover()


@pytest.mark.timeout(60)
def test_ctrl_c_before_the_run_starts_prints_one_line_and_no_traceback(tmp_path) -> None:
    # The launcher waits on an ssh server that never answers (placement asks the host for its
    # CPU count); Ctrl-C then must end it quietly: nothing is running yet.
    import selectors
    import socket
    import subprocess
    import sys

    listener = socket.create_server(("127.0.0.1", 0))
    config = tmp_path / "ssh_config"
    config.write_text(f"Host silent\n  HostName 127.0.0.1\n  Port {listener.getsockname()[1]}\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("silent\n")  # no count: placement asks the host for its CPU count
    launcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "scoop_launch", "--ssh-config", str(config)),
            *("--hostfile", str(hosts), str(EXAMPLES / "hello_map.py")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            assert sel.select(timeout=30), "the launcher never tried to reach the host"
        connection, _ = listener.accept()  # it waits for the server's greeting now
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=20)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        listener.close()
    assert launcher.returncode == 130, err
    assert b"Traceback" not in err, err
    assert err.decode().strip().splitlines()[-1] == "scoop: SIGINT before the run started", err
    connection.close()


@pytest.mark.timeout(60)
def test_standard_input_reaches_the_script() -> None:
    # `cat data | python -m scoop_launch script.py`: the root reads what the launcher is fed.
    import subprocess
    import sys

    data = "".join(f"word{i} " * 10 + "\n" for i in range(5000))  # more than a pipe holds
    done = subprocess.run(
        [sys.executable, "-m", "scoop_launch", "-n", "2", str(SCRIPTS / "reads_stdin.py")],
        input=data.encode(),
        capture_output=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    letters = sum(len(word) for word in data.split())
    expected = f"READ {len(data)} bytes, {len(data.split())} words, {letters} letters"
    assert done.stdout.decode().strip() == expected, done.stdout + done.stderr


@pytest.mark.timeout(60)
def test_input_read_outside_the_main_guard_is_named_not_taken_from_the_launcher(tmp_path) -> None:
    # Other workers import the script: its top-level input() read the launcher's line with the
    # broker's address there, and the worker died of a missing address.
    import subprocess
    import sys

    script = tmp_path / "top_level_input.py"
    script.write_text("from scoop import futures\nprint('GOT', input())\n")
    done = subprocess.run(
        [sys.executable, "-m", "scoop_launch", "-n", "2", str(script)],
        input=b"hello\n",
        capture_output=True,
        timeout=50,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 1, out + err
    assert out.splitlines() == ["GOT hello"], out + err  # the root's, and no one else's
    assert "address" not in out + err.replace("could not import", ""), out + err
    assert "worker 1 on host" in err and "(line 2): EOFError" in err, err
    assert "`if __name__ == '__main__':`" in err, err


@pytest.mark.timeout(60)
def test_a_script_that_fails_to_import_shows_its_traceback_once(tmp_path) -> None:
    # Every worker imports the script; the error must not come once per worker, interleaved.
    script = tmp_path / "bad_import.py"
    script.write_text(
        "import not_a_module_anywhere_xyz\n"
        "from scoop import futures\n"
        "if __name__ == '__main__':\n    print('never')\n"
    )
    result = run_launcher(script, n=4)
    assert result.returncode == 1, result.explain()
    assert result.stderr.count("Traceback") == 1, result.stderr
    assert result.stderr.count("No module named 'not_a_module_anywhere_xyz'") >= 1
    for line in result.stderr.splitlines():
        if "could not import" in line:  # one line each, naming the line and the error
            assert "(line 1): ModuleNotFoundError: No module named" in line, line
    assert not result.leftover(), result.leftover()
