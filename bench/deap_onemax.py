"""A real client: DEAP's OneMax (eaSimple) with a costly evaluation, on SCOOP and its peers.

DEAP's own example (examples/ga/onemax.py, onemax_mp.py): 100-bit individuals, population 300,
40 generations of eaSimple (cxTwoPoint, mutFlipBit indpb=0.05, selTournament tournsize=3,
cxpb 0.5, mutpb 0.2), seed 64. The evaluation counts the ones EVAL_ROUNDS times over in pure
Python, about 1.7 ms, so that the ~7400 evaluations of a run take ~13 s serially. The evaluations
go through ``toolbox.map``, as a new user would plug each system in:

    python -m scoop_launch -n 2 bench/deap_onemax.py scoop    # toolbox.map = futures.map
    python bench/deap_onemax.py pool                          # multiprocessing.Pool(2).map
    python bench/deap_onemax.py ppe                           # ProcessPoolExecutor(2).map
    python bench/deap_onemax.py serial                        # builtin map

Each run checks its result against the serial one (best fitness and a checksum of the final
population: the GA's randomness is all in the root, the map keeps the order) and prints a
``RESULT {json}`` line, with the GA's wall time and the part of it spent in maps. The driver runs
every variant as a subprocess, ``--repeats`` times in turn, and measures its wall time and the CPU
time of its whole process tree (user + system, from ``getrusage(RUSAGE_CHILDREN)`` around each
subprocess: SCOOP's launcher and the pools wait for their processes, so theirs is included;
``--proc-check`` also adds up /proc while it runs). It also says how much CPU other processes
used meanwhile (``other_cpu`` in the BENCH lines): on a shared machine a run with much is not
worth comparing, and ``--wait-quiet`` starts each run only once the CPUs are idle.

    python bench/deap_onemax.py --compare [--repeats 3] [--only scoop pool] [--proc-check]
                                          [--wait-quiet SECONDS]

It prints a table (median, min, max) and ``BENCH {json}`` lines as bench/workloads.py's
``emit()`` (workload "deap"; metrics "wall time" and "cpu time", in seconds).
Standard library and deap only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import Pool
from typing import Any

from deap import algorithms, base, creator, tools  # type: ignore[import-untyped]

WORKERS = 2
POPULATION = 300
GENERATIONS = 40
BITS = 100
CXPB = 0.5
MUTPB = 0.2
SEED = 64
#: Passes over the individual per evaluation: about 1.7 ms of pure Python here.
EVAL_ROUNDS = 1800
#: The serial run's outcome, which every mode must reproduce: best fitness, evaluations, and
#: a CRC-32 of the final population's bits.
EXPECTED = {"best": 100.0, "evaluations": 7420, "checksum": 568333529}

MARK = "BENCH "
RESULT = "RESULT "
WORKLOAD = "deap"
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(__file__)

# At the top level: SCOOP's workers import this script (not as __main__), and a Pool's or a
# ProcessPoolExecutor's unpickle individuals of these classes.
if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
    creator.create("Individual", list, fitness=creator.FitnessMax)


def eval_one_max(individual: list[int]) -> tuple[int]:
    """OneMax's fitness (the number of ones), made costly: counted EVAL_ROUNDS times."""
    total = 0
    for _ in range(EVAL_ROUNDS):
        total = 0
        for bit in individual:
            total += bit
    return (total,)


def make_toolbox(mapper: Callable[..., Iterable[Any]]) -> base.Toolbox:
    """DEAP's OneMax toolbox, with ``mapper`` as its map."""
    toolbox = base.Toolbox()
    toolbox.register("attr_bool", random.randint, 0, 1)
    toolbox.register(
        "individual",
        tools.initRepeat,
        creator.Individual,  # made by creator.create
        toolbox.attr_bool,
        BITS,
    )
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("evaluate", eval_one_max)
    toolbox.register("mate", tools.cxTwoPoint)
    toolbox.register("mutate", tools.mutFlipBit, indpb=0.05)
    toolbox.register("select", tools.selTournament, tournsize=3)
    toolbox.register("map", mapper)
    return toolbox


