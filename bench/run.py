"""SCOOP against its peers, in one run: the same workloads, 2 workers each, and the goals.

    python bench/run.py [--quick | --guard] [--only NAME...] [--json FILE] [--plot FILE.png]
                        [--original-python PATH]

``nox -s bench`` builds the environments and runs the full comparison. Each system family runs
in a subprocess in its own environment and prints ``BENCH {json}`` lines (see workloads.py); every
runner but the raw floors is the same skeleton (runner.py) with a small adapter per system:

* run_scoop.py under ``python -m scoop_launch -n 2`` (this SCOOP) and under ``python -m scoop
  -n 2`` with the original SCOOP 0.7.2's Python (``--original-python`` or
  ``$SCOOP_BENCH_ORIGINAL_PYTHON``); one launch per workload, its repeats inside;
* run_pools.py: ProcessPoolExecutor, multiprocessing.Pool, loky;
* run_dask.py: dask.distributed LocalCluster(2 workers, 1 thread each, processes);
* run_ray.py: Ray on this machine, ray.init(num_cpus=2), no dashboard, usage stats off;
* run_raw.py: pyzmq floors (a broker farm, a ping-pong);
* deap_onemax.py, broker_scale.py, multihost.py: workloads that are scripts of their own
  (SCRIPTS); multihost.py brings up the test suite's network-namespace ssh hosts (root and
  sshd needed, else a skip line with the reason).

A system that is not installed is skipped with a note. Each figure is the median of the repeats
(5, after a warm-up) with min and max; every goal is the ratio of two figures of this run.
``--guard`` (the test suite's) runs every workload once at a tiny size on SCOOP,
ProcessPoolExecutor and multiprocessing.Pool (and the pyzmq floors), checking results only.
Exit status: 0, or 1 if a system failed (its error is printed; the other figures still count).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _multihost_figures as mh  # noqa: E402  (bench/ must be on the path first)
import report  # noqa: E402
import workloads as w  # noqa: E402

WORKLOADS = [
    "submit",
    "map",
    "latency",
    "tree",
    "lognormal",
    "bytes",
    "shared",
    "startup",
    "deap",
    "broker",
    "multihost",
]
DESCRIPTIONS = {
    "submit": "20000 tiny submit then result()",
    "map": "futures.map of 20000 tiny tasks, default arguments",
    "latency": "one task at a time, submit and wait",
    "tree": "full tree: map + submit + as_completed nested 4 levels, 1772 tasks",
    "lognormal": "2000 tasks with log-normal durations (mean 2 ms)",
    "bytes": "a 64 MiB bytes argument and result",
    "shared": "a 50 MB shared constant used by 1000 tasks",
    "startup": "start to first result, and end of run",
    "deap": "a real client: DEAP eaSimple OneMax, 300 x 40 generations, costly evaluation",
    "broker": "the real broker and 16..1024 simulated workers: cost per task, memory",
    "multihost": "across 3 namespace hosts with real sshd, beside one host and raw TCP",
}
#: Workloads that are a script of their own (not a runner's): its arguments in each mode.
SCRIPTS = {
    "deap": (
        "deap_onemax.py",
        {"full": ["--compare", "--repeats", "3"], "quick": ["--compare", "--repeats", "1"]},
    ),
    "broker": (
        "broker_scale.py",
        {
            "full": ["--repeats", "3"],
            "quick": [
                *("--workers", "16", "256", "--repeats", "1", "--pending", "50000"),
                *("--futures-pending", "0", "--tiny-tasks", "0"),
            ],
        },
    ),
    "multihost": (
        "multihost.py",
        {
            "full": ["--rounds", "2", "--repeats", "2"],
            "quick": ["--rounds", "1", "--repeats", "2", "--tiny", "2000", "--map-tasks", "20000"],
        },
    ),
}
SCOOP = "scoop"
ORIGINAL = "scoop 0.7.2"
PPE = "ProcessPoolExecutor"
MP = "multiprocessing.Pool"
POOLS = [PPE, MP, "loky"]
DASK = "dask"
RAY = "ray"
BROKER = "scoop broker"
RAW = "pyzmq"
#: Systems of the guard run (what the test environment has).
GUARD_SYSTEMS = {SCOOP, PPE, MP, RAW}


@dataclass
class Goal:
    """A goal of the issue: ``numerator / denominator`` (or one figure) against a threshold."""

    workload: str
    text: str
    numerator: tuple[str, str]  # (system, metric)
    denominator: tuple[str, str] | None
    at_least: float | None = None
    at_most: float | None = None
    use: str = "median"  # which statistic of the numerator (shared: the worst repeat)


GOALS = [
    Goal("submit", ">= 2x ProcessPoolExecutor", (SCOOP, "tasks/s"), (PPE, "tasks/s"), 2),
    Goal("submit", ">= 30x dask", (SCOOP, "tasks/s"), (DASK, "tasks/s"), 30),
    Goal("submit", ">= 5x original SCOOP", (SCOOP, "tasks/s"), (ORIGINAL, "tasks/s"), 5),
    Goal(
        "map",
        ">= 10x ProcessPoolExecutor map(chunksize=1)",
        (SCOOP, "tasks/s"),
        (PPE + " map(chunksize=1)", "tasks/s"),
        10,
    ),
    Goal(
        "latency",
        "<= 2x raw pyzmq ping-pong",
        (SCOOP, "latency"),
        ("pyzmq ping-pong (floor)", "latency"),
        at_most=2,
    ),
    Goal(
        "latency",
        "forced remote <= ProcessPoolExecutor",
        (SCOOP + " (forced remote)", "latency"),
        (PPE, "latency"),
        at_most=1,
    ),
    Goal(
        "latency",
        "forced remote <= 2x raw pyzmq ping-pong",
        (SCOOP + " (forced remote)", "latency"),
        ("pyzmq ping-pong (floor)", "latency"),
        at_most=2,
    ),
    Goal(
        "tree",
        "<= original SCOOP (original / scoop >= 1)",
        (ORIGINAL, "wall time"),
        (SCOOP, "wall time"),
        1,
    ),
    Goal(
        "tree",
        ">= 10x faster than dask with worker_client",
        (DASK, "wall time"),
        (SCOOP, "wall time"),
        10,
    ),
    Goal("lognormal", "efficiency >= 0.85", (SCOOP, "efficiency"), None, 0.85),
    # Ahead of Ray on every workload where Ray applies (ratios of this run).
    Goal("submit", ">= Ray", (SCOOP, "tasks/s"), (RAY, "tasks/s"), 1),
    Goal("map", ">= Ray", (SCOOP, "tasks/s"), (RAY, "tasks/s"), 1),
    Goal("latency", "<= Ray", (SCOOP, "latency"), (RAY, "latency"), at_most=1),
    Goal(
        "latency",
        "forced remote <= Ray",
        (SCOOP + " (forced remote)", "latency"),
        (RAY, "latency"),
        at_most=1,
    ),
    Goal("tree", "faster than Ray (ray / scoop >= 1)", (RAY, "wall time"), (SCOOP, "wall time"), 1),
    Goal("lognormal", ">= Ray", (SCOOP, "efficiency"), (RAY, "efficiency"), 1),
    Goal("bytes", ">= Ray", (SCOOP, "throughput"), (RAY, "throughput"), 1),
    Goal(
        "shared", "faster than Ray (ray / scoop >= 1)", (RAY, "wall time"), (SCOOP, "wall time"), 1
    ),
    Goal("startup", "first result <= 0.3 s", (SCOOP, "first result"), None, at_most=0.3),
    Goal(
        "startup",
        "faster than the original (original / scoop >= 1)",
        (ORIGINAL, "first result"),
        (SCOOP, "first result"),
        1,
    ),
    Goal(
        "startup",
        "faster than Ray (ray / scoop >= 1)",
        (RAY, "first result"),
        (SCOOP, "first result"),
        1,
    ),
    Goal("bytes", ">= 1.5x ProcessPoolExecutor", (SCOOP, "throughput"), (PPE, "throughput"), 1.5),
    Goal(
        "shared",
        "each worker receives it once (worst repeat < 2x the constant)",
        (SCOOP, "received per worker"),
        None,
        at_most=1.999,
        use="max",
    ),
    Goal(
        "deap",
        "wall time <= multiprocessing.Pool (pool / scoop >= 1)",
        (MP, "wall time"),
        (SCOOP, "wall time"),
        1,
    ),
    Goal(
        "deap",
        "cpu time <= multiprocessing.Pool (pool / scoop >= 1)",
        (MP, "cpu time"),
        (SCOOP, "cpu time"),
        1,
    ),
    Goal(
        "broker",
        "cost per task flat in the worker count, one task per message (1024 / 16 <= 1.5)",
        (BROKER, "cost ratio N=1024/N=16 batch=1"),
        None,
        at_most=1.5,
    ),
    Goal(
        "broker",
        "cost per task flat in the worker count, 32 tasks per message (1024 / 16 <= 1.5)",
        (BROKER, "cost ratio N=1024/N=16 batch=32"),
        None,
        at_most=1.5,
    ),
    # Beyond one machine (multihost.py): the same 3 processes, workers here or on other hosts.
    Goal(
        "multihost",
        "64 MiB across hosts >= 0.5x raw TCP between the namespaces",
        (mh.ACROSS, mh.BIG),
        (mh.RAW_NS, mh.BIG),
        0.5,
    ),
    Goal(
        "multihost",
        "submit across hosts >= 0.8x one host",
        (mh.ACROSS, "submit tasks/s"),
        (mh.ONE, "submit tasks/s"),
        0.8,
    ),
    Goal(
        "multihost",
        "map across hosts >= 0.8x one host",
        (mh.ACROSS, "map tasks/s"),
        (mh.ONE, "map tasks/s"),
        0.8,
    ),
    Goal(
        "multihost",
        "forced-remote latency across hosts <= 1.25x one host",
        (mh.ACROSS, "forced-remote latency"),
        (mh.ONE, "forced-remote latency"),
        at_most=1.25,
    ),
    Goal(
        "multihost",
        "payload digests cost <= 10% of 64 MiB throughput (one host, digests on / off >= 0.9)",
        (mh.ONE_DIGESTS, mh.BIG),
        (mh.ONE, mh.BIG),
        0.9,
    ),
]


@dataclass
class Run:
    """Everything measured in this run."""

    figures: list[dict[str, Any]] = field(default_factory=list)
    skips: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        """Add one runner line: a figure (aggregated here) or a skip."""
        if "skip" in record:
            self.skips.append(record)
            return
        values = record.pop("values")
        if not values:
            raise ValueError(f"no values in {record}")
        self.figures.append(
            {
                **record,
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "repeats": len(values),
                "values": values,
            }
        )

    def find(self, system: str, metric: str, workload: str) -> dict[str, Any] | None:
        """The figure of ``system`` for ``metric`` in ``workload``, if measured."""
        for figure in self.figures:
            if (figure["system"], figure["metric"], figure["workload"]) == (
                system,
                metric,
                workload,
            ):
                return figure
        return None


# ----------------------------------------------------------------------- running systems


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def has_module(python: str, module: str) -> bool:
    """Whether ``python`` can import ``module``."""
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, env=_env())
    return done.returncode == 0


def run_job(run: Run, label: str, command: list[str], timeout: float, workload: str = "") -> None:
    """Run one runner subprocess and collect its BENCH lines; record a failure as an error."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=BENCH.parent
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr, code = f"timed out after {timeout:.0f} s", -1
    got = 0
    for line in stdout.splitlines():
        if line.startswith(w.MARK):
            run.add(json.loads(line[len(w.MARK) :]))
            got += 1
    took = time.perf_counter() - started
    if code != 0 or not got:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        run.errors.append(
            {"job": label, "workload": workload, "system": label, "error": f"exit {code}: {tail}"}
        )
        print(f"  {label}: FAILED (exit {code}, {took:.1f} s)\n{_indent(tail)}", flush=True)
    else:
        print(f"  {label}: {got} figure(s), {took:.1f} s", flush=True)


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def startup_times(command: list[str], repeats: int, timeout: float) -> tuple[list[float], ...]:
    """Start ``command`` repeats + 1 times (the first is a warm-up): first result, whole run."""
    firsts, wholes = [], []
    for index in range(repeats + 1):
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
            cwd=BENCH.parent,
        )
        assert process.stdout is not None
        first = None
        for line in process.stdout:
            if line.startswith("FIRST"):
                first = time.perf_counter() - start
                if line.split()[1:] != ["-1"]:
                    raise RuntimeError(f"startup: wrong result line {line!r}")
        code = process.wait(timeout)
        whole = time.perf_counter() - start
        if first is None or code != 0:
            raise RuntimeError(f"startup: exit {code}, first result {'seen' if first else 'none'}")
        if index:
            firsts.append(first)
            wholes.append(whole)
    return firsts, wholes


