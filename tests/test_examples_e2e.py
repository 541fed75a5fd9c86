"""Each example of examples/ through the launcher, with 1, 2 and 4 workers."""

from __future__ import annotations

import re

import pytest
from scoop_e2e_support import EXAMPLES, installed_transport_names, run_launcher

EXPECTED = {
    "hello_map.py": ["hello_map: sum of squares of 0..15 = 1240"],
    "full_tree.py": ["full_tree: 256 leaves, total = 32640"],
    "monte_carlo_pi.py": ["monte_carlo_pi: samples=200000 chunks=20 seed=42 pi~3.145500"],
    "progress_bar.py": ["progress_bar: 200 results, sum = 2646700"],
    "map_reduce.py": [
        "map_reduce: sum of squares 1..10 = 385",
        "map_reduce: scan of 1..6 = [1, 3, 6, 10, 15, 21]",
        "map_reduce: top words: the=4, dog=2, fox=2",
    ],
    "shared_constants.py": [
        "setting a constant twice is refused: SharedConstantError",
        "shared_constants: scores [136, 110, 250, 220, 180], total 8960",
    ],
    "exceptions.py": [
        "exceptions: direct: caught ValueError: negative input: -1",
        "exceptions: nested: caught ValueError: negative input: -2",
        "exceptions: batch: 8 ValueErrors: ['negative input: -10', 'negative input: -20', "
        "'negative input: -30', 'negative input: -40', 'negative input: -50', "
        "'negative input: -60', 'negative input: -70', 'negative input: -80']",
        "exceptions: after the errors the pool still works: [0, 1, 2, 3, 4]",
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example(example: str, n: int) -> None:
    result = run_launcher(EXAMPLES / example, n=n)
    assert result.returncode == 0, result.explain()
    lines = result.stdout.splitlines()
    for expected in EXPECTED[example]:
        assert expected in lines, f"missing line {expected!r}\n{result.explain()}"
    assert "Traceback" not in result.stderr, result.explain()
    # The example's own lines are deterministic: no other line carries its prefix.
    prefix = example[:-3] + ":"
    own = [line for line in lines if line.startswith(prefix)]
    assert own == [e for e in EXPECTED[example] if e.startswith(prefix)], own


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", installed_transport_names())
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_over_each_transport(example: str, transport: str) -> None:
    result = run_launcher(EXAMPLES / example, n=2, env={"SCOOP_TRANSPORT": transport})
    assert result.returncode == 0, result.explain()
    lines = result.stdout.splitlines()
    for expected in EXPECTED[example]:
        assert expected in lines, f"missing line {expected!r}\n{result.explain()}"


@pytest.mark.timeout(60)
def test_monte_carlo_pi_is_seedable() -> None:
    a = run_launcher(EXAMPLES / "monte_carlo_pi.py", "40000", "8", "7", n=2)
    b = run_launcher(EXAMPLES / "monte_carlo_pi.py", "40000", "8", "7", n=1)
    assert a.returncode == b.returncode == 0, a.explain() + b.explain()
    line = re.search(r"^monte_carlo_pi: .*$", a.stdout, re.M)
    assert line and line.group(0) in b.stdout.splitlines()
    assert "seed=7" in line.group(0)
