"""Seeing what a run did, end to end: --trace, --report (in a real browser), --stats, --debug.

The trace is checked for what makes it readable: every worker a named track, every task a
slice (tasks that waited have several), slices of a track that never overlap, every submit a
flow arrow from the submitting slice to the subtask's first slice, the broker's counters.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from scoop_e2e_support import (
    ROOT,
    SCRIPTS,
    kill_marked,
    marked_env,
    new_marker,
    run_command,
    run_launcher,
)

SCRIPT = SCRIPTS / "traced_tree.py"


def _events(path: Path) -> list[dict[str, Any]]:
    trace = json.loads(path.read_text())
    assert isinstance(trace["traceEvents"], list)
    return list(trace["traceEvents"])


def check_trace(
    events: list[dict[str, Any]],
    workers: int,
    raised: tuple[str, ...] = ("ValueError", "ValueError"),
) -> dict[int, str]:
    """Assert the trace's structure; return the name of each process track."""
    names = {
        e["pid"]: e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    assert any(name.startswith("broker") for name in names.values()), names
    for index in range(workers):
        assert any(name.startswith(f"worker {index}") and "(" in name for name in names.values()), (
            names
        )
    slices = [e for e in events if e["ph"] == "X"]
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in slices:
        by_pid[event["pid"]].append(event)
        assert event["pid"] in names, event
        assert {"task", "function"} <= event["args"].keys(), event
    for pid, track in by_pid.items():  # one greenlet runs at a time: slices never overlap
        track.sort(key=lambda e: e["ts"])
        for before, after in itertools.pairwise(track):
            assert before["ts"] + before["dur"] <= after["ts"] + 0.5, (names[pid], before, after)
    # 0x0: the root's own code; -0x1: done-callbacks the scheduler ran (neither is a task).
    ran = {event["args"]["task"] for event in slices} - {"0x0", "-0x1"}
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert set(starts) == set(ends) == ran, "a task without a slice, or a submit without a flow"
    first_slice: dict[str, dict[str, Any]] = {}
    for event in sorted(slices, key=lambda e: e["ts"]):
        first_slice.setdefault(event["args"]["task"], event)
    for task, start in starts.items():
        end = ends[task]
        assert end["bp"] == "e" and end["pid"] == first_slice[task]["pid"], (start, end)
        # The arrow leaves from inside the slice of the task that submitted it.
        parent = first_slice[task]["args"].get("parent")
        assert parent is not None, first_slice[task]
        assert any(
            s["pid"] == start["pid"]
            and s["args"]["task"] == parent
            and s["ts"] - 0.5 <= start["ts"] <= s["ts"] + s["dur"] + 0.5
            for s in by_pid[start["pid"]]
        ), (start, parent)
    assert any(e["ph"] == "C" and e["name"] == "broker" for e in events)
    failed = [e for e in slices if e["args"].get("raised")]
    failures = sorted({e["args"]["task"]: e["args"]["raised"] for e in failed}.values())
    assert tuple(failures) == raised, failed
    return names


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["", "client"])
def test_the_trace_has_every_task_every_submit_and_every_worker(tmp_path: Path, mode: str) -> None:
    trace = tmp_path / "trace.json"
    options = ["--trace", str(trace)] + (["--root-runs-no-task"] if mode else [])
    result = run_launcher(SCRIPT, n=3, options=options)
    assert result.returncode == 0 and "DONE" in result.stdout, result.explain()
    assert f"trace written to {trace}" in result.stderr, result.explain()
    events = _events(trace)
    names = check_trace(events, 3)
    root = next(pid for pid, name in names.items() if name.startswith("worker 0"))
    on_root = {e["name"] for e in events if e["ph"] == "X" and e["pid"] == root}
    if mode == "client":
        assert on_root == {"main"}, on_root  # the root ran its own code and no task
    functions = {e["name"] for e in events if e["ph"] == "X"}
    assert {"main", "node", "leaf", "map(abs)"} <= functions, functions


@pytest.mark.timeout(120)
def test_stats_print_a_table_per_worker(tmp_path: Path) -> None:
    result = run_launcher(SCRIPT, n=2, options=["--stats"])
    assert result.returncode == 0, result.explain()
    lines = result.stderr.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.startswith("worker ") and "busy" in line
    )
    assert lines[header + 1].startswith("worker 0, root") and lines[header + 2].startswith(
        "worker 1"
    )
    assert "parallel efficiency" in lines[header + 3], result.stderr


@pytest.mark.timeout(120)
def test_debug_writes_the_trace_and_the_report_into_a_directory(tmp_path: Path) -> None:
    result = run_launcher(SCRIPT, n=2, options=["--debug"], cwd=tmp_path)
    assert result.returncode == 0, result.explain()
    [directory] = [p for p in tmp_path.iterdir() if p.name.startswith("scoop-debug-")]
    check_trace(_events(directory / "trace.json"), 2)
    assert "<svg" in (directory / "report.html").read_text()


