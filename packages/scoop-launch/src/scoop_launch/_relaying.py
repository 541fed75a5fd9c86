"""What the launcher hears from the broker, and what it passes on to the run's processes.

A mixin of :class:`scoop_launch._lifecycle.Run`. The broker's standard output carries its
address, then lines for the launcher: the progress totals (``--progress``: one line redrawn in
place on the terminal), a worker it took for lost (killed here, or by its host's agent), the end
of the run (passed on to the agents). The launcher tells the broker of a worker that ended
(``gone``), and copies its own standard input to the root's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any

from scoop_launch._processes import Local
from scoop_launch._watching import RunProcesses


class Relaying(RunProcesses):
    """The launcher's lines to and from its processes (mixed into Run)."""

    _progress_lock: threading.Lock
    _progress_shown: bool
    _stopping: threading.Event

    def _read_broker(self, broker: Local) -> None:
        # The broker's standard output carries only its address, then the end of the run.
        assert broker.popen.stdout is not None
        for line in broker.popen.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing): this reader must not die of it
            if not isinstance(message, dict):
                continue
            if "address" in message:
                self.events.put(("address", message["address"]))
            elif "progress" in message:
                self._show_progress(message["progress"])
            elif "lost" in message:
                self._stop_lost_worker(message["lost"])
            elif "ending" in message:
                # Relayed from this thread: the main one may have returned from wait() already
                # (the root exits right after its SHUTDOWN) while remote workers still end.
                self.ending = True
                for agent in self.agents:
                    agent.send_line({"ending": message["ending"]})
                self.events.put(("ending", message["ending"]))

    def _show_progress(self, totals: dict[str, int]) -> None:
        """Redraw the progress line in place (``--progress``)."""
        line = (
            f"scoop: {totals['done']} tasks done, {totals['running']} running or waiting, "
            f"{totals['queued']} queued; {totals['busy']}/{totals['workers']} workers with tasks"
        )
        with self._progress_lock, contextlib.suppress(OSError, ValueError):
            if self._stopping.is_set():
                return  # the line was cleared for good
            sys.stderr.write(f"\r\x1b[K{line}")
            sys.stderr.flush()
            self._progress_shown = True

    def _stop_lost_worker(self, index: Any) -> None:
        """The broker took worker ``index`` for lost: make sure it runs no more (SIGKILL)."""
        for process in self.local:
            if process.index == index:
                process.signal_group(signal.SIGKILL)
        for agent in self.agents:
            if index in agent.indices:
                agent.send_line({"kill": index})

    def _report_gone(self, index: int, reason: str, running: int = 0) -> None:
        """Tell the broker that worker ``index`` is gone; it has its tasks run elsewhere."""
        if self.broker is not None:
            self.broker.send_line({"gone": index, "reason": reason, "running": running})

    def _forward_stdin(self) -> None:
        """Copy this process's standard input to the root's (over ssh for a remote root)."""
        root: Any = self.root  # a local process, or the agent of the root's host
        local = root if isinstance(root, Local) else None
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                data = b""
            if local is not None:
                stdin = local.popen.stdin
                if stdin is None:
                    return
                try:
                    if not data:
                        stdin.close()
                        return
                    stdin.write(data)
                    stdin.flush()
                except (BrokenPipeError, OSError, ValueError):
                    return  # the root is gone, or does not read it any more
            else:
                if not data:
                    root.send_line({"stdin_eof": True})
                    return
                root.send_line({"stdin": base64.b64encode(data).decode("ascii")})
