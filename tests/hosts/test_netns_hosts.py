"""The ssh test hosts themselves: real sshd per namespace, host keys checked, own hostnames,
a down address, and a teardown that leaves nothing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paramiko
import pytest

from . import netns
from .netns import TestHosts

pytestmark = pytest.mark.timeout(60)

PY = sys.executable  # the file system is shared: the hosts can run the dev venv's python


def connect(test_hosts: TestHosts, name: str, config: Path | None = None) -> paramiko.SSHClient:
    """Log in to ``name`` the way the launcher will: everything from the ssh_config file."""
    cfg = paramiko.SSHConfig.from_path(str(config or test_hosts.ssh_config)).lookup(name)
    client = paramiko.SSHClient()
    client.load_host_keys(cfg["userknownhostsfile"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            cfg["hostname"],
            port=int(cfg.get("port", 22)),
            username=cfg["user"],
            key_filename=cfg["identityfile"],
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
            auth_timeout=5,
        )
    except BaseException:
        client.close()
        raise
    return client


def ssh_run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _in, out, err = client.exec_command(command, timeout=20)
    text = out.read().decode()
    status = out.channel.recv_exit_status()
    assert status == 0, f"{command!r} exited {status}: {err.read().decode()}"
    return status, text


def test_layout(test_hosts: TestHosts) -> None:
    names = [h.name for h in test_hosts.hosts]
    assert names == ["h0", "h1", "h2"]
    addresses = [addr for _name, addr in test_hosts.hosts]
    assert len(set(addresses)) == 3
    assert test_hosts.bridge_address.startswith("10.213.")
    for path in (test_hosts.ssh_config, test_hosts.known_hosts, test_hosts.client_key):
        assert path.is_file()
    assert set(test_hosts.namespaces) <= set(netns.netns_list())
    cfg = paramiko.SSHConfig.from_path(str(test_hosts.ssh_config))
    for h in test_hosts.hosts:
        entry = cfg.lookup(h.name)
        assert entry["hostname"] == h.address
        assert entry["user"] == "root"
        assert entry["stricthostkeychecking"] == "yes"
        assert entry["identityfile"] == [str(test_hosts.client_key)]
        assert entry["userknownhostsfile"] == str(test_hosts.known_hosts)
    assert cfg.lookup("down")["hostname"] == test_hosts.down_address


@pytest.mark.parametrize("name", ["h0", "h1", "h2"])
def test_ssh_login_reports_own_hostname(test_hosts: TestHosts, name: str) -> None:
    client = connect(test_hosts, name)
    try:
        _, out = ssh_run(client, f"hostname; {PY} -c 'import socket; print(socket.gethostname())'")
        assert out.split() == [name, name]
        # The session really is inside the host's namespace: it sees the host's address.
        _, out = ssh_run(client, "ip -4 -o addr show dev eth0")
        assert f" {test_hosts.host(name).address}/" in out
    finally:
        client.close()


def test_run_is_inside_the_host(test_hosts: TestHosts) -> None:
    for h in test_hosts.hosts:
        assert test_hosts.run(h, "hostname").stdout.strip() == h.name
        assert test_hosts.run(h.name, ["ip", "-4", "-o", "addr"]).stdout.count(h.address) == 1
        routes = test_hosts.run(h, "ip -4 route").stdout
        assert "default" not in routes, "a test host must have no way off the bridge"


def test_hosts_reach_the_root_namespace(test_hosts: TestHosts) -> None:
    """The broker binds on the bridge address; a process started over ssh connects back."""
    got: list[str] = []
    with socket.create_server((test_hosts.bridge_address, 0)) as server:
        server.settimeout(20)
        port = server.getsockname()[1]

        def serve() -> None:
            for _ in test_hosts.hosts:
                conn, _addr = server.accept()
                with conn:
                    got.append(conn.recv(100).decode())

        thread = threading.Thread(target=serve)
        thread.start()
        for h in test_hosts.hosts:
            client = connect(test_hosts, h.name)
            try:
                ssh_run(
                    client,
                    f"{PY} -c 'import socket; s = socket.create_connection("
                    f'("{test_hosts.bridge_address}", {port}), timeout=5); '
                    "s.sendall(socket.gethostname().encode()); s.close()'",
                )
            finally:
                client.close()
        thread.join(20)
    assert sorted(got) == ["h0", "h1", "h2"]


def test_wrong_host_key_is_rejected(test_hosts: TestHosts) -> None:
    h = test_hosts.hosts[0]
    with pytest.raises(paramiko.BadHostKeyException):
        netns.ssh_exec(
            h.address,
            "true",
            client_key=test_hosts.client_key,
            known_hosts=test_hosts.wrong_known_hosts,
            timeout=5,
        )
    # One host with a wrong key in an otherwise good config: only that one fails.
    config = test_hosts.ssh_config_variant(wrong_key=["h1"])
    connect(test_hosts, "h0", config).close()
    with pytest.raises(paramiko.BadHostKeyException):
        connect(test_hosts, "h1", config)


def test_unknown_host_key_is_rejected(test_hosts: TestHosts) -> None:
    config = test_hosts.ssh_config_variant(missing=["h2"])
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(test_hosts, "h2", config)


def test_down_address_refuses_at_once(test_hosts: TestHosts) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((test_hosts.down_address, 22), timeout=2)
    assert time.monotonic() - start < 1.0
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(test_hosts, "down")


def test_unreachable_address_fails_within_timeout(test_hosts: TestHosts) -> None:
    start = time.monotonic()
    with pytest.raises(OSError):  # timeout, or "no route to host" once ARP gives up
        socket.create_connection((test_hosts.unreachable_address, 22), timeout=0.5)
    assert time.monotonic() - start < 2.0


def test_processes_in_sees_ssh_sessions(test_hosts: TestHosts) -> None:
    h = test_hosts.hosts[2]
    assert test_hosts.wait_no_processes(h, timeout=5) == []
    client = connect(test_hosts, h.name)
    try:
        chan = client.get_transport().open_session()
        chan.get_pty()  # with a tty, closing the session hangs up the command
        chan.exec_command("exec sleep 30")
        deadline = time.monotonic() + 5
        while not any("sleep 30" in netns._cmdline(p) for p in test_hosts.processes_in(h)):
            assert time.monotonic() < deadline, test_hosts.describe_processes(h)
            time.sleep(0.02)
        assert test_hosts.sshd_pid(h) not in test_hosts.processes_in(h)
        assert test_hosts.sshd_pid(h) in test_hosts.processes_in(h, include_sshd=True)
    finally:
        client.close()
    assert test_hosts.wait_no_processes(h, timeout=10) == [], test_hosts.describe_processes(h)


def test_clean_test_hosts_fixture(clean_test_hosts: TestHosts) -> None:
    assert clean_test_hosts.leftover_processes(timeout=1) == {}


def test_prerequisites_fail_clearly_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(netns.HostSetupError, match="must run as root"):
        netns.check_prerequisites()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _assert_all_gone(info: dict[str, object], pids: list[int]) -> None:
    namespaces = info["namespaces"]
    assert isinstance(namespaces, list)
    assert not set(namespaces) & set(netns.netns_list())
    links = netns.link_names()
    assert info["bridge"] not in links
    runid = str(info["runid"])
    assert not [name for name in links if runid in name]
    assert not Path(str(info["workdir"])).exists()
    assert not (netns.STATE_DIR / f"{runid}.json").exists()
    left = [pid for pid in pids if not _gone(pid)]
    assert left == [], [netns._cmdline(p) for p in left]


@pytest.mark.timeout(90)
def test_teardown_removes_everything(test_hosts: TestHosts) -> None:
    th = netns.create_hosts(2)
    try:
        info = th.describe()
        assert set(th.namespaces) <= set(netns.netns_list())
        # Leave things running on the hosts: a detached process started over ssh and one
        # started through the back door.
        for h in th.hosts:
            status, _out, err = netns.ssh_exec(
                h.address,
                "setsid nohup sleep 300 >/dev/null 2>&1 < /dev/null &",
                client_key=th.client_key,
                known_hosts=th.known_hosts,
            )
            assert status == 0, err
        stray = subprocess.Popen(
            ["ip", "netns", "exec", th.down_namespace, "sleep", "300"],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not all(th.processes_in(h) for h in th.hosts) or not th.processes_in("down"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pids = [p for ns in th.namespaces for p in netns.netns_pids(ns)]
        assert len(pids) >= 5  # 2 sshd, 2 sleeps over ssh, 1 in "down"
        assert th.teardown() == []
        stray.wait(5)
    finally:
        th.teardown()
    _assert_all_gone(info, pids)
    assert th.teardown() == []  # idempotent
    # The session's hosts were not touched.
    assert netns.ssh_exec(
        test_hosts.hosts[0].address,
        "hostname",
        client_key=test_hosts.client_key,
        known_hosts=test_hosts.known_hosts,
    )[1].split() == ["h0"]


@pytest.mark.timeout(90)
def test_cleanup_stale_removes_a_crashed_run(test_hosts: TestHosts) -> None:
    """A run killed with SIGKILL leaves its hosts; the next setup's cleanup removes them."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(netns.__file__)), "up", "-n", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "netns.py up printed nothing"
        info = json.loads(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sshd_pids = list(info["sshd_pids"].values())
    assert set(info["namespaces"]) <= set(netns.netns_list()), "the crash left nothing?"
    assert all(not _gone(pid) for pid in sshd_pids)
    pids = [p for ns in info["namespaces"] for p in netns.netns_pids(ns)]

    removed = netns.cleanup_stale()

    assert set(info["namespaces"]) <= set(removed)
    _assert_all_gone(info, pids)
    # A live run's hosts are never taken for stale ones.
    assert set(test_hosts.namespaces) <= set(netns.netns_list())
    assert test_hosts.run("h1", "hostname").stdout.strip() == "h1"


@pytest.mark.timeout(60)
def test_sigterm_tears_down(test_hosts: TestHosts) -> None:
    """A run ended by a plain SIGTERM (no atexit) removes its hosts itself."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(netns.__file__)), "up", "-n", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        pids = [p for ns in info["namespaces"] for p in netns.netns_pids(ns)]
        assert pids
        proc.terminate()
        assert proc.wait(20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _assert_all_gone(info, pids)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stage", ["network", "sshd"])
def test_failed_setup_removes_what_it_built(
    monkeypatch: pytest.MonkeyPatch, test_hosts: TestHosts, stage: str
) -> None:
    runid = secrets.token_hex(3)  # fixed for this test, unique to this run
    monkeypatch.setattr(secrets, "token_hex", lambda _n: runid)
    if stage == "network":  # fails while holding the machine-wide lock
        build = netns._build_network

        def broken(*args: object) -> None:
            build(*args)  # type: ignore[arg-type]
            raise netns.HostSetupError("broken on purpose")

        monkeypatch.setattr(netns, "_build_network", broken)
        match = "broken on purpose"
    else:
        monkeypatch.setattr(netns, "SSHD", "/bin/false")
        match = "sshd of h0 exited"
    with pytest.raises(netns.HostSetupError, match=match):
        netns.create_hosts(2)
    assert not [ns for ns in netns.netns_list() if runid in ns]
    assert not [link for link in netns.link_names() if runid in link]
    assert not list(Path(tempfile.gettempdir()).glob(f"{netns.TMP_PREFIX}{runid}-*"))
    assert not (netns.STATE_DIR / f"{runid}.json").exists()
    assert runid not in netns._LIVE


def test_runids_are_never_reused(monkeypatch: pytest.MonkeyPatch, test_hosts: TestHosts) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda _n: test_hosts.runid)
    with pytest.raises(netns.HostSetupError, match="no unused runid"):
        netns.create_hosts(1)
    assert set(test_hosts.namespaces) <= set(netns.netns_list())
    assert test_hosts.run("h0", "hostname").stdout.strip() == "h0"
