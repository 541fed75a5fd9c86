"""Project sessions: `nox` runs lint, typecheck and tests (the README's test command)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests", "third_party", "nng_only", "docs"]
nox.options.reuse_existing_virtualenvs = False

PACKAGES = [
    "./packages/scoop-core",
    "./packages/scoop-zmq",
    "./packages/scoop-nng",
    "./packages/scoop-launch",
]
#: tqdm: examples/progress_bar.py shows a progress bar over a map with it.
TEST_TOOLS = ["pytest==9.2.0", "pytest-timeout==2.4.0", "uv==0.13.9", "tqdm==4.70.1"]
#: deap: tests/test_docs_code.py runs the DEAP guide's program (docs/deap.md).
DOC_TEST_TOOLS = ["deap==1.4.4"]
#: The notebook tests drive a real Jupyter kernel.
NOTEBOOK_TOOLS = ["ipykernel==7.4.0", "nbclient==0.11.0", "nbformat==5.11.1"]
SOURCES = [f"{p}/src" for p in PACKAGES]
# Every install uses --no-sources: without it uv reads the workspace's [tool.uv.sources] and
# installs the scoop packages editable, not as a user gets them.


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, against the packages installed as a user would install them."""
    session.install("--no-sources", *PACKAGES, *TEST_TOOLS, *NOTEBOOK_TOOLS, *DOC_TEST_TOOLS)
    session.run("pytest", *session.posargs)


