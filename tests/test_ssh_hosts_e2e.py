"""The launcher on real hosts: network namespaces, each with its own OpenSSH server.

Every test checks that nothing of the run is left on any host afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from scoop_e2e_support import ROOT, kill_marked, marked_env, new_marker, run_command, wait_until

SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT = SCRIPTS / "where_tasks_ran.py"
LOCAL = socket.gethostname()
SECRET_LIKE = re.compile(rb"[0-9a-f]{64}")


def launch(hosts, *options, mode=("where",), timeout=120, env=None, script=SCRIPT):
    """Run the launcher with the test hosts' ssh config; return the CompletedProcess."""
    marker = new_marker()
    cmd = [
        sys.executable,
        "-m",
        "scoop_launch",
        "--ssh-config",
        str(hosts.ssh_config),
        *options,
        str(script),
        *mode,
    ]
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=marked_env(marker, env),
            cwd=ROOT,
        )
    finally:
        kill_marked(marker)


def assert_nothing_left(hosts):
    left = hosts.leftover_processes(timeout=10)
    assert not left, f"processes left on the test hosts: {left}"


def hostfile(tmp_path, lines):
    path = tmp_path / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def where(result):
    line = next(x for x in result.stdout.splitlines() if x.startswith("WHERE "))
    return json.loads(line[len("WHERE ") :])


