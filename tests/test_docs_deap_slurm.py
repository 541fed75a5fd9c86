"""The DEAP guide's batch script (docs/deap.md), submitted to a real SLURM cluster.

The page's ``onemax.sh`` and ``onemax.py`` are saved in a job directory and submitted with
sbatch from there, as the page says. The test's cluster is smaller than the script asks for
(3 nodes of 2 CPUs), so sbatch's command line overrides the node and task counts, as a user's
would; the script's own ``source ~/scoop-env/bin/activate`` finds a stand-in environment in a
home directory of its own. The job must print the result lines the page shows and leave the
report beside its output.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from docs_code import DOCS, blocks, files

PAGE = DOCS / "deap.md"


def shown_job_output() -> list[str]:
    """The lines of the ``text`` block that follows the page's ``sbatch onemax.sh``."""
    page_blocks = blocks(PAGE)
    at = next(i for i, b in enumerate(page_blocks) if "$ sbatch onemax.sh" in b.text)
    following = next(b for b in page_blocks[at + 1 :] if b.language == "text")
    return following.text.splitlines()


@pytest.mark.timeout(240)
def test_deap_batch_script_runs_on_slurm(
    clean_slurm_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("deap", reason="nox -s tests installs deap for the DEAP guide")
    cluster = clean_slurm_cluster
    jobs = tmp_path / "work"
    jobs.mkdir()
    for title, block in files(PAGE).items():
        (jobs / title).write_text(block.text)
    home = tmp_path / "home"
    (home / "scoop-env" / "bin").mkdir(parents=True)
    python_dir = str(Path(sys.executable).parent)
    (home / "scoop-env" / "bin" / "activate").write_text(
        f"export PATH={shlex.quote(python_dir)}:$PATH\n"
    )
    monkeypatch.chdir(jobs)  # sbatch is run from the job directory: $SLURM_SUBMIT_DIR
    job = cluster.sbatch(
        jobs / "onemax.sh",
        nodes=3,
        extra=["--ntasks-per-node=2"],
        env={"HOME": str(home)},
        workdir=jobs,
    )
    result = cluster.wait_job(job, timeout=180)
    assert (result.state, result.exit_code) == ("COMPLETED", 0), result.output
    assert result.output_path == jobs / f"onemax-{job}.out", result.output_path
    lines = result.output.splitlines()
    for line in shown_job_output():
        assert line in lines, f"{line!r} not in the job's output:\n{result.output}"
    report = jobs / f"onemax-{job}.html"
    assert report.is_file() and "<html" in report.read_text()[:2000].lower(), result.output
    assert "Traceback" not in result.output, result.output