def systems(options: argparse.Namespace) -> dict[str, list[str] | None]:
    """Each system's command prefix (None: not available, with the reason in NOT_AVAILABLE)."""
    python = options.python
    found: dict[str, list[str] | None] = {}
    scoop_ok = has_module(python, "scoop_launch") and has_module(python, "scoop.futures")
    found[SCOOP] = [python, "-m", "scoop_launch", "-n", str(w.WORKERS)] if scoop_ok else None
    if not scoop_ok:
        NOT_AVAILABLE[SCOOP] = f"scoop_launch not importable by {python}"
    original = options.original_python
    if options.guard:
        NOT_AVAILABLE[ORIGINAL] = "not in --guard"
        found[ORIGINAL] = None
    elif not original:
        NOT_AVAILABLE[ORIGINAL] = (
            "no --original-python / $SCOOP_BENCH_ORIGINAL_PYTHON (nox -s bench builds one)"
        )
        found[ORIGINAL] = None
    elif not has_module(original, "scoop._control"):
        NOT_AVAILABLE[ORIGINAL] = f"{original} has no original SCOOP (scoop._control)"
        found[ORIGINAL] = None
    else:
        found[ORIGINAL] = [original, "-m", "scoop", "-n", str(w.WORKERS)]
    for name, module in ((PPE, None), (MP, None), ("loky", "loky"), (DASK, "distributed")):
        if options.guard and name not in GUARD_SYSTEMS:
            NOT_AVAILABLE[name] = "not in --guard"
            found[name] = None
        elif module and not has_module(python, module):
            NOT_AVAILABLE[name] = f"{module} not installed for {python}"
            found[name] = None
        else:
            found[name] = [python]
    if options.guard:
        NOT_AVAILABLE[RAY] = "not in --guard"
        found[RAY] = None
    elif has_module(python, "ray"):
        found[RAY] = [python]
    else:
        NOT_AVAILABLE[RAY] = f"ray not installed for {python}"
        found[RAY] = None
    if has_module(python, "zmq"):
        found[RAW] = [python]
    else:
        NOT_AVAILABLE[RAW] = f"pyzmq not installed for {python}"
        found[RAW] = None
    return found


