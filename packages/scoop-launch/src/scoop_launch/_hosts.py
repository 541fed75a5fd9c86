"""Where workers go: host sources and the placement of ``-n`` workers over them.

This module is pure: it reads files and a mapping of environment variables, never runs a
command (no ``scontrol``), never opens a connection and never reads ``os.environ`` itself.

Host sources, first match wins (:func:`resolve_hosts`):

1. ``--hostfile FILE`` or ``--hosts NAME...`` (they cannot be combined);
2. a batch scheduler's allocation, detected from the environment (scoop_launch._allocations);
3. the local machine, ``localhost`` with as many workers as it has CPUs.

Hostfile format (:func:`parse_hostfile`)::

    # comment lines and trailing comments are ignored, so are blank lines
    node01 4            # four workers
    node02              # no count: as many workers as node02 has CPUs
    node03 slots=2      # the OpenMPI spelling of a count is accepted too
    10.0.0.7 2
    fe80::1 2           # IPv6, bare ...
    [::1] 2             # ... or in brackets
    node[04-05] 2       # SLURM range syntax: node04 and node05, two workers each
    node01 2            # a host listed again adds up: node01 now has 6

Placement (:func:`place`) follows the original SCOOP's ``-n`` rule: with more workers than listed
slots, hosts get one more worker each in turn from the first host; with fewer, workers are taken
away from the last host first. The first host always runs the root worker.

Host names and their syntax: scoop_launch._hostnames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from scoop_launch._allocations import (
    SCHEDULERS,
    SchedulerEnvironmentError,
    expand_tasks_per_node,
    hosts_from_environment,
)
from scoop_launch._hostnames import (
    Host,
    HostSourceError,
    expand_nodelist,
    group_counts,
    is_number,
    names_from_token,
)

__all__ = [
    "LOCAL_HOST",
    "SCHEDULERS",
    "Host",
    "HostSourceError",
    "HostfileError",
    "HostsArgumentError",
    "SchedulerEnvironmentError",
    "expand_nodelist",
    "expand_tasks_per_node",
    "hosts_from_environment",
    "parse_hostfile",
    "parse_hosts_arg",
    "place",
    "resolve_hosts",
]

LOCAL_HOST = "localhost"
"""The host name used when no host source is given."""

_COUNT_KEYWORD = "slots="
#: More workers than this on one host is surely a typo (each is a process).
MAX_WORKERS_PER_HOST = 4096


class HostfileError(HostSourceError):
    """A hostfile is missing, unreadable or has a line that cannot be read."""


class HostsArgumentError(HostSourceError):
    """The ``--hosts`` / ``--hostfile`` arguments are invalid or combined."""


def _parse_count(field: str) -> int:
    """Read a count field (``4`` or ``slots=4``) as a positive int; ValueError says why not."""
    text = field[len(_COUNT_KEYWORD) :] if field.startswith(_COUNT_KEYWORD) else field
    if not is_number(text) or int(text) < 1:
        raise ValueError(
            f"the worker count {field!r} is not a positive integer "
            "(leave it out to use all of the host's CPUs)"
        )
    if int(text) > MAX_WORKERS_PER_HOST:
        raise ValueError(
            f"the worker count {field!r} is more than {MAX_WORKERS_PER_HOST} workers on one host"
        )
    return int(text)


def parse_hostfile(path: str | os.PathLike[str]) -> list[Host]:
    """Read a hostfile: one ``hostname [count]`` per line.

    ``#`` starts a comment (whole line or trailing), blank lines are skipped, IPv6 addresses may
    be bare (``fe80::1``) or bracketed (``[::1]``), SLURM range syntax (``node[1-4]``) expands to
    one host per name, and a host listed on several lines gets the sum of its counts. A host
    without a count gets ``slots=None`` (all its CPUs).

    Raises:
        HostfileError: the file cannot be read, has no hosts, or has a bad line; the message
            names the file and the line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: a BOM some editors write
    except FileNotFoundError:
        raise HostfileError(f"hostfile {os.fspath(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise HostfileError(f"cannot read hostfile {os.fspath(path)!r}: {error}") from None

    counts: dict[str, int | None] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{os.fspath(path)}, line {number}"
        # OpenMPI's max_slots=N caps oversubscription there; SCOOP places by -n: ignored.
        fields = [f for f in raw.partition("#")[0].split() if not f.startswith("max_slots=")]
        if not fields:
            continue
        if len(fields) > 2:
            raise HostfileError(
                f"{where}: too many fields in {raw.strip()!r} (expected 'hostname [count]')"
            )
        try:
            names = names_from_token(fields[0])
            count = _parse_count(fields[1]) if len(fields) == 2 else None
        except ValueError as error:
            raise HostfileError(f"{where}: {error}") from None
        for name in names:
            if name not in counts:
                counts[name] = count
                first_line[name] = number
                continue
            previous = counts[name]
            if previous is None or count is None:
                raise HostfileError(
                    f"{where}: host {name!r} is listed again (first on line {first_line[name]}) "
                    "and one of its lines has no count; counts of a repeated host can only be "
                    "added up when every line gives one"
                )
            counts[name] = previous + count
    if not counts:
        raise HostfileError(f"hostfile {os.fspath(path)!r} lists no hosts")
    return [Host(name, slots) for name, slots in counts.items()]


def parse_hosts_arg(names: list[str]) -> list[Host]:
    """Turn ``--hosts`` names into hosts: each mention is one worker.

    ``["a", "b", "a", "c", "a"]`` gives a:3, b:1, c:1 (grouped in order of first appearance, as
    the original SCOOP did). Names may be IPv6 addresses or use SLURM range syntax.

    Raises:
        HostsArgumentError: no names, or a name that is not a host name.
    """
    if not names:
        raise HostsArgumentError("--hosts needs at least one host name")
    pairs: list[tuple[str, int]] = []
    for token in names:
        try:
            pairs.extend((name, 1) for name in names_from_token(token.strip()))
        except ValueError as error:
            raise HostsArgumentError(f"--hosts: {error}") from None
    return group_counts(pairs)


def place(
    hosts: list[Host], n: int | None, cpu_count: Callable[[str], int]
) -> list[tuple[str, int]]:
    """Decide how many workers each host runs: ``[(host name, workers), ...]``.

    Hosts with ``slots=None`` count ``cpu_count(name)`` slots. With *n* None every host runs its
    slots. With *n* above the total, hosts get one more worker each in turn, starting from the
    first host, until *n* is reached (slots 1, 1 and n=3 give 2, 1). With *n* below the total,
    workers are removed from the last host first and a host left with none is dropped (slots
    4, 4, 2 and n=5 give 4, 1). Host order is kept; the first host runs the root worker.

    Raises:
        ValueError: *n* is below 1, *hosts* is empty, or *cpu_count* returned less than 1.
    """
    if n is not None and n < 1:
        raise ValueError(f"the number of workers must be at least 1, got {n}")
    if not hosts:
        raise ValueError("no hosts to place workers on")
    counts: list[int] = []
    for host in hosts:
        if host.slots is not None:
            counts.append(host.slots)
            continue
        cpus = cpu_count(host.name)
        if cpus < 1:
            raise ValueError(f"cpu_count({host.name!r}) returned {cpus}; expected at least 1")
        counts.append(cpus)
    total = sum(counts)
    if n is None or n == total:
        pass
    elif n > total:
        extra_each, remainder = divmod(n - total, len(counts))
        counts = [
            count + extra_each + (1 if index < remainder else 0)
            for index, count in enumerate(counts)
        ]
    else:
        to_remove = total - n
        for index in reversed(range(len(counts))):
            taken = min(counts[index], to_remove)
            counts[index] -= taken
            to_remove -= taken
            if not to_remove:
                break
    return [(host.name, count) for host, count in zip(hosts, counts, strict=True) if count]


def resolve_hosts(
    hostfile: str | os.PathLike[str] | None,
    hosts_arg: list[str] | None,
    env: Mapping[str, str],
) -> tuple[str, list[Host]]:
    """Pick the host source and read it: ``(where the hosts came from, hosts)``.

    Order: *hostfile* or *hosts_arg* (``--hostfile`` / ``--hosts``; giving both is an error),
    then a scheduler allocation found in *env*, then the local machine. The first string is
    ``"hostfile FILE"``, ``"--hosts"``, ``"SLURM allocation"`` (or PBS, SGE, LSF) or
    ``"local machine"``, for log messages.

    Raises:
        HostsArgumentError: both *hostfile* and *hosts_arg* are given, or *hosts_arg* is bad.
        HostfileError: the hostfile cannot be used.
        SchedulerEnvironmentError: a scheduler's variables are malformed.
    """
    if hostfile is not None and hosts_arg is not None:
        raise HostsArgumentError(
            "--hostfile and --hosts cannot be used together; give the hosts one way only"
        )
    if hostfile is not None:
        return f"hostfile {os.fspath(hostfile)}", parse_hostfile(hostfile)
    if hosts_arg is not None:
        return "--hosts", parse_hosts_arg(hosts_arg)
    detected = hosts_from_environment(env)
    if detected is not None:
        scheduler, hosts = detected
        return f"{scheduler} allocation", hosts
    return "local machine", [Host(LOCAL_HOST)]
