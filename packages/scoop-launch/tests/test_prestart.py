"""The root's process started ahead of the launcher: for runs only, and never left behind."""

from __future__ import annotations

import sys

import pytest

from scoop_launch import _prestart


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "2", "script.py"],
        ["script.py"],
        ["--debug", "script.py"],  # not an abbreviation of --dry-run
        ["--hosts", "a", "b", "--", "script.py"],
    ],
)
def test_a_run_starts_the_root_ahead(argv) -> None:
    assert _prestart.starts_a_run(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-h"],
        ["--help"],
        ["--list-transports"],
        ["--list"],  # argparse takes abbreviations
        ["-n", "2", "--dry-run", "script.py"],
        ["--add-workers", "2"],
        ["--add", "2"],
    ],
)
def test_what_starts_no_run_starts_nothing(argv) -> None:
    assert not _prestart.starts_a_run(argv)
    _prestart.start(argv)
    try:
        assert _prestart.take(sys.executable) is None
    finally:
        _prestart.discard()


@pytest.mark.timeout(60)
def test_the_process_waits_for_its_configuration_and_ends_quietly_without_one() -> None:
    _prestart.start(["script.py"])
    assert _prestart.take("/elsewhere/bin/python") is None  # not for a root of another Python
    process = _prestart.take(sys.executable)
    assert process is not None and _prestart.take(sys.executable) is None
    try:
        assert process.args == _prestart.command(sys.executable, "worker")
        assert process.stdin is not None
        process.stdin.close()  # the launcher ended before it configured this process
        assert process.wait(timeout=30) == 3
    finally:
        process.kill()
        process.wait()


@pytest.mark.timeout(60)
def test_one_not_taken_is_killed() -> None:
    _prestart.start(["script.py"])
    process = _prestart._started
    assert process is not None
    _prestart.discard()
    assert process.poll() == -9 and _prestart.take(sys.executable) is None
    _prestart.discard()  # nothing left to do: no error


@pytest.mark.parametrize(
    ("theirs", "expected"),
    [
        (None, "glibc.malloc.hugetlb=1"),
        ("", "glibc.malloc.hugetlb=1"),
        ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
        ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"),  # the user's choice stands
    ],
)
def test_the_run_s_processes_ask_for_huge_pages_unless_told_otherwise(
    monkeypatch, theirs, expected
) -> None:
    if theirs is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", theirs)
    monkeypatch.setenv("SCOOP_TEST_KEPT", "yes")
    env = _prestart.process_env()
    assert env["GLIBC_TUNABLES"] == expected
    assert env["SCOOP_TEST_KEPT"] == "yes"