NOT_AVAILABLE: dict[str, str] = {}


def run_all(options: argparse.Namespace, run: Run) -> None:
    """Every selected workload on every available system."""
    mode = options.mode
    size = w.sizes(mode)
    found = systems(options)
    for name, reason in NOT_AVAILABLE.items():
        print(f"  skipping {name}: {reason}", flush=True)
        run.skips.append({"workload": "*", "system": name, "skip": reason})
    timeout = {"full": 900.0, "quick": 240.0, "guard": 90.0}[mode]
    for workload in options.only or WORKLOADS:
        print(f"{workload}: {DESCRIPTIONS[workload]}", flush=True)
        if workload in SCRIPTS:
            _script(run, workload, options, timeout)
            continue
        jobs: list[tuple[str, list[str]]] = []
        for name in (SCOOP, ORIGINAL):
            prefix = found[name]
            if prefix:
                runner = [str(BENCH / "run_scoop.py"), "--system", name]
                jobs.append((name, [*prefix, *runner]))
        for name in POOLS:
            prefix = found[name]
            if prefix:
                jobs.append((name, [*prefix, str(BENCH / "run_pools.py"), "--system", name]))
        for name, script in ((DASK, "run_dask.py"), (RAY, "run_ray.py")):
            prefix = found[name]
            if prefix:
                jobs.append((name, [*prefix, str(BENCH / script)]))
        if found[RAW] and workload in ("submit", "latency"):
            jobs.append((RAW, [*found[RAW], str(BENCH / "run_raw.py")]))  # type: ignore[list-item]
        for name, prefix in jobs:
            command = [*prefix, "--workload", workload, "--mode", mode]
            if workload == "startup":
                _startup(run, name, command, size["repeats"], timeout)
            else:
                run_job(run, name, command, timeout, workload)


