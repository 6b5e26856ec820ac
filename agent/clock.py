"""The agent's wall clock, and its one test seam.

Everything the agent stamps with the time of day (check results, spool entries, batches) reads the
``clock_ms`` that ``run_agent`` hands out. Scheduling, back-off and deadlines use monotonic time and
never read it; the spool orders entries by their seq, never by a timestamp.

``CENTERWATCH_AGENT_CLOCK_OFFSET_FILE`` — for tests only, unset by default: the path of a file
holding an offset in milliseconds (``7200000``, ``-3600000``) added to every reading. The file is
read again whenever it changes, so a test can step a running agent's clock forward or back the way
NTP or someone setting the time would, without touching the machine's clock. A missing, empty or
unreadable file means no change from the last offset read (0 at first).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger("centerwatch.agent.clock")

OFFSET_FILE_ENV = "CENTERWATCH_AGENT_CLOCK_OFFSET_FILE"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class OffsetClock:
    """``wall_ms()`` plus the offset in ``path`` (re-read when the file changes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset_ms = 0
        self._stamp: tuple[int, int, int] | None = None

    def __call__(self) -> int:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                text = self.path.read_text(encoding="ascii").strip()
                if text:
                    offset = int(text)
                    if offset != self.offset_ms:
                        log.warning("test clock offset now %+d ms (%s)", offset, self.path)
                    self.offset_ms = offset
                self._stamp = stamp
        except (OSError, ValueError):
            pass  # keep the last offset: a test rewriting the file must not make the clock jitter
        return wall_ms() + self.offset_ms


def clock_from_env(environ: Mapping[str, str]) -> Callable[[], int]:
    """The plain wall clock, or an ``OffsetClock`` when the test seam is set."""
    path = environ.get(OFFSET_FILE_ENV, "")
    if not path:
        return wall_ms
    log.warning("%s is set: the agent's wall clock is offset for testing (%s)", OFFSET_FILE_ENV, path)
    return OffsetClock(Path(path))
