"""The benchmark's report: the Markdown table, the machine, and the plots (run.py's output)."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path
from typing import Any


def _num(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def table(run: Any, goals: list[dict[str, Any]], workloads: list[str]) -> str:
    """The figures and goals as a Markdown table (the README's)."""
    lines = [
        "| workload | system | metric | median | min | max | n | note |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for workload in workloads:
        for fig in (f for f in run.figures if f["workload"] == workload):
            unit = f" ({fig['unit']})" if fig["unit"] not in ("", fig["metric"]) else ""
            lines.append(
                f"| {workload} | {fig['system']} | {fig['metric']}{unit} | {_num(fig['median'])}"
                f" | {_num(fig['min'])} | {_num(fig['max'])} | {fig['repeats']} | {fig['note']} |"
            )
        for skip in (s for s in run.skips if s["workload"] == workload):
            lines.append(f"| {workload} | {skip['system']} | - | - | - | - | - | {skip['skip']} |")
        for error in (e for e in run.errors if e.get("workload") == workload):
            last = error["error"].strip().splitlines()[-1][:120].replace("|", "/")
            lines.append(f"| {workload} | {error['system']} | - | - | - | - | - | failed: {last} |")
    lines += [
        "",
        "| workload | goal | ratio | target | result |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for goal in goals:
        ratio = "-" if goal["ratio"] is None else f"{goal['ratio']:.2f}"
        status = goal["status"] + (f" ({goal['why']})" if "why" in goal else "")
        lines.append(
            f"| {goal['workload']} | {goal['goal']} | {ratio} | {goal.get('target', '')} "
            f"| {status} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Where the figures come from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def plot(run: Any, path: Path, info: dict[str, str], scoop: str) -> bool:
    """One panel per workload and metric, the systems side by side (median, min..max bars);
    False (nothing written) if there is no such figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, str, str]] = []
    for fig in run.figures:
        if fig["workload"] in ("broker", "multihost"):
            continue  # their own pictures: plot_broker, plot_multihost
        key = (fig["workload"], fig["metric"], fig["unit"])
        if key not in panels:
            panels.append(key)
    if not panels:
        return False
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    figure, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (workload, metric, unit) in zip(axes.flat, panels, strict=False):
        figs = [f for f in run.figures if (f["workload"], f["metric"]) == (workload, metric)]
        names = [f["system"] for f in figs]
        medians = [f["median"] for f in figs]
        low = [f["median"] - f["min"] for f in figs]
        high = [f["max"] - f["median"] for f in figs]
        colors = [
            "tab:red" if n == scoop or n.startswith(scoop + " (") else "tab:blue" for n in names
        ]
        ax.barh(range(len(figs)), medians, xerr=[low, high], color=colors, capsize=3)
        ax.set_yticks(range(len(figs)), names, fontsize=8)
        ax.invert_yaxis()
        if metric == "tasks/s" and min(medians) > 0 and max(medians) / min(medians) > 50:
            ax.set_xscale("log")
        ax.set_title(f"{workload}: {metric}" + (f" ({unit})" if unit else ""), fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    figure.suptitle(
        f"SCOOP vs peers, 2 workers; {info['nproc']} CPUs {info['cpu']}, Python "
        f"{info['python']}, {info['date']} (median, bars min..max; red: this SCOOP)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def plot_broker(run: Any, path: Path, info: dict[str, str]) -> bool:
    """The broker's cost per task against the number of workers, one line per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for fig in run.figures:
        found = re.fullmatch(r"cost per task N=(\d+) batch=(\d+)", fig["metric"])
        if fig["workload"] == "broker" and found:
            lines.setdefault(int(found[2]), []).append((int(found[1]), fig))
    if not lines:
        return False
    figure, ax = plt.subplots(figsize=(7, 4))
    for batch, points in sorted(lines.items()):
        points.sort(key=lambda point: point[0])
        xs = [n for n, _ in points]
        medians = [f["median"] for _, f in points]
        spread = [
            [f["median"] - f["min"] for _, f in points],
            [f["max"] - f["median"] for _, f in points],
        ]
        ax.errorbar(xs, medians, yerr=spread, marker="o", capsize=3, label=f"{batch} per message")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("simulated workers")
    ax.set_ylabel("broker CPU per task (us)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(
        f"The broker at scale; {info['nproc']} CPUs {info['cpu']}, {info['date']}", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _bars(ax: Any, figs: dict[tuple[str, str], Any], keys: list[tuple[str, str]]) -> None:
    """Horizontal bars of the medians (min..max), SCOOP red, the raw floors grey."""
    keys = [key for key in keys if key in figs]
    chosen = [figs[key] for key in keys]
    low = [f["median"] - f["min"] for f in chosen]
    high = [f["max"] - f["median"] for f in chosen]
    colors = ["tab:red" if system.startswith("scoop") else "tab:gray" for system, _ in keys]
    ax.barh(
        range(len(keys)), [f["median"] for f in chosen], xerr=[low, high], color=colors, capsize=3
    )
    ax.set_yticks(range(len(keys)), [system for system, _ in keys], fontsize=8)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=8)
    medians = [f["median"] for f in chosen]
    if medians and min(medians) > 0 and max(medians) / min(medians) > 50:
        ax.set_xscale("log")  # a stalled run must not flatten the others


def _breakdown(
    ax: Any, figs: dict[tuple[str, str], Any], layouts: list[str], metric: str, wall: Any
) -> None:
    """Per layout: the wall time (``wall(system)``) beside the root's, the broker's and the
    workers' CPU time (``metric`` with the part's name)."""
    parts = ["root", "broker", "workers"]
    width = 0.8 / (len(parts) + 1)
    highest, lowest = 0.0, float("inf")
    for index, part in enumerate(["wall", *parts]):
        values = []
        for system in layouts:
            fig = figs.get((system, metric.format(part)))
            values.append(wall(system) if part == "wall" else fig["median"] if fig else 0.0)
        xs = [i + (index - len(parts) / 2) * width for i in range(len(layouts))]
        ax.bar(xs, values, width, label=part if part == "wall" else f"{part} CPU")
        highest = max(highest, *values)
        lowest = min(lowest, *(v for v in values if v > 0), highest)
    names = [system.removeprefix("scoop, ").replace(", ", "\n") for system in layouts]
    ax.set_xticks(range(len(layouts)), names, fontsize=8)
    if lowest > 0 and highest / lowest > 50:  # a stalled run must not flatten the others
        ax.set_yscale("log")
        ax.set_ylim(lowest / 2, highest * 10)
    else:
        ax.set_ylim(0, highest * 1.25)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper left", ncols=4)


def plot_multihost(run: Any, path: Path, info: dict[str, str]) -> bool:
    """SCOOP across hosts beside one host and raw TCP: one panel per workload, and where the
    time goes (wall time beside each process's CPU time, and the SHA-256 digests)."""
    figs = {(f["system"], f["metric"]): f for f in run.figures if f["workload"] == "multihost"}
    layouts = [s for s, m in figs if m == "submit tasks/s"]
    raws = [s for s, m in figs if m == "round trip"]
    if not layouts and not raws:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def median(system: str, metric: str) -> float:
        return float(figs[(system, metric)]["median"]) if (system, metric) in figs else 0.0

    def per(value: float, top: float) -> float:
        return top / value if value else 0.0

    figure, axes = plt.subplots(2, 4, figsize=(24, 7.5))
    panels = [
        ("submit tasks/s", [(s, "submit tasks/s") for s in layouts]),
        ("map tasks/s", [(s, "map tasks/s") for s in layouts]),
        (
            "one task there and back (us): SCOOP forced remote, raw TCP 64 bytes",
            [(s, "forced-remote latency") for s in layouts] + [(s, "round trip") for s in raws],
        ),
        ("64 MiB there and back (GB/s)", [(s, "64 MiB throughput") for s in [*layouts, *raws]]),
    ]
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        _bars(ax, figs, keys)
        ax.set_title(title, fontsize=10)
    breakdowns = [
        (
            "64 MiB round trip: wall and CPU time (ms)",
            "64 MiB: {} CPU per round trip",
            lambda s: per(median(s, "64 MiB throughput"), 2 * 64 * 2**20 / 1e6),
            ("difference", "64 MiB: 4 digests per round trip"),
        ),
        (
            "tiny tasks (submit): per task (us), wall = 1 / rate",
            "submit: {} CPU per task",
            lambda s: per(median(s, "submit tasks/s"), 1e6),
            ("difference", "tiny task: 4 digests"),
        ),
        (
            "one task at a time (forced remote): per round trip (us)",
            "latency: {} CPU per round trip",
            lambda s: median(s, "forced-remote latency"),
            None,
        ),
    ]
    for ax, (title, metric, wall, digests) in zip(axes[1], breakdowns, strict=False):
        _breakdown(ax, figs, layouts, metric, wall)
        shown = digests in figs
        if shown:
            ax.axhline(figs[digests]["median"], color="black", linestyle="--", linewidth=1)
        ax.set_title(title + (" (dashed: 4 SHA-256 digests)" if shown else ""), fontsize=10)
    axes[1][3].axis("off")
    figure.suptitle(
        f"SCOOP across hosts (network namespaces, real sshd) against one host and raw TCP; "
        f"{info['nproc']} CPUs {info['cpu']}, {info['date']} (median, bars min..max)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True
