"""scoop.Executor in a real Jupyter kernel (ipykernel), driven as Jupyter drives it.

A notebook runs through nbclient: it opens an Executor, maps a function defined in a cell, runs
nested tasks, sees a task's exception, and shuts down. Then a kernel driven cell by cell is
interrupted, restarted and killed: each time no worker may be left. Every process the kernel
starts carries the test's marker (an environment variable), which is how the test finds them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scoop_e2e_support import (
    MARKER_VAR,
    describe_processes,
    kill_marked,
    new_marker,
    processes_with_marker,
    wait_until,
)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupyter_client = pytest.importorskip("jupyter_client")

KERNEL = "scoop-test-python"

#: How the run's processes are counted: the kernel is one of them.
KERNEL_ONLY = 1


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A kernelspec for this interpreter, and the marker every process of the test carries."""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "scoop test",
                "language": "python",
            }
        )
    )
    value = new_marker()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv(MARKER_VAR, value)
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        yield value
    finally:
        kill_marked(value)


def _left(marker: str, expected: int, timeout: float = 20.0) -> list[int]:
    """Wait until ``expected`` marked processes are alive; return them (for the message)."""
    wait_until(lambda: len(processes_with_marker(marker)) == expected, timeout)
    return processes_with_marker(marker)


NOTEBOOK_CELLS = [
    "import os, time\nimport scoop\nfrom scoop import futures",
    "def square(x):\n    time.sleep(0.02)\n    return x * x, os.getpid()\n\n"
    "class Box:\n    def __init__(self, value):\n        self.value = value",
    "executor = scoop.Executor(2)",
    "results = list(executor.map(square, range(20)))\n"
    "pids = {pid for _, pid in results}\n"
    "print('squares', [v for v, _ in results][:5], os.getpid() in pids, len(pids))",
    "def leaves(depth):\n"
    "    return 1 if depth == 0 else sum(futures.map(leaves, [depth - 1] * 2))\n"
    "print('leaves', executor.submit(leaves, 4).result())",
    "print('boxes', sum(futures.map(lambda box: box.value, [Box(i) for i in range(10)])))",
    "def fails(key):\n    raise KeyError(key)\n"
    "try:\n    executor.submit(fails, 'k').result()\n"
    "except KeyError as exc:\n    print('caught', repr(exc), type(exc.__cause__).__name__)",
    "executor.submit(fails, 'uncaught').result()",
    "executor.shutdown()\n"
    "children = [p for p in os.listdir('/proc') if p.isdigit()\n"
    "            and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1:2]"
    " == [str(os.getpid())]\n"
    "            and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z']\n"
    "print('children', children, executor)",
]


def _outputs(cell: Any) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


@pytest.mark.timeout(180)
def test_a_notebook_maps_nests_fails_and_shuts_down(marker: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    notebook.cells[7].metadata["tags"] = ["raises-exception"]
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=90)
    client.execute()
    text = [_outputs(cell) for cell in notebook.cells]
    assert "squares [0, 1, 4, 9, 16] False 2" in text[3], text[3]
    assert "leaves 16" in text[4], text[4]
    assert "boxes 45" in text[5], text[5]
    assert "caught KeyError('k') RemoteTraceback" in text[6], text[6]
    errors = [out for out in notebook.cells[7].outputs if out.output_type == "error"]
    assert errors and errors[0].ename == "KeyError", notebook.cells[7].outputs
    assert any("fails" in line for line in errors[0].traceback), errors[0].traceback
    assert "children [] <scoop.Executor 2 workers, shut down>" in text[8], text[8]
    assert _left(marker, 0) == []


class Kernel:
    """A kernel driven cell by cell, as a notebook front end does."""

    def __init__(self) -> None:
        self.manager, self.client = jupyter_client.manager.start_new_kernel(kernel_name=KERNEL)

    def run(self, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
        """Run a cell to its end: (its reply's content, its printed output)."""
        printed: list[str] = []

        def collect(message: dict[str, Any]) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        return reply["content"], "".join(printed)

    def start(self, code: str) -> str:
        """Start a cell without waiting for it; return its message id.

        These cells are interrupted on purpose: with ``stop_on_error`` (the default), the kernel
        would abort the cells sent right after the error (their reply says "aborted", and they
        print nothing), depending on how soon they arrive.
        """
        return str(self.client.execute(code, stop_on_error=False))

    def wait_printed(self, text: str, timeout: float = 30) -> None:
        """Wait until a running cell printed ``text`` (then it surely runs)."""
        while True:
            message = self.client.get_iopub_msg(timeout=timeout)
            if message["msg_type"] == "stream" and text in message["content"]["text"]:
                return

    def reply_to(self, msg_id: str, timeout: float = 30) -> dict[str, Any]:
        """The content of the reply to an earlier cell."""
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    def close(self) -> None:
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=True)


@pytest.mark.timeout(240)
def test_interrupting_restarting_or_killing_the_kernel_leaves_no_worker(marker: str) -> None:
    kernel = Kernel()
    try:
        content, out = kernel.run(
            "import time, scoop\nexecutor = scoop.Executor(2)\n"
            "print(executor.submit(abs, -1).result())"
        )
        assert content["status"] == "ok" and out.strip() == "1", (content, out)
        with_outer = KERNEL_ONLY + 3  # its broker and 2 workers
        assert len(_left(marker, with_outer)) == with_outer

        # Ctrl-C in a cell inside `with scoop.Executor(...)`: that run ends at once.
        cell = kernel.start(
            "with scoop.Executor(1) as inner:\n    inner.submit(time.sleep, 60).result()"
        )
        assert len(_left(marker, with_outer + 2)) == with_outer + 2
        kernel.manager.interrupt_kernel()
        reply = kernel.reply_to(cell)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        left = _left(marker, with_outer, timeout=15)
        assert len(left) == with_outer, f"the interrupted block left {describe_processes(left)}"

        # Ctrl-C while waiting on an Executor left open: it stays usable.
        cell = kernel.start(
            "print('waiting', flush=True)\nexecutor.submit(time.sleep, 60).result()"
        )
        kernel.wait_printed("waiting")
        kernel.manager.interrupt_kernel()
        reply = kernel.reply_to(cell)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        content, out = kernel.run("print(executor.submit(abs, -3).result(timeout=30))")
        assert content["status"] == "ok" and out.strip() == "3", (content, out)

        # A restart ends the old kernel's run.
        kernel.manager.restart_kernel(now=False)
        left = _left(marker, KERNEL_ONLY)
        assert len(left) == KERNEL_ONLY, f"a restart left {left}"

        # A killed kernel (SIGKILL, no clean-up at all): its workers die with it.
        content, out = kernel.run(
            "import scoop\nexecutor = scoop.Executor(2)\nprint(executor.submit(abs, -4).result())"
        )
        assert content["status"] == "ok" and out.strip() == "4", (content, out)
        assert len(_left(marker, with_outer)) == with_outer
        kernel.manager.shutdown_kernel(now=True)
        left = _left(marker, 0)
        assert left == [], f"a killed kernel left {left}"
    finally:
        kernel.close()


def test_the_example_notebook_runs(marker: str) -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "executor.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"], outputs
    text = "".join(str(out.get("text", "")) + str(out.get("data", "")) for out in outputs)
    assert "pi is about 3.1" in text and "144" in text and "caught:" in text, text
    assert _left(marker, 0) == []
