"""Batch schedulers' allocations, detected from the environment (:func:`hosts_from_environment`).

When several schedulers' variables are set, the first of this list wins:

- SLURM: ``SLURM_JOB_NODELIST`` (else ``SLURM_NODELIST``), compressed syntax such as
  ``node[01-04,07],gpu3``; worker counts from ``SLURM_TASKS_PER_NODE`` (``2(x3),1``),
  else ``SLURM_JOB_CPUS_PER_NODE`` (same syntax);
- PBS / Torque: ``PBS_NODEFILE``, a file with one host name per slot;
- SGE: ``PE_HOSTFILE``, a file of ``host slots queue processor-range`` lines;
- LSF: ``LSB_MCPU_HOSTS``, ``hostA 4 hostB 2``.

A variable set to an empty string counts as unset. Pure, as scoop_launch._hosts: this module
reads the files the variables name, never runs a command (no ``scontrol``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from scoop_launch._hostnames import (
    MAX_EXPANDED_HOSTS,
    Host,
    HostSourceError,
    check_name,
    expand_nodelist,
    group_counts,
    is_number,
)

__all__ = [
    "SCHEDULERS",
    "SchedulerEnvironmentError",
    "expand_tasks_per_node",
    "hosts_from_environment",
]

SCHEDULERS = ("SLURM", "PBS", "SGE", "LSF")
"""The schedulers :func:`hosts_from_environment` detects, in order of precedence."""


class SchedulerEnvironmentError(HostSourceError):
    """A batch scheduler's environment variable (or the file it names) is malformed."""


def _env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """Return the first of *names* set to a non-blank value in *env*, with its value."""
    for name in names:
        value = env.get(name, "")
        if value.strip():
            return name, value
    return None


def expand_tasks_per_node(value: str) -> list[int]:
    """Expand SLURM's ``SLURM_TASKS_PER_NODE`` syntax: ``2(x3),1`` gives ``[2, 2, 2, 1]``.

    Raises:
        ValueError: an item is not ``N`` or ``N(xR)`` with positive N and R.
    """
    counts: list[int] = []
    for item in value.strip().split(","):
        match = re.fullmatch(r"\s*([0-9]+)\s*(?:\(x([0-9]+)\))?\s*", item)
        if match is None:
            raise ValueError(f"bad item {item!r} (expected N or N(xR), e.g. 2(x3))")
        count, repeat = int(match[1]), int(match[2] or 1)
        if count < 1 or repeat < 1:
            raise ValueError(f"bad item {item!r} (counts must be positive)")
        if len(counts) + repeat > MAX_EXPANDED_HOSTS:
            raise ValueError(f"expands to more than {MAX_EXPANDED_HOSTS} nodes")
        counts.extend([count] * repeat)
    return counts


def _slurm(env: Mapping[str, str], variable: str, nodelist: str) -> list[Host]:
    try:
        names = [check_name(name) for name in expand_nodelist(nodelist)]
    except ValueError as error:
        raise SchedulerEnvironmentError(f"{variable}={nodelist!r}: {error}") from None
    # Tasks per node, else (an allocation made without tasks) the CPUs the job has there.
    found = _env(env, "SLURM_TASKS_PER_NODE") or _env(env, "SLURM_JOB_CPUS_PER_NODE")
    if found is None:
        return [Host(name) for name in dict.fromkeys(names)]
    tasks_variable, tasks = found
    try:
        counts = expand_tasks_per_node(tasks)
    except ValueError as error:
        raise SchedulerEnvironmentError(f"{tasks_variable}={tasks!r}: {error}") from None
    if len(counts) != len(names):
        # Inside an srun step, SLURM rewrites SLURM_TASKS_PER_NODE for the step only.
        hint = (
            "; inside an srun step it describes the step: run the launcher from the batch "
            "script itself, not under srun"
            if env.get("SLURM_STEP_ID", "").strip()
            else ""
        )
        raise SchedulerEnvironmentError(
            f"{tasks_variable}={tasks!r} gives counts for {len(counts)} nodes but "
            f"{variable}={nodelist!r} lists {len(names)}{hint}"
        )
    return group_counts(zip(names, counts, strict=True))