def _script(run: Run, workload: str, options: argparse.Namespace, timeout: float) -> None:
    """A workload that is a script of its own: it runs its systems and prints BENCH lines."""
    script, arguments = SCRIPTS[workload]
    needs = {"deap": "deap"}.get(workload)
    reason = ""
    if options.mode not in arguments:
        reason = f"not in --{options.mode}"
    elif needs and not has_module(options.python, needs):
        reason = f"{needs} not installed for {options.python}"
    if reason:
        print(f"  skipping {workload}: {reason}", flush=True)
        run.skips.append({"workload": workload, "system": "*", "skip": reason})
        return
    command = [options.python, str(BENCH / script), *arguments[options.mode]]
    run_job(run, workload, command, timeout * 2, workload)


def _startup(run: Run, name: str, command: list[str], repeats: int, timeout: float) -> None:
    started = time.perf_counter()
    try:
        firsts, wholes = startup_times(command, repeats, timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        run.errors.append({"job": f"startup {name}", "error": str(exc)})
        print(f"  {name}: FAILED {exc}", flush=True)
        return
    note = "fresh process each time: launch, one tiny task, shut down"
    run.add(
        {
            "workload": "startup",
            "system": name,
            "metric": "first result",
            "unit": "s",
            "values": firsts,
            "note": note,
        }
    )
    run.add(
        {
            "workload": "startup",
            "system": name,
            "metric": "end of run",
            "unit": "s",
            "values": wholes,
            "note": note,
        }
    )
    print(f"  {name}: 2 figure(s), {time.perf_counter() - started:.1f} s", flush=True)


# ------------------------------------------------------------------------------- reporting


def evaluate(run: Run) -> list[dict[str, Any]]:
    """Each goal's ratio from this run's figures, with pass/miss (or why it is n/a)."""
    results = []
    for goal in GOALS:
        top = run.find(*goal.numerator, goal.workload)
        bottom = run.find(*goal.denominator, goal.workload) if goal.denominator else None
        entry: dict[str, Any] = {"workload": goal.workload, "goal": goal.text}
        if top is None or (goal.denominator and bottom is None):
            missing = goal.numerator if top is None else goal.denominator
            entry.update(ratio=None, status="n/a", why=f"no figure for {missing[0]}")  # type: ignore[index]
        else:
            ratio = top[goal.use] / (bottom["median"] if bottom else 1.0)
            ok = (goal.at_least is None or ratio >= goal.at_least) and (
                goal.at_most is None or ratio <= goal.at_most
            )
            entry.update(ratio=ratio, status="pass" if ok else "MISS")
            if goal.at_least is not None:
                entry["target"] = f">= {goal.at_least:g}"
            else:
                entry["target"] = f"<= {goal.at_most:g}"
        results.append(entry)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    group.add_argument(
        "--guard", action="store_true", help="tiny sizes, one repeat, SCOOP + stdlib pools"
    )
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, metavar="NAME", help="workloads")
    parser.add_argument(
        "--json",
        type=Path,
        help="write the figures and goals as JSON here (full run: default bench/latest.json)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="write a PNG of the figures here (full run: default docs/bench-latest.png)",
    )
    parser.add_argument(
        "--original-python",
        default=os.environ.get("SCOOP_BENCH_ORIGINAL_PYTHON"),
        help="a Python with the original SCOOP 0.7.2 installed",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the Python of this SCOOP and the peers"
    )
    options = parser.parse_args()
    options.mode = "guard" if options.guard else "quick" if options.quick else "full"
    if options.mode == "full" and not options.only:  # the committed figures
        options.json = options.json or BENCH / "latest.json"
        options.plot = options.plot or BENCH.parent / "docs" / "bench-latest.png"
    info = report.machine()
    print(
        f"SCOOP benchmark ({options.mode}), {w.WORKERS} workers; {info['nproc']} CPUs "
        f"{info['cpu']}, Python {info['python']}, {info['date']}",
        flush=True,
    )
    started = time.perf_counter()
    run = Run()
    run_all(options, run)
    goals = evaluate(run)
    print()
    print(report.table(run, goals, WORKLOADS))
    print(f"\n{len(run.figures)} figures in {time.perf_counter() - started:.0f} s", flush=True)
    if options.json:
        output = {
            "machine": info,
            "mode": options.mode,
            "workers": w.WORKERS,
            "figures": run.figures,
            "goals": goals,
            "skipped": run.skips,
            "errors": run.errors,
        }
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(output, indent=1) + "\n")
        print(f"wrote {options.json}")
    if options.plot:
        options.plot.parent.mkdir(parents=True, exist_ok=True)
        if report.plot(run, options.plot, info, SCOOP):
            print(f"wrote {options.plot}")
        broker_plot = options.plot.with_name("bench-broker.png")
        if report.plot_broker(run, broker_plot, info):
            print(f"wrote {broker_plot}")
        multihost_plot = options.plot.with_name("bench-multihost.png")
        if report.plot_multihost(run, multihost_plot, info):
            print(f"wrote {multihost_plot}")
    if run.errors:
        print(f"{len(run.errors)} system(s) failed: " + ", ".join(e["job"] for e in run.errors))
        # A peer's failure that no goal needs (the original SCOOP now and then loses its
        # output) is in the table and said above; SCOOP's own, or a goal left n/a, fails the run.
        peers = {ORIGINAL, *POOLS, DASK, RAY, RAW}
        if all(e["job"].removeprefix("startup ") in peers for e in run.errors) and all(
            g["ratio"] is not None for g in goals
        ):
            print("only peers failed, on figures no goal needs: the run stands")
            return 0
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
