"""Two builds of SCOOP on the same workloads, in turns: how much faster or slower is one?

    python bench/compare_builds.py --before OLD/.venv/bin/python --after .venv/bin/python \
        [--only submit map tree] [--rounds 5] [--quick]

Each round runs ``bench/run.py --only ...`` once with each build's Python (SCOOP's rows only
are compared), alternating which goes first, so that the machine's drift hits both alike. It
prints, per workload, the median over rounds of each build's median and the ratio after/before
(for tasks/s higher is better; for a wall time lower is better). Used to check that a change
costs no more than it should (e.g. fault tolerance: at most 10% on the tiny-task and tree
workloads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _scoop_figures(python: str, only: list[str], quick: bool) -> dict[str, tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, str(HERE / "run.py"), "--python", python, "--json", str(out)]
        command += ["--only", *only] + (["--quick"] if quick else [])
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        figures = json.loads(out.read_text())["figures"]
    return {
        f["workload"]: (f["unit"], f["median"])
        for f in figures
        if f["system"] == "scoop" and f.get("median") is not None
    }


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="Python of the build to compare with")
    parser.add_argument("--after", required=True, help="Python of the build under test")
    parser.add_argument("--only", nargs="+", default=["submit", "map", "tree"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="bench/run.py's smaller sizes")
    options = parser.parse_args()
    runs: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    units: dict[str, str] = {}
    for round_ in range(options.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for build in order:
            python = options.before if build == "before" else options.after
            for workload, (unit, value) in _scoop_figures(
                python, options.only, options.quick
            ).items():
                units[workload] = unit
                runs[build].setdefault(workload, []).append(value)
        print(f"round {round_ + 1}/{options.rounds} done", file=sys.stderr)
    print("| workload | unit | before | after | after / before | change |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for workload in options.only:
        if workload not in units:
            continue
        before = statistics.median(runs["before"][workload])
        after = statistics.median(runs["after"][workload])
        ratio = after / before
        better = ratio >= 1 if units[workload].endswith("/s") else ratio <= 1
        slower = (1 / ratio - 1) if units[workload].endswith("/s") else ratio - 1
        change = "faster or same" if better else f"{slower:.1%} slower"
        cells = [workload, units[workload], f"{before:.4g}", f"{after:.4g}", f"{ratio:.3f}", change]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
