"""Test hook: delay the root worker's join by 1.5 s (to order the joins deterministically).

The root joins while its script runs (scoop._rootstart); the delay holds both back, so that the
script's work is submitted once the other worker has long asked for some.
"""

import os

if os.environ.get("SCOOP_TEST_DELAY_ROOT_JOIN"):
    import time

    from scoop import _worker

    _join_in_background = _worker.WorkerScheduler.join_in_background

    def join_in_background(self, *args, **kwargs):
        time.sleep(1.5)
        return _join_in_background(self, *args, **kwargs)

    _worker.WorkerScheduler.join_in_background = join_in_background
