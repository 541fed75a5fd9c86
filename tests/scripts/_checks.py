"""A tiny check runner for the scripts the end-to-end tests launch.

A script registers checks with ``@check`` and ends with ``run_checks()``. Each check runs in
turn; the script prints ``CHECK <name> PASS`` or ``CHECK <name> FAIL`` (with the traceback between
``BEGIN <name>`` and ``END <name>`` lines), then ``CHECKS DONE <failed>``, and exits 1 if any
check failed. Running every check of a script in one launch keeps the suite fast; the tests
report each check separately.
"""

import sys
import time
import traceback

CHECKS = []


def check(fn):
    """Register ``fn`` as a check of this script (they run in definition order)."""
    CHECKS.append(fn)
    return fn


def _worker_index(_):
    import scoop

    time.sleep(0.01)  # blocking, so that idle workers ask for the rest
    return scoop.worker[1] if scoop.worker else 0


def wait_for_every_worker(rounds=200):
    """Map small tasks until every worker of the run has run one (all have joined), so that
    checks about remote behaviour do not depend on how fast workers start."""
    import scoop
    from scoop import futures

    expected = set(range(scoop.SIZE)) if root_runs_tasks() else set(range(1, scoop.SIZE))
    seen = set()
    for _ in range(rounds):
        seen.update(futures.map(_worker_index, range(scoop.SIZE * 2)))
        if seen == expected:
            return
    raise AssertionError(f"only workers {sorted(seen)} of {sorted(expected)} ever ran a task")


def task_runners(size):
    """How many of ``size`` workers run tasks (all but the root with --root-runs-no-task)."""
    return size if root_runs_tasks() else size - 1


def root_runs_tasks():
    """False when the run was started with --root-runs-no-task (every task travels)."""
    from scoop import _runtime

    return getattr(_runtime.current(), "runs_tasks", True)


def raises(error, call):
    """Call ``call()``; it must raise ``error``, which is returned."""
    try:
        call()
    except error as exc:
        return exc
    raise AssertionError(f"no {error.__name__}")


def run_checks(wait_for_workers=True):
    """Run the registered checks (or those named in ``sys.argv[2:]``) and exit."""
    if wait_for_workers:
        wait_for_every_worker()
    wanted = set(sys.argv[2:])
    failed = 0
    for fn in CHECKS:
        name = fn.__name__
        if wanted and name not in wanted:
            continue
        start = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print(f"BEGIN {name}\n{traceback.format_exc()}END {name}", flush=True)
            print(f"CHECK {name} FAIL", flush=True)
        else:
            print(f"CHECK {name} PASS {time.monotonic() - start:.2f}s", flush=True)
    print(f"CHECKS DONE {failed}", flush=True)
    sys.exit(1 if failed else 0)