def dry_run_counts(output):
    counts = {}
    for line in output.splitlines():
        match = re.match(r"^(\S+)\s+(\d+)\s+\S+\s+(local|ssh)", line)
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.mark.timeout(180)
def test_hostfile_run_places_workers_as_dry_run_says(test_hosts, tmp_path):
    hosts_file = hostfile(
        tmp_path,
        [
            "# the launcher's machine first: it runs the root",
            "localhost 1",
            "h0 2",
            "h1",
            "h2 1   # trailing comment",
        ],
    )
    # h1 has no count: it gets its CPU count, asked over ssh; -n then overrides the counts.
    dry = launch(test_hosts, "--hostfile", hosts_file, "-n", "7", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = dry_run_counts(dry.stdout)
    assert sum(planned.values()) == 7 and next(iter(planned)) == "localhost", dry.stdout
    result = launch(test_hosts, "--hostfile", hosts_file, "-n", "7")
    assert result.returncode == 0, result.stdout + result.stderr
    report = where(result)
    assert report["root"] == LOCAL
    ran = {host: len(indices) for host, indices in report["hosts"].items()}
    expected = {LOCAL if h == "localhost" else h: c for h, c in planned.items()}
    assert ran == expected, (ran, expected)
    assert report["hosts"][LOCAL][0] == 0  # the root is worker 0, on the first host
    # The agent runs as python -m scoop_launch._agent: importing the package must not import it.
    assert "RuntimeWarning" not in result.stderr, result.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_tunnel_carries_workers_that_cannot_reach_the_broker(test_hosts):
    # With --tunnel the broker listens on 127.0.0.1 only, which the hosts cannot reach.
    result = launch(test_hosts, "--hosts", "localhost", "h0", "h1", "--tunnel")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(where(result)["hosts"]) == {LOCAL, "h0", "h1"}
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_root_on_a_remote_host_returns_its_exit_code(test_hosts):
    result = launch(test_hosts, "--hosts", "h1", "localhost", mode=("exit", "3"))
    assert result.returncode == 3, result.stdout + result.stderr
    raised = launch(test_hosts, "--hosts", "h2", "h0", mode=("raise",))
    assert raised.returncode == 1
    assert "RuntimeError: failing on purpose" in raised.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("host", "cause"),
    # An address nobody answers: the ssh timeout (3 s) or the kernel's failed ARP ("no route")
    # comes first, whichever it is; both say the host is not there, neither says "refused".
    [("down", r"connection refused"), ("unreachable", r"timed out connecting|no route to")],
    ids=["refused", "unreachable"],
)
def test_a_host_that_cannot_be_reached_fails_the_launch_cleanly(test_hosts, host, cause):
    result = launch(test_hosts, "--hosts", "localhost", "h0", host, "h1", "--ssh-timeout", "3")
    assert result.returncode == 1
    assert re.search(rf"host {host}: ({cause})", result.stderr), result.stderr
    assert "WHERE" not in result.stdout, "work started although a host failed"
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key_type", ["rsa-pem", "ed25519-openssh"])
def test_a_key_the_host_does_not_accept_is_named(test_hosts, tmp_path, key_type):
    stranger_key = tmp_path / "stranger_key"
    if key_type == "rsa-pem":
        import paramiko

        paramiko.RSAKey.generate(2048).write_private_key_file(str(stranger_key))
    else:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger_key)],
            check=True,
            timeout=30,
        )
    config = tmp_path / "ssh_config"
    lines = test_hosts.ssh_config.read_text().splitlines()
    config.write_text(
        "\n".join(
            f"    IdentityFile {stranger_key}" if line.strip().startswith("IdentityFile") else line
            for line in lines
        )
        + "\n"
    )
    env = {"SSH_AUTH_SOCK": ""}  # no agent: only the stranger's key is offered
    result = launch(test_hosts, "--ssh-config", str(config), "--hosts", "localhost", "h1", env=env)
    assert result.returncode == 1
    assert "host h1: authentication failed for root@" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "WHERE" not in result.stdout
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_wrong_host_key_is_refused(test_hosts):
    config = test_hosts.ssh_config_variant(wrong_key=["h1"])
    result = launch(test_hosts, "--ssh-config", str(config), "--hosts", "localhost", "h0", "h1")
    assert result.returncode == 1
    assert "host h1: its host key does not match" in result.stderr, result.stderr
    assert "WHERE" not in result.stdout
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_unknown_host_key_needs_the_explicit_flag(test_hosts):
    config = str(test_hosts.ssh_config_variant(missing=["h2"]))
    refused = launch(test_hosts, "--ssh-config", config, "--hosts", "localhost", "h2")
    assert refused.returncode == 1
    assert "host h2: its host key is unknown" in refused.stderr, refused.stderr
    accepted = launch(
        test_hosts,
        "--ssh-config",
        config,
        "--hosts",
        "localhost",
        "h2",
        "--ssh-accept-unknown-host-keys",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "h2" in where(accepted)["hosts"]
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_no_python_or_no_scoop_there_is_named(test_hosts):
    result = launch(
        test_hosts, "--hosts", "localhost", "h0", "--python-executable", "/nonexistent/python3"
    )
    assert result.returncode == 1
    assert "host h0: no Python at '/nonexistent/python3'" in result.stderr, result.stderr
    bare = launch(
        test_hosts,
        "--hosts",
        "localhost",
        "h0",
        "--python-executable",
        sys.base_prefix + "/bin/python3",
    )
    assert bare.returncode == 1
    assert "host h0: scoop is not installed" in bare.stderr, bare.stderr
    nowhere = launch(test_hosts, "--hosts", "localhost", "h0", "--path", "/no/such/dir")
    assert nowhere.returncode == 1
    assert "host h0: cannot use working directory '/no/such/dir'" in nowhere.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_every_worker_on_every_host(test_hosts, signum):
    with hanging_run(test_hosts, "--hosts", "localhost", "h0", "h0", "h1") as process:
        remote = {h: test_hosts.processes_in(h) for h in ("h0", "h1")}
        assert all(remote.values()), f"no workers seen on the hosts: {remote}"
        for pids in remote.values():  # the run's secret is on no command line
            for pid in pids:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                assert not SECRET_LIKE.search(cmdline), cmdline
        process.send_signal(signum)
        process.wait(timeout=60)
        assert process.returncode == 128 + signum
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_remote_options_reach_the_remote_workers(test_hosts, tmp_path):
    prolog = tmp_path / "prolog.sh"
    prolog.write_text("SCOOP_TEST_PROLOG=sourced\nexport SCOOP_TEST_PROLOG\n")
    workdir = tmp_path / "remote-cwd"
    workdir.mkdir()
    result = launch(
        test_hosts,
        "--hosts",
        "localhost",
        "h0",
        "--prolog",
        str(prolog),
        "--nice",
        "5",
        "--path",
        str(workdir),
        "--pythonpath",
        "/opt/scoop-test-path",
        mode=("env",),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("ENV "))
    report = json.loads(line[len("ENV ") :])
    remote = report["h0"]
    assert remote[:4] == ["sourced", str(workdir), 5, "/opt/scoop-test-path"]
    # Workers here and there: large blocks in huge pages (scoop_launch._prestart.process_env).
    assert len(report) == 2
    assert all(facts[4] == "glibc.malloc.hugetlb=1" for facts in report.values()), report
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_another_scoop_version_on_a_host_is_named(test_hosts, tmp_path):
    # The remote host sees an older scoop-core first on its path (--pythonpath), as a host with
    # a stale installation would.
    import scoop

    shadow = tmp_path / "old-scoop"
    package = shadow / "scoop"
    shutil.copytree(Path(scoop.__file__).parent, package)
    init = package / "__init__.py"
    init.write_text(init.read_text().replace(f'"{scoop.__version__}"', '"0.0.1"', 1))
    result = launch(test_hosts, "--hosts", "localhost", "h0", "--pythonpath", str(shadow))
    assert result.returncode == 1, result.stderr
    expected = f"host h0: version mismatch: scoop_core 0.0.1 here but {scoop.__version__}"
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_script_in_another_encoding_is_shipped_as_it_is(test_hosts, tmp_path):
    script = tmp_path / "latin1.py"
    script.write_bytes(
        b"# -*- coding: latin-1 -*-\nimport socket\nfrom scoop import futures\n"
        b"print('caf\xe9 imported on', socket.gethostname(), flush=True)\n"
        b"def cafe(n):\n    return 'caf\xe9' * n\n"
        b"if __name__ == '__main__':\n    print(list(futures.map(cafe, range(3))))\n"
    )
    # Every worker imports the script: h0's workers import the shipped copy.
    result = launch(test_hosts, "--hosts", "localhost", "h0", "h0", mode=(), script=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("café imported on h0") == 2, result.stdout
    assert "['', 'café', 'cafécafé']" in result.stdout, result.stdout
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_unreadable_ssh_config_is_named(test_hosts, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host h0\n  HostName 10.0.0.1\n  Port\n")
    # A host with no count: the launcher asks it for its CPU count, so it reads the ssh config.
    hosts = hostfile(tmp_path, ["h0"])
    result = launch(
        test_hosts, "--ssh-config", str(config), "--hostfile", hosts, "--dry-run", mode=()
    )
    assert result.returncode == 1, result.stderr
    assert f"cannot read the ssh config file {str(config)!r}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.timeout(120)
def test_a_remote_worker_that_exits_with_0_mid_run_is_lost_and_the_run_goes_on(test_hosts):
    result = launch(test_hosts, "--hosts", "localhost", "h0", "h0", mode=("vanish",))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(sum(range(3 * 20)))], result.stdout
    lost = re.findall(r"worker \d+ on host (\S+) lost \(exited with code 0 before", result.stderr)
    assert lost == ["h0", "h0"], result.stderr
    assert "no worker is left but the root; it goes on alone" in result.stderr, result.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_a_prolog_that_prints_is_fine_and_one_that_fails_is_named(test_hosts, tmp_path):
    # Module systems and shell start-up files often print: that is output, not a broken agent.
    chatty = tmp_path / "chatty.sh"
    chatty.write_text("echo loading modules\nprintf 'no newline here'\n")
    result = launch(test_hosts, "--hosts", "localhost", "h0", "--prolog", str(chatty))
    assert result.returncode == 0, result.stderr
    assert "loading modules" in result.stdout and "h0" in where(result)["hosts"], result.stdout
    failing = tmp_path / "failing.sh"
    failing.write_text("echo about to fail\nfalse\n")
    result = launch(test_hosts, "--hosts", "localhost", "h0", "--prolog", str(failing))
    assert result.returncode == 1
    assert f"host h0: the prolog {str(failing)!r} failed there (--prolog)" in result.stderr
    assert_nothing_left(test_hosts)


@contextlib.contextmanager
def hanging_run(test_hosts, *hosts_and_options):
    """A run whose workers all block in a task, started and seen running; killed at the end."""
    marker = new_marker()
    cmd = [sys.executable, "-m", "scoop_launch", "--ssh-config", str(test_hosts.ssh_config)]
    cmd += [*hosts_and_options, str(SCRIPT), "hang"]
    process = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=marked_env(marker),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert b"started" in line, line + process.stderr.read()
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_marked(marker)


def _agent_pid(test_hosts, host):
    for pid in test_hosts.processes_in(host):
        if b"scoop_launch._agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no agent on {host}: {test_hosts.describe_processes(host)}")


@pytest.mark.timeout(120)
def test_losing_the_roots_host_stops_the_run_naming_it(test_hosts):
    with hanging_run(test_hosts, "--hosts", "h0", "localhost", "h1") as process:
        os.kill(_agent_pid(test_hosts, "h0"), signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, stderr
        assert b"the workers on host h0, the root's among them, lost their ssh" in stderr, stderr
    assert_nothing_left(test_hosts)


def _long_run(test_hosts, options, hosts, env=None):
    """A run of the script's ``long`` mode on ``hosts``, seen started (a task done on each)."""
    marker = new_marker()
    cmd = [sys.executable, "-m", "scoop_launch", "--ssh-config", str(test_hosts.ssh_config)]
    cmd += [*options, "--hosts", *hosts, "--", str(SCRIPT), "long", str(len(set(hosts)))]
    process = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=marked_env(marker, env),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert b"started" in line, line + (process.stderr.read() if process.stderr else b"")
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kill_marked(marker)
        raise
    return process, marker


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["zmq", "nng"])
def test_a_host_cut_off_mid_run_is_lost_and_the_run_goes_on(test_hosts, transport):
    # Its link goes down: no reset, no error, just silence, on both sides.
    options = ("--ssh-keepalive", "3", "--heartbeat-timeout", "3", "--transport", transport)
    process, marker = _long_run(test_hosts, options, ["localhost", "h0", "h1"])
    try:
        with test_hosts.cut_off("h1"):
            stdout, stderr = process.communicate(timeout=90)
            assert process.returncode == 0, stderr
            assert b"DONE 450" in stdout, stdout + stderr
            assert re.search(rb"worker 2 on host h1 lost \(", stderr), stderr
            # Cut off, h1's agent hears no ping either and stops its workers by itself (what is
            # left there is sshd's own session process, until the link is back).
            assert wait_until(lambda: not _ours_on(test_hosts, "h1"), timeout=30), (
                test_hosts.describe_processes("h1")
            )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_marked(marker)
    assert_nothing_left(test_hosts)


def _ours_on(test_hosts, host):
    """Processes on ``host`` other than sshd's own."""
    ours = []
    for pid in test_hosts.processes_in(host):
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd"):
                ours.append(pid)
        except OSError:
            pass  # ended meanwhile
    return ours


@pytest.mark.timeout(120)
def test_script_options_after_hosts_reach_the_script(test_hosts, tmp_path):
    script = tmp_path / "show_args.py"
    script.write_text(
        "import sys\nfrom scoop import futures\n"
        "if __name__ == '__main__':\n    print('ARGS', sys.argv[1:])\n"
    )
    result = launch(
        test_hosts,
        "--hosts",
        "localhost",
        "h0",
        mode=("--generations", "50", "-n", "3"),
        script=script,
    )
    assert result.returncode == 0, result.stderr
    assert "ARGS ['--generations', '50', '-n', '3']" in result.stdout, result.stdout
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_lines_of_different_hosts_never_mix(test_hosts, tmp_path):
    script = tmp_path / "chatter.py"
    script.write_text(
        "import socket, time\nfrom scoop import futures\n"
        "def host(_):\n    time.sleep(0.01)\n    return socket.gethostname()\n"
        "def chatter(i):\n"
        "    for k in range(200):\n"
        "        print(f'L {socket.gethostname()} {i} {k} ' + 'x' * 300)\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        # The root's script starts before the others join: chatter once every host is in.
        "    while len(set(futures.map(host, range(12)))) < 3:\n        pass\n"
        "    print(sum(futures.map(chatter, range(24))))\n"
    )
    result = launch(test_hosts, "--hosts", "localhost", "h0", "h1", mode=(), script=script)
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if x.startswith("L ")]
    assert len(lines) == 24 * 200, len(lines)
    bad = [x for x in lines if not re.fullmatch(r"L \S+ \d+ \d+ x{300}", x)]
    assert not bad, bad[:3]
    assert {x.split()[1] for x in lines} >= {"h0", "h1"}, "the work did not spread"
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_workers_added_on_another_host_join_the_run(test_hosts, tmp_path):
    env = {"SCOOP_RUNS_DIR": str(tmp_path / "runs")}
    process, marker = _long_run(test_hosts, (), ["localhost", "h0"], env=env)
    joiner = None
    try:
        joiner = subprocess.run(
            [
                sys.executable,
                "-m",
                "scoop_launch",
                "--ssh-config",
                str(test_hosts.ssh_config),
                "--add-workers",
                "1",
                "--hosts",
                "h1",
            ],
            capture_output=True,
            timeout=90,
            env=marked_env(marker, env),
            cwd=ROOT,
        )
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_marked(marker)
    assert joiner.returncode == 0, joiner.stderr
    assert b"added workers 3..3 to run" in joiner.stderr, joiner.stderr
    assert process.returncode == 0, stderr
    assert re.search(rb"worker 3 on host h1 joined the run", stderr), stderr
    hosts = json.loads(stdout.split(b"HOSTS ", 1)[1])
    assert "h1" in hosts, stdout  # the added worker ran tasks
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_standard_input_reaches_a_root_on_another_host(test_hosts):
    data = "".join(f"word{i} " * 10 + "\n" for i in range(3000))
    marker = new_marker()
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "scoop_launch", "--ssh-config", str(test_hosts.ssh_config)),
                *("--hosts", "h0", "localhost", "--", str(SCRIPTS / "reads_stdin.py")),
            ],
            input=data.encode(),
            capture_output=True,
            timeout=90,
            env=marked_env(marker),
            cwd=ROOT,
        )
    finally:
        kill_marked(marker)
    assert done.returncode == 0, done.stderr
    letters = sum(len(word) for word in data.split())
    expected = f"READ {len(data)} bytes, {len(data.split())} words, {letters} letters"
    assert done.stdout.decode().strip() == expected, done.stdout + done.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_an_executor_starts_its_workers_on_other_hosts(test_hosts):
    result = run_command(
        [sys.executable, str(SCRIPTS / "executor_hosts.py"), str(test_hosts.ssh_config)],
        timeout=90,
    )
    assert result.returncode == 0, result.explain()
    line = next(x for x in result.stdout.splitlines() if x.startswith("HOSTS "))
    # This machine opened the Executor and runs no task: every task ran on the two hosts.
    assert json.loads(line[len("HOSTS ") :]) == ["h0", "h1"], result.stdout
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_a_trace_of_a_run_on_several_hosts_has_every_hosts_workers(test_hosts, tmp_path):
    from test_trace_e2e import check_trace

    trace = tmp_path / "trace.json"
    result = launch(test_hosts, "--hosts", "localhost", "h0", "h1", "--trace", str(trace))
    assert result.returncode == 0, result.stdout + result.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    names = check_trace(events, 3, raised=())  # the remote workers' records came back
    ran_on = {names[e["pid"]] for e in events if e["ph"] == "X" and e["name"] == "where"}
    assert any("(h0)" in n for n in ran_on) and any("(h1)" in n for n in ran_on), ran_on
    assert "times of host h0 moved by" in result.stderr, result.stderr
    assert_nothing_left(test_hosts)


@pytest.mark.timeout(120)
def test_a_large_record_of_a_remote_worker_comes_back_whole(test_hosts, tmp_path):
    # Thousands of tasks on each remote worker: records of hundreds of KiB, over ssh.
    trace = tmp_path / "trace.json"
    result = launch(
        test_hosts,
        "--hosts", "localhost", "h0", "h1", "--root-runs-no-task", "--trace", str(trace),
        script=SCRIPTS / "many_tasks.py", mode=("6000",),
    )  # fmt: skip
    assert result.returncode == 0 and "SUM 17997000" in result.stdout, result.stderr
    assert "trace_part" not in result.stdout and "no record of" not in result.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    per_host = {h: 0 for h in ("h0", "h1")}
    for event in events:
        if event["ph"] == "X" and event["name"] == "abs":
            for host in per_host:
                per_host[host] += f"({host})" in names[event["pid"]]
    assert sum(per_host.values()) == 6000 and min(per_host.values()) > 0, per_host
    assert_nothing_left(test_hosts)
