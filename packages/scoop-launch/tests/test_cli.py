"""The launcher's command line: usage errors and --dry-run placement (no process is started)."""

import os
import subprocess
import sys

import pytest

SCRIPT_TEXT = "print('never run')\n"


def launcher(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scoop_launch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(SCRIPT_TEXT)
    return str(path)


def placement(output):
    rows = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].isdigit() and parts[3] in ("local", "ssh"):
            rows.append((parts[0], int(parts[1])))
    return rows


@pytest.mark.parametrize(
    ("hostfile", "n", "expected"),
    [
        ("a 2\nb 2\n", None, [("a", 2), ("b", 2)]),
        ("a 1\nb 1\n", "3", [("a", 2), ("b", 1)]),  # the original's documented example
        ("a 4\nb 4\nc 2\n", "13", [("a", 5), ("b", 5), ("c", 3)]),
        ("a 4\nb 4\nc 2\n", "5", [("a", 4), ("b", 1)]),
        ("# comment\n\na 2 # two\n[::1] 1\n", None, [("a", 2), ("::1", 1)]),
    ],
)
def test_dry_run_shows_the_placement(tmp_path, script, hostfile, n, expected):
    hosts = tmp_path / "hosts"
    hosts.write_text(hostfile)
    args = ["--hostfile", str(hosts), "--dry-run", *(["-n", n] if n else []), script]
    result = launcher(*args)
    assert result.returncode == 0, result.stderr
    assert placement(result.stdout) == expected
    assert "root: worker 0" in result.stdout.splitlines()[2]
    assert "never run" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "needs at least 1 worker"),
        (["-n", "many"], "expected a whole number"),
        (["-n", "1000000"], "more than 65536 workers"),
        (["--hosts", "a", "--hostfile", "HOSTS"], "cannot be used together"),
        (["--hostfile", "HOSTS"], "line 2: the worker count 'four'"),
        (["--hostfile", "/nonexistent/hosts"], "does not exist"),
        (["--transport", "carrier-pigeon"], "is not installed (installed: "),
        (["--transport", "nng-missing"], "install the package that provides"),
        (["--heartbeat-timeout", "-1"], "expected 0 or more seconds, got -1"),
        (["--heartbeat-timeout", "soon"], "expected a number of seconds"),
        (["--max-task-deaths", "0"], "expected at least 1, got 0"),
        (["--add-workers", "2"], "--add-workers runs the script of the run it joins"),
        (["--add-workers", "2", "-n", "3"], "--add-workers runs the script of the run"),
    ],
)
def test_usage_errors_exit_2_and_say_why(tmp_path, script, args, message):
    hosts = tmp_path / "HOSTS"
    hosts.write_text("node1 4\nnode2 four\n")
    args = [str(hosts) if a == "HOSTS" else a for a in args]
    result = launcher(*args, script)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    # What is wrong comes first, not after a screen of usage.
    lines = result.stderr.splitlines()
    assert lines[0].startswith("python -m scoop_launch: error: "), result.stderr
    assert len(lines) <= 2, result.stderr


def test_missing_script_is_a_usage_error(tmp_path):
    result = launcher(str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_list_transports_names_distribution_and_schemes():
    result = launcher("--list-transports")
    assert result.returncode == 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("zmq "))
    assert "scoop-zmq" in line and "tcp" in line


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["--hosts", "a", "b", "SCRIPT", "--gen", "5"], ["--hosts", "a", "b", "--", "SCRIPT"]),
        (["--hosts", "a", "-n", "2", "SCRIPT", "-q"], ["--hosts", "a", "-n", "2", "SCRIPT"]),
        (["-n", "2", "SCRIPT", "--hosts", "x"], ["-n", "2", "SCRIPT", "--hosts", "x"]),
        (["--hosts", "a", "--", "SCRIPT", "-v"], ["--hosts", "a", "--", "SCRIPT", "-v"]),
    ],
)
def test_hosts_end_where_the_script_starts(script, before, after):
    from scoop_launch._cli import _end_hosts_at_the_script

    argv = [script if a == "SCRIPT" else a for a in before]
    expected = [script if a == "SCRIPT" else a for a in after]
    assert _end_hosts_at_the_script(argv)[: len(expected)] == expected


def test_script_options_after_hosts_are_the_scripts(tmp_path):
    job = tmp_path / "job.py"
    job.write_text("import sys\nif __name__ == '__main__':\n    print('ARGS', sys.argv[1:])\n")
    result = launcher("--hosts", "localhost", str(job), "--generations", "50", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert "ARGS ['--generations', '50', '-n', '3']" in result.stdout


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("0:0::1", True),
        ("[::1]", True),
        ("10.1.2.3", False),
        ("node01", False),
    ],
)
def test_loopback_addresses_are_this_machine(host, local):
    from scoop_launch._processes import is_local

    assert is_local(host) is local


def test_adding_workers_with_no_run_going_on_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scoop_launch", "--add-workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SCOOP_RUNS_DIR": str(tmp_path / "runs")},
    )
    assert result.returncode == 1, result.stderr
    assert "no SCOOP run is going on" in result.stderr, result.stderr


def test_adding_workers_to_a_run_that_is_not_there_lists_those_that_are(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scoop_launch", "--add-workers", "1", "--run", "nowhere-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SCOOP_RUNS_DIR": str(tmp_path / "runs")},
    )
    assert result.returncode == 1, result.stderr
    assert "no run 'nowhere-1'" in result.stderr and "runs going on: none" in result.stderr


def test_python_m_scoop_is_the_launcher(script):
    # The original SCOOP's command, in every existing batch script and tutorial.
    done = subprocess.run(
        [sys.executable, "-m", "scoop", "-n", "3", "--dry-run", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert placement(done.stdout) == [("localhost", 3)], done.stdout


def test_debug_on_a_dry_run_writes_nothing(script, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = launcher("--debug", "--dry-run", "-n", "1", script, cwd=work)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == [], "a dry run made the --debug directory"


def test_a_trace_file_that_cannot_be_written_is_a_usage_error(script, tmp_path):
    result = launcher("--trace", str(tmp_path / "no" / "such" / "dir" / "t.json"), script)
    assert result.returncode == 2, result.stderr
    assert "(--trace)" in result.stderr.splitlines()[0], result.stderr


def test_the_agent_module_starts_without_a_runtime_warning():
    # runpy warns when importing the package has already imported the module it is to run.
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "scoop_launch._agent"],
        input='{"versions": {}, "transport": "zmq", "script": "", "script_base64": ""}\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "RuntimeWarning" not in result.stderr, result.stderr
    assert result.stdout.startswith('SCOOP-AGENT {"error": "version mismatch'), result.stdout
