"""Getting started's "Run on two hosts", followed on real hosts as a new user would.

A new user's home directory (a fresh ``$HOME``) gets what the page's steps give it: a key that
the other host accepts, the other host's key in ``~/.ssh/known_hosts``, and ``beta``'s address
in ``~/.ssh/config`` (the page's fallback when the name is unknown). Then the page's files are
saved and its multi-host commands run as written; each must print what the page shows. ``beta``
is a test host (a network namespace with its own sshd, see ``hosts/netns.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from docs_code import DOCS, Command, files, missing_lines, runnable
from scoop_e2e_support import run_command

PAGE = DOCS / "getting-started.md"


def two_host_commands() -> list[Command]:
    return [c for c in runnable(PAGE) if {"--hosts", "--hostfile"} & set(c.argv)]


def new_user_home(home: Path, test_hosts) -> None:
    """The state the page's step 2 leaves in ``home``: key, known_hosts, ssh config."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    shutil.copy(test_hosts.client_key, ssh / "id_ed25519")  # the key beta's sshd accepts
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copy(test_hosts.known_hosts, ssh / "known_hosts")  # as `ssh beta true` records it
    beta = test_hosts.host("h0")
    (ssh / "config").write_text(f"Host beta\n    HostName {beta.address}\n    User root\n")


def test_the_page_has_the_two_host_steps() -> None:
    commands = two_host_commands()
    assert [c.argv[-1] for c in commands] == ["two_hosts.py", "two_hosts.py"], commands
    assert "--dry-run" in commands[0].argv
    assert files(PAGE)["hosts"].text.split()[0] == "localhost"


@pytest.mark.timeout(180)
def test_two_hosts_from_the_page(clean_test_hosts, tmp_path: Path) -> None:
    home = tmp_path / "home"
    new_user_home(home, clean_test_hosts)
    work = tmp_path / "work"
    work.mkdir()
    for title, block in files(PAGE).items():
        (work / title).write_text(block.text)
    for command in two_host_commands():
        argv = [sys.executable, *command.argv[1:]]
        result = run_command(argv, cwd=work, timeout=120, env={"HOME": str(home)})
        where = f"{command.block.where}: {command.text}"
        assert result.returncode == 0, f"{where}\n{result.explain()}"
        missing = missing_lines(command.shown, result.stdout, result.stderr)
        assert not missing, f"{where}: not printed: {missing}\n{result.explain()}"
        assert "Traceback" not in result.stderr, result.explain()
