"""A 512 MiB result forced to another worker: no process on its path holds more than one extra copy.

The client runs no task, so the result travels worker -> broker -> client. Each process's peak
resident memory (VmHWM) is compared with what it held before plus the result and one copy.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _checks import check, run_checks

import scoop

MiB = 1 << 20
SIZE = 512 * MiB
#: Interpreter and allocator noise on top of the copies.
SLACK = 64 * MiB


def _status(field, pid="self"):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def make(kind):
    """The result, built on the worker; with the worker's resident memory before it."""
    before = _status("VmRSS")
    value = b"\x01" * SIZE if kind == "bytes" else bytearray(b"\x01") * SIZE
    return value, before


def peak():
    return _status("VmHWM")


def _check_kind(kind):
    with scoop.Executor(1) as executor:
        assert executor.submit(abs, 1).result(60) == 1  # everything started and warm
        broker = executor._run.session.broker.popen.pid
        client_before, broker_before = _status("VmRSS"), _status("VmRSS", broker)
        value, worker_before = executor.submit(make, kind).result(120)
        assert len(value) == SIZE and value[-1] == 1
        # At most the result itself and one copy (a frame on its way), in every process.
        limit = 2 * SIZE + SLACK
        for name, grew in (
            ("client", _status("VmHWM") - client_before),
            ("broker", _status("VmHWM", broker) - broker_before),
            ("worker", executor.submit(peak).result(60) - worker_before),
        ):
            assert grew <= limit, f"{name} grew by {grew // MiB} MiB for a {SIZE // MiB} MiB {kind}"


@check
def a_large_bytes_result_costs_at_most_one_copy():
    _check_kind("bytes")


@check
def a_large_bytearray_result_costs_at_most_one_copy():
    _check_kind("bytearray")


if __name__ == "__main__":
    run_checks(wait_for_workers=False)
