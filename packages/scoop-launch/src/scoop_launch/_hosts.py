"""Where workers go: host sources and the placement of ``-n`` workers over them.

This module is pure: it reads files and a mapping of environment variables, never runs a
command (no ``scontrol``), never opens a connection and never reads ``os.environ`` itself.

Host sources, first match wins (:func:`resolve_hosts`):

1. ``--hostfile FILE`` or ``--hosts NAME...`` (they cannot be combined);
2. a batch scheduler's allocation, detected from the environment (:func:`hosts_from_environment`).
   When several schedulers' variables are set, the first of this list wins:

   - SLURM: ``SLURM_JOB_NODELIST`` (else ``SLURM_NODELIST``), compressed syntax such as
     ``node[01-04,07],gpu3``; worker counts from ``SLURM_TASKS_PER_NODE`` (``2(x3),1``),
     else ``SLURM_JOB_CPUS_PER_NODE`` (same syntax);
   - PBS / Torque: ``PBS_NODEFILE``, a file with one host name per slot;
   - SGE: ``PE_HOSTFILE``, a file of ``host slots queue processor-range`` lines;
   - LSF: ``LSB_MCPU_HOSTS``, ``hostA 4 hostB 2``.

   A variable set to an empty string counts as unset.
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

IPv6 names are stored without brackets (``::1``); whoever builds a URL adds them back.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from scoop.errors import ScoopError

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

SCHEDULERS = ("SLURM", "PBS", "SGE", "LSF")
"""The schedulers :func:`hosts_from_environment` detects, in order of precedence."""

MAX_EXPANDED_HOSTS = 1_000_000
"""A node list that expands to more names than this is refused as malformed."""

_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_COUNT_KEYWORD = "slots="
#: More workers than this on one host is surely a typo (each is a process).
MAX_WORKERS_PER_HOST = 4096


# --------------------------------------------------------------------------------------------
# Errors


class HostSourceError(ScoopError, ValueError):
    """Base class: a host source (hostfile, ``--hosts``, scheduler environment) is unusable."""


class HostfileError(HostSourceError):
    """A hostfile is missing, unreadable or has a line that cannot be read."""


class HostsArgumentError(HostSourceError):
    """The ``--hosts`` / ``--hostfile`` arguments are invalid or combined."""


class SchedulerEnvironmentError(HostSourceError):
    """A batch scheduler's environment variable (or the file it names) is malformed."""


# --------------------------------------------------------------------------------------------
# Host


@dataclass(frozen=True)
class Host:
    """A host and how many workers it takes.

    Attributes:
        name: host name, IPv4 address or IPv6 address (without brackets).
        slots: number of workers, or None for "as many as this host has CPUs".
    """

    name: str
    slots: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a host needs a non-empty name")
        if self.slots is not None and (
            isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1
        ):
            raise ValueError(
                f"host {self.name!r}: slots must be a positive integer or None, got {self.slots!r}"
            )


# --------------------------------------------------------------------------------------------
# Names: validation, IPv6, SLURM node list syntax


def _is_number(text: str) -> bool:
    """Tell whether *text* is a run of ASCII digits (``str.isdigit`` also accepts ``²``)."""
    return text.isascii() and text.isdigit()


def _check_name(name: str) -> str:
    """Return *name* as stored (IPv6 brackets removed), or raise ValueError saying why."""
    if name.startswith("[") and name.endswith("]") and ":" in name:
        inner = name[1:-1]
        try:
            # One spelling per address (FE80::1 and fe80:0::1 are one host).
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"{name!r} is in brackets but is not an IPv6 address") from None
    if ":" in name:
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            raise ValueError(
                f"{name!r} is neither a host name nor an IPv6 address "
                "(to give a count, write it after a space: 'host 4')"
            ) from None
    if not _HOSTNAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid host name (letters, digits, '-', '_' and '.' only)"
        )
    return name


def _split_top_level(text: str) -> list[str]:
    """Split *text* on commas that are outside square brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _expand_range_list(body: str) -> list[str]:
    """Expand the inside of one bracket group: ``01-04,07`` -> 01 02 03 04 07."""
    values: list[str] = []
    for item in body.split(","):
        lo, dash, hi = item.strip().partition("-")
        if not _is_number(lo) or (dash and not _is_number(hi)):
            raise ValueError(f"[{body}] has a bad range {item!r} (expected N or N-M)")
        if not dash:
            values.append(lo)
            continue
        first, last = int(lo), int(hi)
        if first > last:
            raise ValueError(f"[{body}] has a decreasing range {item!r}")
        if last - first >= MAX_EXPANDED_HOSTS:
            raise ValueError(f"[{body}] expands to more than {MAX_EXPANDED_HOSTS} names")
        width = len(lo)  # zero padding of the first bound is kept: 08-10 -> 08 09 10
        values.extend(str(number).zfill(width) for number in range(first, last + 1))
    return values


def _expand_one(pattern: str) -> list[str]:
    """Expand one node pattern, possibly with several bracket groups (cartesian product)."""
    pieces: list[list[str]] = []
    rest = pattern
    while rest:
        open_at = rest.find("[")
        close_at = rest.find("]")
        if open_at < 0:
            if close_at >= 0:
                raise ValueError(f"{pattern!r} has a ']' without a '['")
            pieces.append([rest])
            break
        if close_at < open_at:
            raise ValueError(f"{pattern!r} has a ']' without a '['")
        if open_at > 0:
            pieces.append([rest[:open_at]])
        body = rest[open_at + 1 : close_at]
        if "[" in body:
            raise ValueError(f"{pattern!r} has nested or unclosed brackets")
        if not body:
            raise ValueError(f"{pattern!r} has an empty bracket group")
        pieces.append(_expand_range_list(body))
        rest = rest[close_at + 1 :]
    total = 1
    for piece in pieces:
        total *= len(piece)
    if total > MAX_EXPANDED_HOSTS:
        raise ValueError(f"{pattern!r} expands to more than {MAX_EXPANDED_HOSTS} names")
    return ["".join(combination) for combination in itertools.product(*pieces)]


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a SLURM compressed node list into host names, in order.

    ``node[01-03,07],gpu3`` gives ``node01 node02 node03 node07 gpu3``; zero padding is kept and
    several bracket groups in one name expand as a cartesian product, the last group varying
    fastest: ``r[1-2]n[1-2]`` gives ``r1n1 r1n2 r2n1 r2n2``.

    Raises:
        ValueError: the list is empty or malformed (unbalanced brackets, bad or decreasing range).
    """
    text = nodelist.strip()
    if not text:
        raise ValueError("the node list is empty")
    if text.count("[") != text.count("]"):
        raise ValueError(f"{nodelist!r} has unbalanced brackets")
    names: list[str] = []
    for raw in _split_top_level(text):
        item = raw.strip()
        if not item:
            raise ValueError(f"{nodelist!r} has an empty entry (two commas in a row?)")
        names.extend(_expand_one(item))
        if len(names) > MAX_EXPANDED_HOSTS:
            raise ValueError(f"{nodelist!r} expands to more than {MAX_EXPANDED_HOSTS} names")
    return names


