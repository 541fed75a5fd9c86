"""The root ends at once; the other workers take 2 s to import the script (so they join the run
after the root has ended). The run should still end promptly."""

import time

import scoop

if not scoop.IS_ORIGIN:
    time.sleep(2.0)

if __name__ == "__main__":
    print("root done", flush=True)
