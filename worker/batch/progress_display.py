"""Progress for people: a bar on a terminal, a periodic log line everywhere else.

In a Kubernetes pod nobody watches a bar, but a line every ``interval_s`` in the logs tells
how far a run is and how fast it goes; on a terminal the bar does that without the noise.
The total is unknown while the listing streams, so the bar counts up with its rate, and the
listed count is shown beside it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import structlog
from tqdm import tqdm

from .tally import Tally

__all__ = ["ProgressReporter"]



class ProgressReporter:
    """Call :meth:`update` whenever rows were written or on a timer; :meth:`close` at the end."""

    def __init__(self, mode: str = "auto", *, command: str = "run", stream: TextIO | None = None,
                 interval_s: float = 10.0) -> None:
        self._log = structlog.get_logger(f"picscore.{command}")
        self.stream = stream or sys.stderr
        show_bar = mode == "always" or (mode == "auto" and self.stream.isatty())
        self._bar = tqdm(desc="objects", unit="obj", file=self.stream, dynamic_ncols=True) if show_bar else None
        self.interval_s = interval_s
        self._last_log = time.monotonic()
        self._started = time.monotonic()
        self._shown = 0

    def update(self, tally: Tally, listed: int) -> None:
        done = sum(tally.by_status.values())
        if self._bar is not None:
            self._bar.update(done - self._shown)
            self._bar.set_postfix(listed=listed, **{k: v for k, v in sorted(tally.by_status.items())}, refresh=False)
            self._shown = done
            return
        now = time.monotonic()
        if now - self._last_log >= self.interval_s:
            self._last_log = now
            elapsed = now - self._started
            per_second = round(done / elapsed, 1) if elapsed else 0.0
            self._log.info("progress", listed=listed, written=done, per_second=per_second,
                           elapsed_s=round(elapsed, 1), **dict(tally.by_status))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