def evolve(mapper: Callable[..., Iterable[Any]]) -> dict[str, Any]:
    """Run eaSimple with ``mapper`` as the toolbox's map; its outcome and wall time."""
    evaluations = 0
    in_maps = 0.0

    def counting_map(fn: Callable[..., Any], items: list[Any]) -> Iterator[Any]:
        # The results are taken here (eaSimple takes them all at once anyway), to time the maps.
        nonlocal evaluations, in_maps
        evaluations += len(items)
        began = time.perf_counter()
        results = list(mapper(fn, items))
        in_maps += time.perf_counter() - began
        return iter(results)

    toolbox = make_toolbox(counting_map)
    random.seed(SEED)
    start = time.perf_counter()
    population = toolbox.population(n=POPULATION)
    hof = tools.HallOfFame(1)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("avg", statistics.fmean)
    stats.register("max", max)
    population, _ = algorithms.eaSimple(
        population,
        toolbox,
        cxpb=CXPB,
        mutpb=MUTPB,
        ngen=GENERATIONS,
        stats=stats,
        halloffame=hof,
        verbose=False,
    )
    wall = time.perf_counter() - start
    bits = bytes(bit for ind in population for bit in ind)
    return {
        "best": hof[0].fitness.values[0],
        "evaluations": evaluations,
        "checksum": zlib.crc32(bits),
        "wall": wall,
        "in_maps": in_maps,
    }


def run_mode(mode: str) -> dict[str, Any]:
    """Run the GA with one system's map."""
    if mode == "serial":
        return evolve(map)
    if mode == "pool":
        with Pool(WORKERS) as pool:
            return evolve(pool.map)
    if mode == "ppe":
        with ProcessPoolExecutor(WORKERS) as executor:
            return evolve(executor.map)
    if mode == "scoop":
        from scoop import futures

        return evolve(futures.map)
    raise ValueError(f"unknown mode {mode!r}")


def check(outcome: dict[str, Any]) -> None:
    """Every mode must find what the serial run finds."""
    got = {key: outcome[key] for key in EXPECTED}
    if got != EXPECTED:
        raise AssertionError(f"outcome {got} differs from the serial run's {EXPECTED}")


# ------------------------------------------------------------------------------------ driver


#: Variant: (system name as bench/run.py names it, mode, command).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "scoop": (
        "scoop",
        [sys.executable, "-m", "scoop_launch", "-n", str(WORKERS), SCRIPT, "scoop"],
    ),
    "pool": ("multiprocessing.Pool", [sys.executable, SCRIPT, "pool"]),
    "ppe": ("ProcessPoolExecutor", [sys.executable, SCRIPT, "ppe"]),
    "serial": ("serial", [sys.executable, SCRIPT, "serial"]),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (every process), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICKS


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``root`` and every descendant, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        pid = int(name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: times[pid] for pid in tree if pid in times}


class ProcSampler:
    """Adds up the CPU time of a process tree from /proc while it runs (a cross-check).

    Keeps the last reading of each process; what a process used after its last reading (up to
    one interval) is missed, so the sum is a lower bound.
    """

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last.update(_tree_cpu(self.root))
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.last.values())


def wait_quiet(most: float, share: float = 0.1) -> None:
    """Wait until other processes use less than ``share`` of a core (over 2 s), at most ``most`` s.

    On a shared machine, what another job uses meanwhile is taken from the runs measured.
    """
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = _machine_cpu()
        time.sleep(2.0)
        if _machine_cpu() - before < 2.0 * share:
            return