#: The documentation site (mkdocs.yml), each pinned and checked on PyPI. mkdocstrings reads the
#: docstrings statically (griffe): scoop itself need not be installed. ruff formats signatures.
DOCS_TOOLS = [
    "mkdocs==1.6.1",
    "mkdocs-material==9.8.2",
    "mkdocstrings==1.0.8",
    "mkdocstrings-python==2.0.11",
    "griffe==2.4.1",
    "pymdown-extensions==12.3",  # 13 needs Python 3.11.5; Debian 12 has 3.11.2
    "ruff==0.17.6",
]


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/, strict: a warning (broken link, missing
    snippet, unresolved reference) fails. The code in the pages is run by
    tests/test_docs_code.py."""
    session.install(*DOCS_TOOLS)
    # Material prints a banner about MkDocs 2.0 on every build; it is news, not a problem
    # of these pages.
    session.run("mkdocs", "build", "--strict", "--clean", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) over the packages' sources."""
    # pytest: scoop.testing (the conformance kit) is typed against it.
    session.install(
        "--no-sources", *PACKAGES, *TEST_TOOLS, "mypy==2.4.1", "types-greenlet==3.5.0.20260518"
    )
    session.run("mypy", *SOURCES)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the full_tree example on every local core."""
    session.install("--no-sources", *PACKAGES)
    session.run("python", "-m", "scoop_launch", "examples/full_tree.py")


THIRD_PARTY = "examples/third_party_transport"
#: (script, args, a line its output must hold) run with --transport tcp-example. The examples
#: print no traceback; the API scripts log some on purpose and print "CHECKS DONE <failures>".
THIRD_PARTY_RUNS = [
    ("examples/hello_map.py", [], "hello_map: sum of squares of 0..15 = 1240"),
    ("examples/full_tree.py", [], "full_tree: 256 leaves, total = 32640"),
    ("tests/scripts/api_core.py", ["2"], "CHECKS DONE 0"),
    ("tests/scripts/api_errors.py", ["2"], "CHECKS DONE 0"),
]


@nox.session
def third_party(session: nox.Session) -> None:
    """The example third-party transport, as a stranger ships it: wheel, kit, launcher runs.

    Only scoop-core, scoop-launch and the example are installed (no scoop-zmq), so every run
    below can only use the example's `tcp-example` transport.
    """
    session.install(*TEST_TOOLS)
    dist = session.create_tmp()
    session.run("uv", "build", "--wheel", "--quiet", "--out-dir", dist, THIRD_PARTY)
    wheels = sorted(Path(dist).glob("scoop_tcp_example-*.whl"))
    if len(wheels) != 1:
        session.error(f"expected one scoop_tcp_example wheel in {dist}, found {wheels}")
    # --no-sources: without it uv reads the workspace's [tool.uv.sources] and installs
    # scoop-core (a dependency of scoop-launch) editable, not as a user would get it.
    session.install(
        "--no-sources", "./packages/scoop-core", "./packages/scoop-launch", str(wheels[0])
    )
    session.run("python", "-m", "pytest", f"{THIRD_PARTY}/tests", "-p", "no:cacheprovider")
    listing = session.run("python", "-m", "scoop_launch", "--list-transports", silent=True)
    names = [line.split()[:2] for line in str(listing).splitlines() if line.strip()]
    if names != [["tcp-example", "scoop-tcp-example"]]:
        session.error(f"--list-transports should list only tcp-example, got:\n{listing}")
    for script, args, expected in THIRD_PARTY_RUNS:
        output = str(
            session.run(
                *("python", "-m", "scoop_launch", "--transport", "tcp-example", "-n", "2"),
                *(script, *args),
                silent=True,
                env={"SCOOP_TRANSPORT": ""},
            )
        )
        traceback = script.startswith("examples/") and "Traceback" in output
        if expected not in output.splitlines() or traceback:
            session.error(f"{script} with tcp-example: expected {expected!r}, got:\n{output}")
        session.log(f"{script} with tcp-example: {expected}")


@nox.session
def nng_only(session: nox.Session) -> None:
    """The API suite and the examples with only scoop-core, scoop-nng and scoop-launch installed.

    No pyzmq in this environment: the launcher must find nng by itself.
    """
    session.install(
        "--no-sources",
        "./packages/scoop-core",
        "./packages/scoop-nng",
        "./packages/scoop-launch",
        *TEST_TOOLS,
    )
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('zmq') is not None)",
    )
    session.run(
        "pytest",
        "tests/test_api_e2e.py",
        "tests/test_examples_e2e.py",
        "-p",
        "no:cacheprovider",
        env={"SCOOP_TRANSPORT": ""},
    )


#: The peers of `nox -s bench`, pinned (each checked on PyPI).
BENCH_PEERS = [
    "deap==1.4.4",
    "loky==3.7.0",
    "dask[distributed]==2026.8.0",
    "ray==2.60.0",
    "matplotlib==3.11.2",
    "pyzmq==27.3.0",
]
#: The original SCOOP, in its own Python 3.11 venv (it also imports as `scoop`).
BENCH_ORIGINAL = ["scoop==0.7.2.0", "pyzmq==27.3.0", "greenlet==3.5.6"]


@nox.session
def bench(session: nox.Session) -> None:
    """SCOOP against its peers (bench/run.py); `nox -s bench -- --quick` for a short run.

    This SCOOP and the peers share the session's env; the original SCOOP 0.7.2 gets a venv of
    its own, passed to run.py as $SCOOP_BENCH_ORIGINAL_PYTHON. A full run writes
    bench/latest.json and docs/bench-latest.png (and docs/bench-broker.png,
    docs/bench-multihost.png). The multihost workload builds network-namespace hosts with
    sshd: run as root (else it is skipped, the reason in the table).
    """
    # --compile-bytecode for every system alike: start-up figures must not depend on whether
    # a first run (or PYTHONDONTWRITEBYTECODE) left bytecode behind; uv compiles none by default.
    session.install(
        "--no-sources",
        "--compile-bytecode",
        "./packages/scoop-core",
        "./packages/scoop-zmq",
        "./packages/scoop-launch",
        *BENCH_PEERS,
    )
    original = Path(session.create_tmp()).resolve() / "original-scoop"
    session.run(
        "uv", "venv", "--clear", "--quiet", "--python", "3.11", str(original), external=True
    )
    python = str(original / "bin" / "python")
    session.run(
        "uv",
        "pip",
        "install",
        "--quiet",
        "--compile-bytecode",
        "--python",
        python,
        *BENCH_ORIGINAL,
        external=True,
    )
    session.run(
        "python", "bench/run.py", *session.posargs, env={"SCOOP_BENCH_ORIGINAL_PYTHON": python}
    )
