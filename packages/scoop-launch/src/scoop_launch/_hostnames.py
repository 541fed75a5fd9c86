"""Host names: their syntax (names, IPv4 and IPv6 addresses, SLURM node lists) and the Host type.

Shared by the host sources (scoop_launch._hosts: hostfile and ``--hosts``) and the batch
schedulers' allocations (scoop_launch._allocations). IPv6 names are stored without brackets
(``::1``); whoever builds a URL adds them back.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from scoop.errors import ScoopError

__all__ = [
    "MAX_EXPANDED_HOSTS",
    "Host",
    "HostSourceError",
    "check_name",
    "expand_nodelist",
    "group_counts",
    "is_number",
    "names_from_token",
]

MAX_EXPANDED_HOSTS = 1_000_000
"""A node list that expands to more names than this is refused as malformed."""

_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")


class HostSourceError(ScoopError, ValueError):
    """Base class: a host source (hostfile, ``--hosts``, scheduler environment) is unusable."""


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


def is_number(text: str) -> bool:
    """Tell whether *text* is a run of ASCII digits (``str.isdigit`` also accepts ``²``)."""
    return text.isascii() and text.isdigit()


def check_name(name: str) -> str:
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
        if not is_number(lo) or (dash and not is_number(hi)):
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


def names_from_token(token: str) -> list[str]:
    """Names a hostfile or ``--hosts`` token stands for: node list syntax expanded, checked."""
    if ("[" in token or "]" in token) and not _is_bracketed_ipv6(token):
        return [check_name(name) for name in expand_nodelist(token)]
    return [check_name(token)]


def group_counts(pairs: Iterable[tuple[str, int]]) -> list[Host]:
    """Add up counts per name, keeping the order in which names first appear."""
    counts: dict[str, int] = {}
    for name, count in pairs:
        counts[name] = counts.get(name, 0) + count
    return [Host(name, count) for name, count in counts.items()]
