"""Tests of scoop_launch._hosts: host sources, scheduler detection and the -n placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoop.errors import ScoopError
from scoop_launch._hosts import (
    LOCAL_HOST,
    Host,
    HostfileError,
    HostsArgumentError,
    HostSourceError,
    SchedulerEnvironmentError,
    expand_nodelist,
    expand_tasks_per_node,
    hosts_from_environment,
    parse_hostfile,
    parse_hosts_arg,
    place,
    resolve_hosts,
)


def no_cpu_count(name: str) -> int:
    raise AssertionError(f"cpu_count({name!r}) should not be called")


def hosts(*pairs: tuple[str, int | None]) -> list[Host]:
    return [Host(name, slots) for name, slots in pairs]


# --------------------------------------------------------------------------------------------
# Host


@pytest.mark.parametrize(
    ("name", "slots"),
    [("", 1), ("a", 0), ("a", -2), ("a", True), ("a", 1.5)],
)
def test_host_rejects_bad_values(name: str, slots: object) -> None:
    with pytest.raises(ValueError, match=r"slots|name"):
        Host(name, slots)  # type: ignore[arg-type]


def test_host_defaults_to_all_cpus_and_is_frozen() -> None:
    host = Host("a")
    assert host.slots is None
    with pytest.raises(AttributeError):
        host.slots = 3  # type: ignore[misc]


def test_errors_share_a_base() -> None:
    for cls in (HostfileError, HostsArgumentError, SchedulerEnvironmentError):
        assert issubclass(cls, HostSourceError)
        assert issubclass(cls, ScoopError)
        assert issubclass(cls, ValueError)


# --------------------------------------------------------------------------------------------
# place(): the original SCOOP's -n rule


A4_B4_C2 = hosts(("A", 4), ("B", 4), ("C", 2))


@pytest.mark.parametrize(
    ("given", "n", "expected"),
    [
        # The original's help text: "-n 3 with 2 hosts will spawn 2 workers on the first host
        # and 1 on the second".
        (hosts(("a", 1), ("b", 1)), 3, [("a", 2), ("b", 1)]),
        # Runs of the original's divideHosts on A:4, B:4, C:2 (facts file, section 6).
        (A4_B4_C2, 1, [("A", 1)]),
        (A4_B4_C2, 3, [("A", 3)]),
        (A4_B4_C2, 5, [("A", 4), ("B", 1)]),
        (A4_B4_C2, 6, [("A", 4), ("B", 2)]),
        (A4_B4_C2, 8, [("A", 4), ("B", 4)]),
        (A4_B4_C2, 10, [("A", 4), ("B", 4), ("C", 2)]),
        (A4_B4_C2, None, [("A", 4), ("B", 4), ("C", 2)]),
        (A4_B4_C2, 11, [("A", 5), ("B", 4), ("C", 2)]),
        (A4_B4_C2, 12, [("A", 5), ("B", 5), ("C", 2)]),
        (A4_B4_C2, 13, [("A", 5), ("B", 5), ("C", 3)]),
        (A4_B4_C2, 20, [("A", 8), ("B", 7), ("C", 5)]),
        # Round-robin growth wraps around several times.
        (hosts(("a", 1), ("b", 1)), 7, [("a", 4), ("b", 3)]),
        (hosts(("a", 1)), 5, [("a", 5)]),
        # Shrinking takes from the last host first; a host left empty disappears.
        (hosts(("a", 2), ("b", 2), ("c", 2)), 5, [("a", 2), ("b", 2), ("c", 1)]),
        (hosts(("a", 2), ("b", 2), ("c", 2)), 4, [("a", 2), ("b", 2)]),
        (hosts(("a", 2), ("b", 2), ("c", 2)), 3, [("a", 2), ("b", 1)]),
        (hosts(("a", 1), ("b", 3), ("c", 1)), 2, [("a", 1), ("b", 1)]),
    ],
)
def test_place(given: list[Host], n: int | None, expected: list[tuple[str, int]]) -> None:
    assert place(given, n, no_cpu_count) == expected
    if n is not None:
        assert sum(count for _, count in place(given, n, no_cpu_count)) == n


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (None, [("big", 8), ("fixed", 2), ("small", 2)]),
        (11, [("big", 8), ("fixed", 2), ("small", 1)]),
        (13, [("big", 9), ("fixed", 2), ("small", 2)]),
        (2, [("big", 2)]),
    ],
)
def test_place_hosts_without_count_use_cpu_count(
    n: int | None, expected: list[tuple[str, int]]
) -> None:
    asked: list[str] = []

    def cpu_count(name: str) -> int:
        asked.append(name)
        return {"big": 8, "small": 2}[name]

    given = hosts(("big", None), ("fixed", 2), ("small", None))
    assert place(given, n, cpu_count) == expected
    assert asked == ["big", "small"]


@pytest.mark.parametrize("n", [0, -1])
def test_place_rejects_fewer_than_one_worker(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        place(hosts(("a", 1)), n, no_cpu_count)


def test_place_rejects_no_hosts_and_bad_cpu_count() -> None:
    with pytest.raises(ValueError, match="no hosts"):
        place([], 2, no_cpu_count)
    with pytest.raises(ValueError, match=r"cpu_count\('a'\) returned 0"):
        place(hosts(("a", None)), None, lambda name: 0)


# --------------------------------------------------------------------------------------------
# --hosts


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["A", "A", "B"], [("A", 2), ("B", 1)]),
        (["a", "b", "a", "c", "a"], [("a", 3), ("b", 1), ("c", 1)]),
        (["a", "a", "b", "b"], [("a", 2), ("b", 2)]),
        (["127.0.0.1"], [("127.0.0.1", 1)]),
        (["::1", "[::1]", "fe80::1"], [("::1", 2), ("fe80::1", 1)]),
        (["node[1-3]", "node2"], [("node1", 1), ("node2", 2), ("node3", 1)]),
    ],
)
def test_parse_hosts_arg(names: list[str], expected: list[tuple[str, int]]) -> None:
    assert parse_hosts_arg(names) == hosts(*expected)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "at least one host"),
        (["good", "bad/name"], "'bad/name' is not a valid host name"),
        (["host:4"], "neither a host name nor an IPv6 address"),
        (["node[3-1]"], "decreasing range"),
    ],
)
def test_parse_hosts_arg_errors(names: list[str], message: str) -> None:
    with pytest.raises(HostsArgumentError, match=message):
        parse_hosts_arg(names)


# --------------------------------------------------------------------------------------------
# Hostfile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The original's documented example.
        (
            "hostname_or_ip 4\nother_hostname\nthird_hostname 2\n",
            [("hostname_or_ip", 4), ("other_hostname", None), ("third_hostname", 2)],
        ),
        ("a 2\nb\t3\n", [("a", 2), ("b", 3)]),
        (
            "# whole-line comment\n\n   \na 2  # trailing comment\nb#no space\n",
            [("a", 2), ("b", None)],
        ),
        ("a 2\nb 1\na 3\n", [("a", 5), ("b", 1)]),
        ("a slots=4\n", [("a", 4)]),
        ("10.0.0.7 2\n", [("10.0.0.7", 2)]),
        (
            "::1 2\nfe80::1\n[::1] 3\n[2001:db8::7] 1\n",
            [("::1", 5), ("fe80::1", None), ("2001:db8::7", 1)],
        ),
        ("node[01-02] 2\nnode01 1\n", [("node01", 3), ("node02", 2)]),
        ("a 007\n", [("a", 7)]),
        ("a.example.org\r\nb_c 1\r\n", [("a.example.org", None), ("b_c", 1)]),
        ("\ufeffa 2\n", [("a", 2)]),  # a byte order mark, as some editors write
        ("a slots=4 max_slots=8\nb max_slots=2\n", [("a", 4), ("b", None)]),  # OpenMPI
        ("FE80::1 1\nfe80:0::1 2\n[FE80::1] 1\n", [("fe80::1", 4)]),  # one address
    ],
)
def test_parse_hostfile(tmp_path: Path, text: str, expected: list[tuple[str, int | None]]) -> None:
    path = tmp_path / "hosts"
    path.write_text(text, encoding="utf-8", newline="")
    assert parse_hostfile(path) == hosts(*expected)
    assert parse_hostfile(str(path)) == hosts(*expected)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a 2\nb 0\n", 2, r"worker count '0' is not a positive integer"),
        ("a -1\n", 1, r"worker count '-1' is not a positive integer"),
        ("a\nb four\n", 2, r"worker count 'four' is not a positive integer"),
        ("a 1.5\n", 1, r"worker count '1.5'"),
        ("a slots=x\n", 1, r"worker count 'slots=x'"),
        ("a ²\n", 1, r"worker count '²'"),
        ("\n\na 2 extra\n", 3, r"too many fields in 'a 2 extra'"),
        ("a 99999999999999999999\n", 1, r"more than 4096 workers on one host"),
        ("host:6\n", 1, r"'host:6' is neither a host name nor an IPv6 address"),
        ("[::zz] 1\n", 1, r"'\[::zz\]' is in brackets but is not an IPv6 address"),
        ("1.2.3.4/2\n", 1, r"not a valid host name"),
        ("a=2\n", 1, r"not a valid host name"),
        ("node[1-2\n", 1, r"unbalanced brackets"),
        ("a\na 2\n", 2, r"host 'a' is listed again \(first on line 1\)"),
        ("a 2\n# x\na\n", 3, r"host 'a' is listed again \(first on line 1\)"),
    ],
)
def test_parse_hostfile_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "myhosts"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HostfileError, match=rf"myhosts, line {line}: .*{message}"):
        parse_hostfile(path)


def test_hostfile_missing_empty_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(HostfileError, match=r"hostfile '.*nothere' does not exist"):
        parse_hostfile(tmp_path / "nothere")
    empty = tmp_path / "empty"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(HostfileError, match=r"'.*empty' lists no hosts"):
        parse_hostfile(empty)
    with pytest.raises(HostfileError, match=r"cannot read hostfile"):
        parse_hostfile(tmp_path)  # a directory
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00a 1\n")
    with pytest.raises(HostfileError, match=r"cannot read hostfile '.*binary'"):
        parse_hostfile(binary)


# --------------------------------------------------------------------------------------------
# SLURM syntax


@pytest.mark.parametrize(
    ("nodelist", "expected"),
    [
        ("gpu3", ["gpu3"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("node[01-04,07],gpu3", ["node01", "node02", "node03", "node04", "node07", "gpu3"]),
        ("nodes[006,011]", ["nodes006", "nodes011"]),
        ("n[08-11]", ["n08", "n09", "n10", "n11"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("a,b[1-2],c", ["a", "b1", "b2", "c"]),
        ("a[1-2],b[7,9]", ["a1", "a2", "b7", "b9"]),
        ("a[1-2]-b[3-4]", ["a1-b3", "a1-b4", "a2-b3", "a2-b4"]),
        ("rack[1-2]n[01-02]x", ["rack1n01x", "rack1n02x", "rack2n01x", "rack2n02x"]),
        ("[1-2]node", ["1node", "2node"]),
        (" node[1-2] ", ["node1", "node2"]),
        ("node[5]", ["node5"]),
        ("cn-[01-02].cluster", ["cn-01.cluster", "cn-02.cluster"]),
    ],
)
def test_expand_nodelist(nodelist: str, expected: list[str]) -> None:
    assert expand_nodelist(nodelist) == expected


@pytest.mark.parametrize(
    ("nodelist", "message"),
    [
        ("", "empty"),
        ("node[1-2", "unbalanced"),
        ("node]1-2[", r"'\]' without a '\['"),
        ("node[]", "empty bracket group"),
        ("node[a-b]", "bad range"),
        ("node[1-]", "bad range"),
        ("node[3-1]", "decreasing range"),
        ("node[[1-2]]", "nested"),
        ("a,,b", "empty entry"),
        ("n[0-99999999]", "more than"),
        ("a[0-999]b[0-999]c[0-9]", "more than"),
    ],
)
def test_expand_nodelist_errors(nodelist: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_nodelist(nodelist)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4", [4]),
        ("2(x3),1", [2, 2, 2, 1]),
        ("1,2(x2),3", [1, 2, 2, 3]),
        ("16(x1)", [16]),
    ],
)
def test_expand_tasks_per_node(value: str, expected: list[int]) -> None:
    assert expand_tasks_per_node(value) == expected


@pytest.mark.parametrize("value", ["", "x", "2(3)", "2(x)", "0", "2(x0)", "-1", "2,,1", "2x3"])
def test_expand_tasks_per_node_errors(value: str) -> None:
    with pytest.raises(ValueError, match="bad item"):
        expand_tasks_per_node(value)


# --------------------------------------------------------------------------------------------
# Scheduler environments


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SLURM_JOB_NODELIST": "node[01-03]", "SLURM_TASKS_PER_NODE": "2(x2),1"},
            [("node01", 2), ("node02", 2), ("node03", 1)],
        ),
        (
            {"SLURM_NODELIST": "a,b", "SLURM_TASKS_PER_NODE": "3,4"},
            [("a", 3), ("b", 4)],
        ),
        (
            # SLURM_JOB_NODELIST wins over the older SLURM_NODELIST.
            {"SLURM_JOB_NODELIST": "new1", "SLURM_NODELIST": "old1", "SLURM_TASKS_PER_NODE": "8"},
            [("new1", 8)],
        ),
        (
            {"SLURM_JOB_NODELIST": "", "SLURM_NODELIST": "old1", "SLURM_TASKS_PER_NODE": "8"},
            [("old1", 8)],
        ),
        (
            {"SLURM_JOB_NODELIST": "gpu[1-2]-x[1-2]", "SLURM_TASKS_PER_NODE": "1(x4)"},
            [("gpu1-x1", 1), ("gpu1-x2", 1), ("gpu2-x1", 1), ("gpu2-x2", 1)],
        ),
        ({"SLURM_JOB_NODELIST": "n[1-2]"}, [("n1", None), ("n2", None)]),
        ({"LSB_MCPU_HOSTS": "hostA 4 hostB 2"}, [("hostA", 4), ("hostB", 2)]),
        ({"LSB_MCPU_HOSTS": " hostA 4  hostB 2 hostA 1 "}, [("hostA", 5), ("hostB", 2)]),
    ],
)
def test_environment_variables(env: dict[str, str], expected: list[tuple[str, int | None]]) -> None:
    detected = hosts_from_environment(env)
    assert detected is not None
    scheduler, found = detected
    assert scheduler == ("LSF" if "LSB_MCPU_HOSTS" in env else "SLURM")
    assert found == hosts(*expected)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SLURM_JOB_NODELIST": "node[01-03]", "SLURM_TASKS_PER_NODE": "2(x2)"},
            r"SLURM_TASKS_PER_NODE='2\(x2\)' gives counts for 2 nodes but "
            r"SLURM_JOB_NODELIST='node\[01-03\]' lists 3",
        ),
        (
            {"SLURM_JOB_NODELIST": "a", "SLURM_TASKS_PER_NODE": "1,1"},
            r"counts for 2 nodes but SLURM_JOB_NODELIST='a' lists 1",
        ),
        (  # what an `srun -N1 -n1` step inside a 3-node job sets
            {
                "SLURM_JOB_NODELIST": "node[01-03]",
                "SLURM_TASKS_PER_NODE": "1",
                "SLURM_STEP_ID": "0",
            },
            r"lists 3; inside an srun step it describes the step: run the launcher from the "
            r"batch script itself, not under srun",
        ),
        (
            {"SLURM_JOB_NODELIST": "node[1-2", "SLURM_TASKS_PER_NODE": "1"},
            r"SLURM_JOB_NODELIST='node\[1-2': .*unbalanced",
        ),
        (
            {"SLURM_NODELIST": "n[2-1]"},
            r"SLURM_NODELIST='n\[2-1\]': .*decreasing",
        ),
        (
            {"SLURM_JOB_NODELIST": "a", "SLURM_TASKS_PER_NODE": "two"},
            r"SLURM_TASKS_PER_NODE='two': bad item",
        ),
        (
            {"SLURM_JOB_NODELIST": "a/b"},
            r"SLURM_JOB_NODELIST='a/b': 'a/b' is not a valid host name",
        ),
        ({"LSB_MCPU_HOSTS": "hostA 4 hostB"}, r"LSB_MCPU_HOSTS='hostA 4 hostB': expected pairs"),
        ({"LSB_MCPU_HOSTS": "hostA x"}, r"LSB_MCPU_HOSTS='hostA x': count 'x' for host 'hostA'"),
        ({"LSB_MCPU_HOSTS": "hostA 0"}, r"count '0' for host 'hostA' is not a positive"),
    ],
)
def test_environment_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SchedulerEnvironmentError, match=message):
        hosts_from_environment(env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "node1\nnode1\nnode2\nnode1\n",
            [("node1", 3), ("node2", 1)],
        ),
        ("n1.cluster.org\n\nn2.cluster.org\n", [("n1.cluster.org", 1), ("n2.cluster.org", 1)]),
    ],
)
def test_pbs_nodefile(tmp_path: Path, text: str, expected: list[tuple[str, int]]) -> None:
    nodefile = tmp_path / "aggregate"
    nodefile.write_text(text, encoding="utf-8")
    assert hosts_from_environment({"PBS_NODEFILE": str(nodefile)}) == ("PBS", hosts(*expected))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "node01 4 all.q@node01 UNDEFINED\nnode02 2 all.q@node02 UNDEFINED\n",
            [("node01", 4), ("node02", 2)],
        ),
        ("node01 4\nnode01 2 other.q@node01 <NULL>\n", [("node01", 6)]),
    ],
)
def test_sge_pe_hostfile(tmp_path: Path, text: str, expected: list[tuple[str, int]]) -> None:
    pe_hostfile = tmp_path / "pe_hostfile"
    pe_hostfile.write_text(text, encoding="utf-8")
    assert hosts_from_environment({"PE_HOSTFILE": str(pe_hostfile)}) == ("SGE", hosts(*expected))


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("PBS_NODEFILE", "", r"the file lists no hosts"),
        ("PBS_NODEFILE", "a\nb 2\n", r", line 2: expected one host name, got 'b 2'"),
        ("PBS_NODEFILE", "a\nx:y\n", r", line 2: 'x:y' is neither"),
        ("PE_HOSTFILE", "\n", r"the file lists no hosts"),
        ("PE_HOSTFILE", "node01\n", r", line 1: expected 'host slots queue processors'"),
        ("PE_HOSTFILE", "a 1 q UNDEFINED\nb x q UNDEFINED\n", r", line 2: slot count 'x'"),
        ("PE_HOSTFILE", "a 0 q UNDEFINED\n", r", line 1: slot count '0'"),
        ("PE_HOSTFILE", "a/b 1 q UNDEFINED\n", r", line 1: 'a/b' is not a valid host name"),
    ],
)
def test_scheduler_file_errors(tmp_path: Path, variable: str, text: str, message: str) -> None:
    path = tmp_path / "allocation"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchedulerEnvironmentError, match=rf"{variable}='.*allocation'.*{message}"):
        hosts_from_environment({variable: str(path)})


@pytest.mark.parametrize("variable", ["PBS_NODEFILE", "PE_HOSTFILE"])
def test_scheduler_file_missing(tmp_path: Path, variable: str) -> None:
    missing = str(tmp_path / "gone")
    with pytest.raises(SchedulerEnvironmentError, match=rf"{variable}='.*gone': cannot read"):
        hosts_from_environment({variable: missing})


def test_scheduler_precedence(tmp_path: Path) -> None:
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("pbs1\n", encoding="utf-8")
    pe_hostfile = tmp_path / "pe_hostfile"
    pe_hostfile.write_text("sge1 1 all.q@sge1 UNDEFINED\n", encoding="utf-8")
    env = {
        "SLURM_JOB_NODELIST": "slurm1",
        "SLURM_TASKS_PER_NODE": "1",
        "PBS_NODEFILE": str(nodefile),
        "PE_HOSTFILE": str(pe_hostfile),
        "LSB_MCPU_HOSTS": "lsf1 1",
    }
    order = []
    while (detected := hosts_from_environment(env)) is not None:
        scheduler, found = detected
        order.append((scheduler, found[0].name))
        variable = {
            "SLURM": "SLURM_JOB_NODELIST",
            "PBS": "PBS_NODEFILE",
            "SGE": "PE_HOSTFILE",
            "LSF": "LSB_MCPU_HOSTS",
        }[scheduler]
        env[variable] = ""  # empty counts as unset
    assert order == [("SLURM", "slurm1"), ("PBS", "pbs1"), ("SGE", "sge1"), ("LSF", "lsf1")]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"PATH": "/usr/bin", "SLURM_TASKS_PER_NODE": "4", "PBS_ENVIRONMENT": "PBS_BATCH"},
        {"SLURM_JOB_NODELIST": "  ", "PBS_NODEFILE": "", "NSLOTS": "4"},
    ],
)
def test_no_scheduler(env: dict[str, str]) -> None:
    assert hosts_from_environment(env) is None


# --------------------------------------------------------------------------------------------
# resolve_hosts


def test_resolve_hostfile_beats_environment(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("a 2\n", encoding="utf-8")
    env = {"SLURM_JOB_NODELIST": "s1", "SLURM_TASKS_PER_NODE": "1"}
    assert resolve_hosts(path, None, env) == (f"hostfile {path}", hosts(("a", 2)))
    assert resolve_hosts(str(path), None, env) == (f"hostfile {path}", hosts(("a", 2)))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("--hosts", [("x", 2), ("y", 1)])),
        (
            {"SLURM_JOB_NODELIST": "s1", "SLURM_TASKS_PER_NODE": "1"},
            ("--hosts", [("x", 2), ("y", 1)]),
        ),
    ],
)
def test_resolve_hosts_arg_beats_environment(
    env: dict[str, str], expected: tuple[str, list[tuple[str, int]]]
) -> None:
    source, found = resolve_hosts(None, ["x", "y", "x"], env)
    assert (source, found) == (expected[0], hosts(*expected[1]))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_NODELIST": "s[1-2]", "SLURM_TASKS_PER_NODE": "3(x2)"}, "SLURM allocation"),
        ({"LSB_MCPU_HOSTS": "l1 3 l2 3"}, "LSF allocation"),
    ],
)
def test_resolve_environment(env: dict[str, str], expected: str) -> None:
    source, found = resolve_hosts(None, None, env)
    assert source == expected
    assert [host.slots for host in found] == [3, 3]


def test_resolve_local_machine() -> None:
    assert resolve_hosts(None, None, {}) == ("local machine", [Host(LOCAL_HOST, None)])
    assert LOCAL_HOST == "localhost"


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(HostsArgumentError, match="--hostfile and --hosts cannot be used together"):
        resolve_hosts(tmp_path / "hosts", ["a"], {})
    with pytest.raises(HostfileError, match="does not exist"):
        resolve_hosts(tmp_path / "hosts", None, {})
    with pytest.raises(HostsArgumentError, match="at least one host"):
        resolve_hosts(None, [], {})
    with pytest.raises(SchedulerEnvironmentError, match="LSB_MCPU_HOSTS"):
        resolve_hosts(None, None, {"LSB_MCPU_HOSTS": "a"})
