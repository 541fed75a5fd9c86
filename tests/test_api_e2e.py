"""The public API end to end: each script of tests/scripts runs once per worker count, through
the launcher, and every check it holds is reported as its own test.

Each script also runs with ``--root-runs-no-task`` (the "client" cases, at -n 2 and 4 on every
transport): then every task travels to another worker, so that nothing passes only because the
root happened to run a task itself (a function defined under the main guard, say).

The scripts assert internally and print ``CHECK <name> PASS|FAIL`` (see tests/scripts/_checks.py);
one launch per (script, -n) keeps the suite fast.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from scoop_e2e_support import (
    SCRIPTS,
    LaunchResult,
    check_names,
    installed_transport_names,
    run_launcher,
    transport_cases,
)

SCRIPT_NAMES = ("api_core.py", "api_errors.py", "api_responsive.py")
_RUNS: dict[tuple[str, int, str, str], LaunchResult] = {}
#: How the root runs: "" as usual, "client" with --root-runs-no-task.
MODES = ("", "client")

# (script, check) -> (worker counts, reason): checks expected to fail because of a known bug,
# marked strict xfail so that they turn red once it is fixed. None today.
KNOWN_BUGS: dict[tuple[str, str], tuple[tuple[int, ...], str]] = {}


def _check_names(script: str) -> list[str]:
    return [name for name in check_names(script) if name.startswith("check_")]


def _runs() -> list[tuple[str, int, str]]:
    """(transport, -n, mode) of every launch of each script."""
    runs = [(transport, n, "") for transport, n in transport_cases()]
    runs += [(transport, n, "client") for transport in installed_transport_names() for n in (2, 4)]
    return runs


def _cases() -> list[Any]:
    cases = []
    for script in SCRIPT_NAMES:
        for name in _check_names(script):
            for transport, n, mode in _runs():
                marks = []
                counts, reason = KNOWN_BUGS.get((script, name), ((), ""))
                if n in counts:
                    marks.append(pytest.mark.xfail(reason=reason, strict=True))
                cases.append(
                    pytest.param(
                        script,
                        n,
                        transport,
                        mode,
                        name,
                        marks=marks,
                        id=f"{script[:-3]}-{transport}-n{n}{'-' + mode if mode else ''}-{name}",
                    )
                )
    return cases


def _run(script: str, n: int, transport: str, mode: str) -> LaunchResult:
    key = (script, n, transport, mode)
    if key not in _RUNS:
        _RUNS[key] = run_launcher(
            SCRIPTS / script,
            str(n),
            n=n,
            timeout=150,
            env={"SCOOP_TRANSPORT": transport},
            options=["--root-runs-no-task"] if mode == "client" else [],
        )
    return _RUNS[key]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("script", "n", "transport", "mode", "name"), _cases())
def test_api(script: str, n: int, transport: str, mode: str, name: str) -> None:
    result = _run(script, n, transport, mode)
    out = result.stdout
    if f"CHECK {name} PASS" in out:
        return
    block = re.search(rf"^BEGIN {name}\n(.*?)^END {name}$", out, re.S | re.M)
    where = f"-n {n} over {transport}" + (" with a root that runs no task" if mode else "")
    if block:
        pytest.fail(f"{name} failed with {where}:\n{block.group(1)}", pytrace=False)
    pytest.fail(f"{name} did not report with {where} (the run ended early)\n{result.explain()}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("transport", "n", "mode"), _runs())
@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_api_script_ran_to_the_end(script: str, transport: str, n: int, mode: str) -> None:
    """Every check reported, and the exit code says whether any failed."""
    result = _run(script, n, transport, mode)
    done = re.search(r"^CHECKS DONE (\d+)$", result.stdout, re.M)
    assert done, result.explain()
    reported = re.findall(r"^CHECK (\w+) (?:PASS|FAIL)", result.stdout, re.M)
    assert reported == _check_names(script), result.explain()
    assert result.returncode == (1 if int(done.group(1)) else 0), result.explain()
    assert "printed by a task" in result.stdout or script != "api_core.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", installed_transport_names())
def test_definitions_under_the_main_guard_travel_wherever_tasks_run(transport: str) -> None:
    # Workers import the script without its guarded block: a function or class defined only
    # there must travel by value, also when the task runs on another worker than the root.
    result = run_launcher(
        SCRIPTS / "under_main_guard.py",
        n=2,
        env={"SCOOP_TRANSPORT": transport},
        options=["--root-runs-no-task"],
    )
    assert result.returncode == 0, result.explain()
    assert "GUARD OK [0, 2, 4, 6, 8, 10] [1]" in result.stdout, result.explain()


@pytest.mark.timeout(60)
def test_a_long_map_chunk_gives_half_its_items_to_an_idle_worker() -> None:
    # The first chunk's items block for 40 ms each; the other worker runs everything else in
    # no time, then is idle: it must get some of that chunk's items (in order, an item's
    # exception in its place), not wait for the whole chunk on the other worker.
    result = run_launcher(SCRIPTS / "map_split.py", n=3, options=["--root-runs-no-task"])
    assert result.returncode == 0, result.explain()
    line = result.stdout.split("SPLIT ", 1)[1].splitlines()[0]
    assert line.startswith("[1, 2] 6 ValueError('item 6 raised on worker "), result.explain()


@pytest.mark.timeout(60)
def test_classes_rebuilt_where_they_land_travel_again_from_the_root() -> None:
    # DEAP's creator classes are rebuilt by name wherever they are unpickled: once instances
    # came back to the root, its first ones are of a class no module names. Sent with a
    # function of the script (pickled with cloudpickle), they failed to load on the worker
    # ("metaclass conflict"): cloudpickle sent their class by value.
    result = run_launcher(SCRIPTS / "rebuilt_classes.py", n=2, options=["--root-runs-no-task"])
    assert result.returncode == 0, result.explain()
    assert "REBUILT OK 768 [1]" in result.stdout, result.explain()


@pytest.mark.timeout(120)
def test_a_map_over_millions_of_items_keeps_the_roots_memory_bounded() -> None:
    # Drawn whole, the items of this map alone took about 200 MiB on the root.
    result = run_launcher(SCRIPTS / "lazy_map_memory.py", "2000000", n=2)
    assert result.returncode == 0, result.explain()
    grew = int(result.stdout.split("GREW ", 1)[1].split()[0])
    assert grew < 80, result.stdout
