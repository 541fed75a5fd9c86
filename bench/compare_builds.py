"""Two builds of SCOOP on the same workloads, in turns: how much faster or slower is one?

    python bench/compare_builds.py --before OLD/.venv/bin/python --after .venv/bin/python \
        [--only submit map tree] [--rounds 5] [--quick]

Each round runs SCOOP's side of each workload (``bench/run_scoop.py`` under the launcher, as
``bench/run.py`` runs it) once with each build's Python, alternating which goes first, so that
the machine's drift hits both alike. It
prints, per workload, the median and the best over rounds of each build's median, and the ratio
after/before (for tasks/s higher is better; for a wall time lower is better). The best is the
steadier figure on a shared machine, whose speed jumps between levels (figures of one build
often fall into two groups, one about twice the other): each build reaches the fast level in
some round. Used to check that a change
costs no more than it should (e.g. fault tolerance: at most 10% on the tiny-task and tree
workloads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from workloads import MARK, WORKERS  # noqa: E402  (bench/ is not a package)


def _scoop_figures(python: str, only: list[str], quick: bool) -> dict[str, tuple[str, float]]:
    """SCOOP's median figure of each workload, run by ``python`` (as bench/run.py runs it)."""
    figures = {}
    for workload in only:
        command = [python, "-m", "scoop_launch", "-n", str(WORKERS), str(HERE / "run_scoop.py")]
        command += ["--system", "scoop", "--workload", workload]
        command += ["--mode", "quick" if quick else "full"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
        for line in done.stdout.splitlines():
            if line.startswith(MARK):
                record = json.loads(line[len(MARK) :])
                if record.get("system") == "scoop" and record.get("values"):
                    figures[workload] = (record["unit"], statistics.median(record["values"]))
    return figures


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
    for build, figures in runs.items():
        for workload, values in figures.items():
            shown = ", ".join(f"{v:.4g}" for v in values)
            print(f"{build} {workload}: {shown}", file=sys.stderr)
    print("| workload | unit | statistic | before | after | after / before | change |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for workload in options.only:
        if workload not in units:
            continue
        rate = units[workload].endswith("/s")  # higher is better; else a time, lower is better
        best = max if rate else min
        for statistic, pick in (("median", statistics.median), ("best", best)):
            before = pick(runs["before"][workload])
            after = pick(runs["after"][workload])
            ratio = after / before
            slower = (1 / ratio - 1) if rate else ratio - 1
            change = "faster or same" if slower <= 0 else f"{slower:.1%} slower"
            cells = [workload, units[workload], statistic, f"{before:.4g}", f"{after:.4g}"]
            print("| " + " | ".join([*cells, f"{ratio:.3f}", change]) + " |")


if __name__ == "__main__":
    main()
