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


def run_checks():
    """Run the registered checks (or those named in ``sys.argv[2:]``) and exit."""
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
