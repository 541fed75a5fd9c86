"""Project sessions: `nox` runs lint, typecheck and tests (the README's test command)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = False

PACKAGES = ["./packages/scoop-core", "./packages/scoop-zmq", "./packages/scoop-launch"]
TEST_TOOLS = ["pytest==9.2.0", "pytest-timeout==2.4.0"]
SOURCES = [f"{p}/src" for p in PACKAGES]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, against the packages installed as a user would install them."""
    session.install(*PACKAGES, *TEST_TOOLS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) over the packages' sources."""
    session.install(*PACKAGES, "mypy==2.4.1", "types-greenlet==3.5.0.20260518")
    session.run("mypy", *SOURCES)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the full_tree example on every local core."""
    session.install(*PACKAGES)
    session.run("python", "-m", "scoop_launch", "examples/full_tree.py")
