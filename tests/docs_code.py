"""The code blocks of the documentation pages, read as the tests run them.

The pages follow two conventions, so that their programs cannot go stale:

- A complete program is a fenced ``python`` block with a file name as its title::

      ```python title="first_map.py"

  Other files a page needs (a hostfile) are fenced blocks titled the same way, in any language.
  A ``python`` block without a title is a fragment: it may not hold ``if __name__ ==
  "__main__":``, the mark of a program (give such a block a title, and it is run).
- A ``console`` block shows commands (lines starting with ``$ ``) and, below each, the lines of
  output it prints. A command that names a titled file of its page is run by the tests, in a
  directory holding the page's files, and each output line shown must appear in what it printed
  (``...`` stands for lines left out). Only ``python`` commands are run this way.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: The pages whose code is checked: the site's pages and the README.
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

PYTHONS = {"python", "python3"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')
#: A block that is only ``--8<-- "path"`` includes that file of the repository (pymdownx.snippets).
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$')
_MAIN_GUARD = re.compile(r"^if __name__ == [\"']__main__[\"']:", re.M)


@dataclasses.dataclass
class Block:
    """One fenced block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    title: str
    text: str

    @property
    def where(self) -> str:
        """``docs/page.md:12``, for messages."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclasses.dataclass
class Command:
    """One ``$ command`` of a console block and the output lines shown below it."""

    block: Block
    argv: list[str]
    shown: list[str]

    @property
    def text(self) -> str:
        """The command as written on the page."""
        return shlex.join(self.argv)


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order (indented ones too, as in lists)."""
    found = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        body = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        language = info.split()[0] if info else ""
        title = match_title["title"] if (match_title := _TITLE.search(info)) else ""
        text = "\n".join(body) + "\n"
        if len(body) == 1 and (snippet := _SNIPPET.match(body[0].strip())):
            text = (ROOT / snippet["path"]).read_text()
        found.append(Block(page, i + 1, language, title, text))
        i = j + 1
    return found


def files(page: Path) -> dict[str, Block]:
    """The page's titled blocks, by title: the files a reader would save."""
    return {b.title: b for b in blocks(page) if b.title}


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the output lines shown under it."""
    found: list[Command] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            found.append(Command(block, shlex.split(line[2:], comments=True), []))
        elif found and line.strip():
            found[-1].shown.append(line)
    return found


def runnable(page: Path) -> list[Command]:
    """The ``python`` commands of ``page`` that name one of its titled files: those the tests
    run (``sbatch job.sh`` needs a cluster: not run here)."""
    names = set(files(page))
    return [
        command
        for block in blocks(page)
        if block.language == "console"
        for command in commands(block)
        if command.argv[0] in PYTHONS and names & set(command.argv)
    ]


def untitled_programs(page: Path) -> list[Block]:
    """``python`` blocks that look like complete programs but have no title (so are not run)."""
    return [
        b
        for b in blocks(page)
        if b.language == "python" and not b.title and _MAIN_GUARD.search(b.text)
    ]


def missing_lines(shown: list[str], stdout: str, stderr: str) -> list[str]:
    """The lines of ``shown`` not printed: those of stdout in order, any of stderr anywhere."""
    out, err = stdout.splitlines(), set(stderr.splitlines())
    missing = []
    position = 0
    for line in shown:
        if line.strip() == "...":
            continue
        try:
            position = out.index(line, position) + 1
        except ValueError:
            if line not in err:
                missing.append(line)
    return missing
