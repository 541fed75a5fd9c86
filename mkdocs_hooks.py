"""mkdocs hooks of the documentation site (mkdocs.yml's ``hooks``).

The docstrings use Sphinx's roles (``:class:`Future```), which Markdown shows as text: the
API reference drops the role and keeps the name as code.

The performance page shows the README's "Benchmarks" section as it is at build time, so that
the figures live in one place: a page line ``<!-- include: README.md#Benchmarks -->`` is
replaced by that section. The README's links are relative to the repository's root: those into
``docs/`` are made relative to the site's pages, and those to other files of the repository
(which the site does not have) become plain code text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
_INCLUDE = re.compile(r"^<!-- include: (?P<file>[^#\s]+)#(?P<section>[^>]+?) -->$", re.M)
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code)")
_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


def readme_section(path: Path, title: str) -> str:
    """The body of the ``## title`` section of a Markdown file (to the next ``## ``)."""
    lines = path.read_text().splitlines()
    heading = f"## {title}"
    if heading not in lines:
        raise ValueError(f"{path.name} has no section {heading!r}")
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip("\n")


def _site_link(match: re.Match[str]) -> str:
    target = match["target"]
    if re.match(r"^[a-z]+:|^#", target):
        return match[0]
    if target.startswith("docs/"):
        return f"{match['bang']}[{match['text']}]({target.removeprefix('docs/')})"
    text = match["text"].strip("`")
    return f"`{text}`" if text == target else f"{match['text']} (`{target}`)"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace each include line by the section it names, links made to work on the site.

    A line of the section that points to the including page itself (the README's "how to
    read these figures" pointer) is left out.
    """
    itself = f"](docs/{page.file.src_uri})"

    def include(match: re.Match[str]) -> str:
        section = readme_section(ROOT / match["file"], match["section"])
        kept = "\n".join(line for line in section.splitlines() if itself not in line)
        return _LINK.sub(_site_link, kept.strip("\n"))

    return _INCLUDE.sub(include, markdown)


def on_page_content(html: str, **_: Any) -> str:
    """Drop the Sphinx roles left before code spans of the rendered docstrings."""
    return _ROLE.sub("", html)
