"""The client side of the SLURM test cluster: submitting jobs from the root namespace, awaiting
and cancelling them (:class:`SlurmJobs`, a part of :class:`slurm.SlurmCluster`).

There is no slurmdbd: how a job ended comes from ``scontrol show job``, which keeps finished jobs
for ``MinJobAge`` (an hour here).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._netbase import HostSetupError, run, wait_until
from ._slurmsetup import client_environ

#: Job states after which nothing of the job runs any more (``COMPLETING`` is not one).
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
    }
)

_FIELD_RE = re.compile(r"(?:^| )([A-Za-z][\w/:.]*)=")


class SlurmError(RuntimeError):
    """A slurm client command failed, or a job did not get where it was awaited."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended, from ``scontrol show job``.

    ``exit_code`` and ``exit_signal`` are the two halves of slurm's ``ExitCode=N:M``: the batch
    script's exit status and the signal that ended it (0 if none).
    """

    job_id: int
    state: str
    exit_code: int
    exit_signal: int
    output_path: Path | None
    output: str  # the output file's contents when the job was seen ended
    info: dict[str, str]


def parse_fields(line: str) -> dict[str, str]:
    """The ``Key=Value`` fields of a one-line ``scontrol -o show ...`` record."""
    text = line.strip()
    starts = list(_FIELD_RE.finditer(text))
    fields = {}
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        fields[m.group(1)] = text[m.end() : end]
    return fields


class SlurmJobs:
    """Jobs on a cluster, through the slurm client commands (with ``SLURM_CONF`` set).

    What it needs of the cluster is its :attr:`conf` and its :attr:`jobs_dir`.
    """

    @property
    def conf(self) -> Path:
        """slurm.conf (``SLURM_CONF``)."""
        raise NotImplementedError

    @property
    def jobs_dir(self) -> Path:
        """The default working directory of jobs, where their ``slurm-<id>.out`` go."""
        raise NotImplementedError

    # ----- environment and commands

    def env(self) -> dict[str, str]:
        """What a slurm client in the root namespace needs on top of its environment."""
        return {"SLURM_CONF": str(self.conf)}

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A whole environment for a client: this process's, without the variables of an
        enclosing job, plus ``extra`` and :meth:`env`."""
        return client_environ(self.conf) | dict(extra or {}) | self.env()

    def client(self, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> str:
        """Run slurm client command ``argv`` from the root namespace; its stdout.

        Raises :class:`SlurmError` with its stderr if it fails.
        """
        try:
            return run(argv, timeout=timeout, env=self.environ(env))
        except HostSetupError as exc:
            raise SlurmError(str(exc)) from None

    # ----- jobs

    def sbatch(
        self,
        script: Path | str,
        *args: str,
        nodes: int = 3,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
    ) -> int:
        """Submit a batch job of ``nodes`` nodes; its job id.

        ``script`` is the script's file if a :class:`~pathlib.Path`, its text if a ``str``
        (given ``#!/bin/sh`` if it has no ``#!`` line); ``args`` are its arguments. ``extra``
        are more sbatch options; ``env`` variables added to the job's environment (this
        process's, see :meth:`environ`); ``workdir`` the job's working directory, where its
        ``slurm-<id>.out`` goes (default :attr:`jobs_dir`).
        """
        if isinstance(script, str):
            script = self._write_script(script)
        cwd = workdir or self.jobs_dir
        argv = ["sbatch", "--parsable", f"--nodes={nodes}", f"--chdir={cwd}", *extra]
        out = self.client(*argv, str(script), *args, env=env)
        return int(out.strip().split(";", 1)[0])

    def _write_script(self, text: str) -> Path:
        fd, name = tempfile.mkstemp(prefix="script-", suffix=".sh", dir=self.jobs_dir)
        with os.fdopen(fd, "w") as script:
            script.write(text if text.startswith("#!") else f"#!/bin/sh\n{text}")
        os.chmod(name, 0o755)
        return Path(name)

    def job_info(self, job_id: int) -> dict[str, str]:
        """The fields of ``scontrol show job`` (``JobState``, ``ExitCode``, ``NodeList``...)."""
        return parse_fields(self.client("scontrol", "--oneliner", "show", "job", str(job_id)))

    def _await_job(
        self, job_id: int, timeout: float, wanted: Callable[[dict[str, str]], bool]
    ) -> dict[str, str] | None:
        info: dict[str, str] = {}

        def seen() -> bool:
            info.clear()
            info.update(self.job_info(job_id))
            return wanted(info)

        return info if wait_until(seen, time.monotonic() + timeout, first=0.02) else None

    def wait_job(self, job_id: int, timeout: float = 60.0) -> JobResult:
        """Wait until job ``job_id`` has ended (a state of :data:`FINAL_STATES`); how it ended.

        Raises :class:`SlurmError` if it has not within ``timeout`` seconds.
        """
        info = self._await_job(job_id, timeout, lambda i: i.get("JobState") in FINAL_STATES)
        if info is None:
            raise SlurmError(
                f"job {job_id} has not ended in {timeout}s: {self._job_detail(job_id)}"
            )
        code, _, sig = info.get("ExitCode", "0:0").partition(":")
        out_path = Path(info["StdOut"]) if info.get("StdOut") else None
        output = ""
        if out_path is not None:
            with contextlib.suppress(OSError):
                output = out_path.read_text(errors="replace")
        return JobResult(job_id, info["JobState"], int(code), int(sig or 0), out_path, output, info)

    def wait_running(self, job_id: int, timeout: float = 30.0) -> dict[str, str]:
        """Wait until job ``job_id`` is RUNNING (its nodes allocated, the batch script being
        started: poll for a process of its own to know it runs); its fields.

        Raises :class:`SlurmError` if it ended first or is not running within ``timeout``.
        """
        info = self._await_job(
            job_id, timeout, lambda i: i.get("JobState") in FINAL_STATES | {"RUNNING"}
        )
        if info is None or info.get("JobState") != "RUNNING":
            raise SlurmError(f"job {job_id} is not running: {self._job_detail(job_id)}")
        return info

    def _job_detail(self, job_id: int) -> str:
        try:
            info = self.job_info(job_id)
        except SlurmError as exc:
            return str(exc)
        detail = f"state {info.get('JobState')}, reason {info.get('Reason')}"
        with contextlib.suppress(OSError, KeyError):
            detail += f"; output: {Path(info['StdOut']).read_text(errors='replace')[-2000:]}"
        return detail

    def scancel(
        self, job_id: int | str, signal: int | str | None = None, *, full: bool = True
    ) -> None:
        """Cancel job ``job_id`` (or one step of it: ``"<job>.<step>"``); or, given ``signal``
        (a number or name such as ``"TERM"``), only send it that signal: to the batch script and
        all its processes too if ``full``, else to its steps (``srun``) only."""
        argv = ["scancel"]
        if signal is not None:
            argv.append(f"--signal={int(signal) if not isinstance(signal, str) else signal}")
            if full:
                argv.append("--full")
        self.client(*argv, str(job_id))
