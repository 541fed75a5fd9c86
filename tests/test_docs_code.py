"""The code of the documentation pages runs, and prints what the pages say it prints.

See ``docs_code.py`` for the conventions the pages follow. Each command that names a program of
its page is run as a reader would, in a directory holding the page's files, with the launcher of
this environment; the commands that need other hosts (``--hosts``, ``--hostfile``) are run on
real hosts by ``test_docs_two_hosts.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from docs_code import (
    PAGES,
    PYTHONS,
    ROOT,
    Command,
    files,
    missing_lines,
    runnable,
    untitled_programs,
)
from scoop_e2e_support import run_command

#: Options whose commands need other hosts: run by test_docs_two_hosts.py.
MULTI_HOST = {"--hosts", "--hostfile"}


def local_commands() -> list[Command]:
    return [c for page in PAGES for c in runnable(page) if not MULTI_HOST & set(c.argv)]


def write_files(page: Path, where: Path) -> None:
    """Save the page's titled blocks in ``where``, as a reader would."""
    for title, block in files(page).items():
        (where / title).write_text(block.text)


def argv_here(command: Command) -> list[str]:
    """The command with this environment's Python for ``python``."""
    argv = list(command.argv)
    if argv[0] in PYTHONS:
        argv[0] = sys.executable
    return argv


def test_every_program_has_a_title() -> None:
    untitled = [b.where for page in PAGES for b in untitled_programs(page)]
    assert not untitled, f"python blocks with a main guard but no title (not run): {untitled}"


def test_every_titled_program_is_run() -> None:
    """A program shown on a page is run by one of its commands, or imported by one that is."""
    not_run = []
    for page in PAGES:
        named = {arg for c in runnable(page) for arg in c.argv}
        texts = "\n".join(b.text for b in files(page).values())
        for title in files(page):
            module = title.removesuffix(".py")
            imported = f"import {module}" in texts or f"from {module} import" in texts
            if title.endswith(".py") and title not in named and not imported:
                not_run.append(f"{page.name}: {title}")
    assert not not_run, f"programs no command of their page runs: {not_run}"


def test_the_pages_have_programs() -> None:
    # The harness must find what it checks: a silent parser would pass everything.
    pages = {c.block.page.name for c in local_commands()}
    assert {"getting-started.md", "api.md", "notebooks.md", "deap.md"} <= pages, pages


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "command", local_commands(), ids=lambda c: f"{c.block.page.name}:{c.block.line}"
)
def test_page_command(command: Command, tmp_path: Path) -> None:
    page = command.block.page
    write_files(page, tmp_path)
    if any("deap" in b.text for b in files(page).values()):
        pytest.importorskip("deap", reason="nox -s tests installs deap for the DEAP guide")
    result = run_command(argv_here(command), cwd=tmp_path, timeout=120)
    where = f"{command.block.where}: {command.text}"
    assert result.returncode == 0, f"{where}\n{result.explain()}"
    missing = missing_lines(command.shown, result.stdout, result.stderr)
    assert not missing, f"{where}: lines shown but not printed: {missing}\n{result.explain()}"
    shown_traceback = any("Traceback" in line for line in command.shown)
    assert shown_traceback or "Traceback" not in result.stderr, result.explain()
    assert not result.leftover(), f"processes left: {result.leftover()}"


def test_snippets_of_the_site_exist() -> None:
    # mkdocs fails on a missing snippet too; this says so without building the site.
    missing = []
    for page in PAGES[:-1]:
        for line in page.read_text().splitlines():
            if line.strip().startswith('--8<-- "'):
                path = line.strip().split('"')[1]
                if not (ROOT / path).is_file():
                    missing.append(f"{page.name}: {path}")
    assert not missing, missing