def _is_bracketed_ipv6(name: str) -> bool:
    return name.startswith("[") and name.endswith("]") and ":" in name


def _names_from_token(token: str) -> list[str]:
    """Names a hostfile or ``--hosts`` token stands for: node list syntax expanded, checked."""
    if ("[" in token or "]" in token) and not _is_bracketed_ipv6(token):
        return [_check_name(name) for name in expand_nodelist(token)]
    return [_check_name(token)]


def _group(pairs: Iterable[tuple[str, int]]) -> list[Host]:
    """Add up counts per name, keeping the order in which names first appear."""
    counts: dict[str, int] = {}
    for name, count in pairs:
        counts[name] = counts.get(name, 0) + count
    return [Host(name, count) for name, count in counts.items()]


# --------------------------------------------------------------------------------------------
# Hostfile and --hosts


def _parse_count(field: str) -> int:
    """Read a count field (``4`` or ``slots=4``) as a positive int; ValueError says why not."""
    text = field[len(_COUNT_KEYWORD) :] if field.startswith(_COUNT_KEYWORD) else field
    if not _is_number(text) or int(text) < 1:
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
            names = _names_from_token(fields[0])
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
            pairs.extend((name, 1) for name in _names_from_token(token.strip()))
        except ValueError as error:
            raise HostsArgumentError(f"--hosts: {error}") from None
    return _group(pairs)


# --------------------------------------------------------------------------------------------
# Scheduler environments


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
        names = [_check_name(name) for name in expand_nodelist(nodelist)]
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
    return _group(zip(names, counts, strict=True))


def _read_scheduler_file(variable: str, path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SchedulerEnvironmentError(
            f"{variable}={path!r}: cannot read the file: {error}"
        ) from None


def _pbs(variable: str, path: str) -> list[Host]:
    pairs: list[tuple[str, int]] = []
    for number, line in enumerate(_read_scheduler_file(variable, path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 1:
            raise SchedulerEnvironmentError(
                f"{variable}={path!r}, line {number}: expected one host name, got {line.strip()!r}"
            )
        try:
            pairs.append((_check_name(fields[0]), 1))
        except ValueError as error:
            raise SchedulerEnvironmentError(
                f"{variable}={path!r}, line {number}: {error}"
            ) from None
    if not pairs:
        raise SchedulerEnvironmentError(f"{variable}={path!r}: the file lists no hosts")
    return _group(pairs)


def _sge(variable: str, path: str) -> list[Host]:
    pairs: list[tuple[str, int]] = []
    for number, line in enumerate(_read_scheduler_file(variable, path), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{variable}={path!r}, line {number}"
        if len(fields) < 2:
            raise SchedulerEnvironmentError(
                f"{where}: expected 'host slots queue processors', got {line.strip()!r}"
            )
        if not _is_number(fields[1]) or int(fields[1]) < 1:
            raise SchedulerEnvironmentError(
                f"{where}: slot count {fields[1]!r} is not a positive integer"
            )
        try:
            pairs.append((_check_name(fields[0]), int(fields[1])))
        except ValueError as error:
            raise SchedulerEnvironmentError(f"{where}: {error}") from None
    if not pairs:
        raise SchedulerEnvironmentError(f"{variable}={path!r}: the file lists no hosts")
    return _group(pairs)


def _lsf(variable: str, value: str) -> list[Host]:
    fields = value.split()
    if len(fields) % 2:
        raise SchedulerEnvironmentError(
            f"{variable}={value!r}: expected pairs of 'host count', got {len(fields)} words"
        )
    pairs: list[tuple[str, int]] = []
    for name, count in zip(fields[0::2], fields[1::2], strict=True):
        if not _is_number(count) or int(count) < 1:
            raise SchedulerEnvironmentError(
                f"{variable}={value!r}: count {count!r} for host {name!r} is not a positive integer"
            )
        try:
            pairs.append((_check_name(name), int(count)))
        except ValueError as error:
            raise SchedulerEnvironmentError(f"{variable}={value!r}: {error}") from None
    return _group(pairs)


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


# --------------------------------------------------------------------------------------------
# Placement and the choice of source


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