def _host_lines(variable: str, path: str) -> list[tuple[str, str, list[str]]]:
    """The non-blank lines of a scheduler's host file: ``(where, line, fields)`` each.

    ``where`` names the variable, the file and the line, for messages. Raises
    SchedulerEnvironmentError when the file cannot be read or lists nothing.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SchedulerEnvironmentError(
            f"{variable}={path!r}: cannot read the file: {error}"
        ) from None
    lines = [
        (f"{variable}={path!r}, line {number}", line, line.split())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.split()
    ]
    if not lines:
        raise SchedulerEnvironmentError(f"{variable}={path!r}: the file lists no hosts")
    return lines


def _pbs(variable: str, path: str) -> list[Host]:
    pairs: list[tuple[str, int]] = []
    for where, line, fields in _host_lines(variable, path):
        if len(fields) > 1:
            raise SchedulerEnvironmentError(
                f"{where}: expected one host name, got {line.strip()!r}"
            )
        try:
            pairs.append((check_name(fields[0]), 1))
        except ValueError as error:
            raise SchedulerEnvironmentError(f"{where}: {error}") from None
    return group_counts(pairs)


def _sge(variable: str, path: str) -> list[Host]:
    pairs: list[tuple[str, int]] = []
    for where, line, fields in _host_lines(variable, path):
        if len(fields) < 2:
            raise SchedulerEnvironmentError(
                f"{where}: expected 'host slots queue processors', got {line.strip()!r}"
            )
        if not is_number(fields[1]) or int(fields[1]) < 1:
            raise SchedulerEnvironmentError(
                f"{where}: slot count {fields[1]!r} is not a positive integer"
            )
        try:
            pairs.append((check_name(fields[0]), int(fields[1])))
        except ValueError as error:
            raise SchedulerEnvironmentError(f"{where}: {error}") from None
    return group_counts(pairs)


def _lsf(variable: str, value: str) -> list[Host]:
    fields = value.split()
    if len(fields) % 2:
        raise SchedulerEnvironmentError(
            f"{variable}={value!r}: expected pairs of 'host count', got {len(fields)} words"
        )
    pairs: list[tuple[str, int]] = []
    for name, count in zip(fields[0::2], fields[1::2], strict=True):
        if not is_number(count) or int(count) < 1:
            raise SchedulerEnvironmentError(
                f"{variable}={value!r}: count {count!r} for host {name!r} is not a positive integer"
            )
        try:
            pairs.append((check_name(name), int(count)))
        except ValueError as error:
            raise SchedulerEnvironmentError(f"{variable}={value!r}: {error}") from None
    return group_counts(pairs)


def hosts_from_environment(env: Mapping[str, str]) -> tuple[str, list[Host]] | None:
    """Detect a batch scheduler's allocation in *env*; return its name and hosts, or None.

    The name is one of :data:`SCHEDULERS`; precedence follows that order (see the module
    docstring). Files named by variables (``PBS_NODEFILE``, ``PE_HOSTFILE``) are read here.
    Under SLURM the counts are ``SLURM_TASKS_PER_NODE``, else ``SLURM_JOB_CPUS_PER_NODE``, else
    every node gets ``slots=None``.

    Raises:
        SchedulerEnvironmentError: a detected variable, or the file it names, is malformed; the
            message names the variable and its value.
    """
    found = _env(env, "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    if found is not None:
        return "SLURM", _slurm(env, *found)
    found = _env(env, "PBS_NODEFILE")
    if found is not None:
        return "PBS", _pbs(*found)
    found = _env(env, "PE_HOSTFILE")
    if found is not None:
        return "SGE", _sge(*found)
    found = _env(env, "LSB_MCPU_HOSTS")
    if found is not None:
        return "LSF", _lsf(*found)
    return None