@pytest.mark.timeout(120)
def test_an_executor_traces_its_client_and_its_workers(tmp_path: Path) -> None:
    trace, report = tmp_path / "trace.json", tmp_path / "report.html"
    program = (
        "import sys, time, scoop\n"
        "from scoop import futures\n"
        "def leaf(x):\n"
        "    time.sleep(0.002)\n"
        "    if x == 13:\n"
        "        raise ValueError(x)\n"
        "    return x\n"
        "def node(n):\n"
        "    return sum(futures.map(node, [n - 1] * 3)) if n else 1\n"
        "with scoop.Executor(2, trace=sys.argv[1], report=sys.argv[2]) as executor:\n"
        "    assert executor.submit(node, 3).result() == 27\n"
        "    assert sum(executor.map(abs, range(50))) == sum(range(50))\n"
        "    fs = [executor.submit(leaf, i) for i in range(20)]\n"
        "    print('DONE', sum(1 for f in fs if f.exception()))\n"
    )
    out = run_command([sys.executable, "-c", program, str(trace), str(report)], timeout=90)
    assert "DONE 1" in out.stdout, out.explain()
    events = _events(trace)
    names = check_trace(events, 3, raised=("ValueError",))
    client = next(pid for pid, name in names.items() if "Executor client" in name)
    # It runs no task: its track shows only its submits (where the arrows start).
    assert {e["name"] for e in events if e["ph"] == "X" and e["pid"] == client} == {"submit"}
    assert "a scoop.Executor" in report.read_text()


# -- the report in a real browser --------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0:  # CI runs as root: install Debian's package
        subprocess.run(["bash", str(ROOT / ".ci" / "setup-browser.sh")], check=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is needed to test the report: run .ci/setup-browser.sh as root")
    return found


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of a PNG (8-bit, no interlace): enough here."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, defaultdict(bytes)
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks[kind] += data[position + 8 : position + 8 + length]
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    size = 3 if color == 2 else 4
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * size
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + guess) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, rows


@pytest.mark.timeout(900)
def test_the_report_renders_offline_in_a_real_browser(tmp_path: Path) -> None:
    browser = _chromium()
    report = tmp_path / "report.html"
    result = run_launcher(SCRIPT, n=3, options=["--report", str(report)])
    assert result.returncode == 0, result.explain()
    page = report.read_text()
    # Self-contained: nothing to fetch when opened.
    for needle in ("<script src", "<link", "http://", "https://", "@import", "url("):
        assert needle not in page, needle
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1000",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), run.stderr
    assert "Uncaught" not in run.stderr and ":CONSOLE" not in run.stderr, run.stderr
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1000)
    colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    white = bytes([255, 255, 255])
    inked = sum(row[i : i + 3] != white for row in rows[::4] for i in range(0, len(row), 12))
    assert len(colours) > 20, "the screenshot is (nearly) one colour"
    assert inked > 0.05 * (len(rows) // 4) * (len(rows[0]) // 12), "the screenshot is blank"


@pytest.mark.timeout(120)
def test_a_tqdm_bar_over_map_as_completed_moves_as_results_arrive() -> None:
    result = run_launcher(ROOT / "examples" / "progress_bar.py", n=2)
    assert result.returncode == 0, result.explain()
    counts = [int(c) for c in re.findall(r"(\d+)/200", result.stderr)]
    # tqdm redraws as results come (at most every 0.1 s): the count climbs to 200 in steps.
    assert counts and counts[-1] == 200, result.stderr
    assert counts == sorted(counts) and len(set(counts)) >= 3, counts


@pytest.mark.timeout(120)
def test_progress_is_redrawn_in_place_on_a_terminal_and_absent_elsewhere() -> None:
    import pty

    marker = new_marker()
    main, secondary = pty.openpty()
    command = [sys.executable, "-m", "scoop_launch", "-n", "2", "--progress"]
    try:
        proc = subprocess.Popen(
            [*command, str(SCRIPTS / "slow_map.py"), "60"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            stdin=subprocess.DEVNULL,
            env=marked_env(marker),
            cwd=ROOT,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: everyone holding it has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(main)
        kill_marked(marker)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and b"SUM 1770" in stdout, terminal
    done = [int(n) for n in re.findall(r"\r\x1b\[Kscoop: (\d+) tasks done", terminal)]
    assert len(done) >= 2 and done == sorted(done), terminal  # redrawn, counting up
    assert re.search(r"\d+/2 workers with tasks", terminal), terminal
    assert terminal.endswith("\r\x1b[K"), "the progress line was left on the terminal"
    # Not a terminal (a pipe, a log file): nothing is drawn.
    piped = run_launcher(SCRIPTS / "slow_map.py", "20", n=2, options=["--progress"])
    assert piped.returncode == 0 and "tasks done" not in piped.stderr, piped.explain()


@pytest.mark.timeout(120)
def test_a_worker_killed_at_the_end_of_the_run_keeps_its_record(tmp_path: Path) -> None:
    # The root ends while worker 1 is in a long task: it is killed after the grace time, but
    # what it did until the run ended was written when the end was announced.
    result = run_launcher(
        SCRIPTS / "busy_at_the_end.py", n=2, options=["--root-runs-no-task", "--stats"]
    )
    assert result.returncode == 0, result.explain()
    assert "no record of worker" not in result.stderr, result.explain()
    row = next(line for line in result.stderr.splitlines() if line.startswith("worker 1 "))
    assert int(row.split()[3]) >= 21, row  # its 20 short tasks and the long one
