"""Test hook: delay the root worker's join by 1.5 s (to order the joins deterministically)."""

import os

if os.environ.get("SCOOP_TEST_DELAY_ROOT_JOIN"):
    import time

    from scoop import _worker

    _join = _worker.WorkerScheduler.join

    def join(self, *args, **kwargs):
        if self.index == 0:
            time.sleep(1.5)
        return _join(self, *args, **kwargs)

    _worker.WorkerScheduler.join = join