def run_once(variant: str, proc_check: bool) -> dict[str, Any]:
    """Run one variant as a subprocess: its outcome, wall time and process-tree CPU time."""
    _, command = VARIANTS[variant]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")]))
    cpu_before = _children_cpu()
    machine_before = _machine_cpu()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    sampler = ProcSampler(process.pid) if proc_check else None
    out, _ = process.communicate(timeout=600)
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    others = _machine_cpu() - machine_before - cpu  # noise: what other processes used meanwhile
    proc_cpu = sampler.stop() if sampler is not None else None
    if process.returncode != 0:
        raise RuntimeError(f"{variant} exited with {process.returncode}:\n{out}")
    lines = [line for line in out.splitlines() if line.startswith(RESULT)]
    if len(lines) != 1:
        raise RuntimeError(f"{variant} printed no RESULT line:\n{out}")
    outcome: dict[str, Any] = json.loads(lines[0][len(RESULT) :])
    check(outcome)
    outcome.update(process_wall=wall, cpu=cpu, proc_cpu=proc_cpu, others=others)
    return outcome


def emit(system: str, metric: str, values: list[float], note: str, **extra: Any) -> None:
    """One figure's raw values, as bench/workloads.py's emit() prints them for run.py."""
    record = {
        "workload": WORKLOAD,
        "system": system,
        "metric": metric,
        "unit": "s",
        "values": values,
        "note": note,
        **extra,
    }
    print(MARK + json.dumps(record), flush=True)


def _stat(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):6.2f} - {max(values):6.2f})"


def compare(variants: list[str], repeats: int, proc_check: bool, quiet: float = 0.0) -> None:
    """Run each variant ``repeats`` times (interleaved), then print the table and BENCH lines."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for index in range(repeats):
        for variant in variants:
            if quiet:
                wait_quiet(quiet)
            outcome = run_once(variant, proc_check)
            runs[variant].append(outcome)
            extra = "" if outcome["proc_cpu"] is None else f", /proc {outcome['proc_cpu']:.2f} s"
            print(
                f"  [{index + 1}/{repeats}] {variant:6} wall {outcome['process_wall']:.2f} s, "
                f"GA {outcome['wall']:.2f} s, cpu {outcome['cpu']:.2f} s{extra}; "
                f"other processes used {outcome['others']:.2f} s of CPU meanwhile",
                file=sys.stderr,
                flush=True,
            )
    head = f"{'system':22} {'wall time s: median (min - max)':>32} {'cpu time s':>26}"
    print(head)
    print("-" * len(head))
    for variant in variants:
        walls = [r["process_wall"] for r in runs[variant]]
        cpus = [r["cpu"] for r in runs[variant]]
        print(f"{VARIANTS[variant][0]:22} {_stat(walls):>32} {_stat(cpus):>26}")
    note = (
        f"eaSimple OneMax, population {POPULATION}, {GENERATIONS} generations, "
        f"{EXPECTED['evaluations']} evaluations of ~1.7 ms, {WORKERS} workers; whole process"
    )
    for variant in variants:
        system = VARIANTS[variant][0]
        others = {"other_cpu": [round(r["others"], 3) for r in runs[variant]]}
        emit(system, "wall time", [r["process_wall"] for r in runs[variant]], note, **others)
        emit(
            system,
            "cpu time",
            [r["cpu"] for r in runs[variant]],
            note + " tree, user+system",
            **others,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=sorted(VARIANTS), help="run one system")
    parser.add_argument("--compare", action="store_true", help="run every system, and compare")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each system (default 3)")
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="these systems")
    parser.add_argument(
        "--proc-check", action="store_true", help="also add up the tree's CPU time from /proc"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait (at most SECONDS) until other processes leave the CPUs idle",
    )
    options = parser.parse_args(argv)
    if options.compare:
        compare(
            options.only or list(VARIANTS), options.repeats, options.proc_check, options.wait_quiet
        )
        return 0
    if options.mode is None:
        parser.error("give a mode, or --compare")
    outcome = run_mode(options.mode)
    print(RESULT + json.dumps({"mode": options.mode, **outcome}), flush=True)
    check(outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
