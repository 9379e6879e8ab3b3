"""Progress of long work (backfills): a live bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from datetime import date
from typing import TextIO

log = logging.getLogger(__name__)


class DateProgress:
    """Counts dates done / remaining / failed; call it as ``progress(day, outcome)``, the
    outcome "ok", "failed" or "not tried" (counted as failed: the source proved unreachable)."""

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None,
                 logger: logging.Logger | logging.LoggerAdapter | None = None, every: float = 5.0):
        self.total, self.label = total, label
        self.done = self.failed = 0
        self.logger = logger or log
        self.every, self._last_log = every, 0.0
        self._bar = None
        stream = stream or sys.stderr
        if total and stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                 console=Console(file=stream), transient=False)
            self._task = self._bar.add_task(label, total=total, status="")
            self._bar.start()

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def status(self) -> str:
        return f"{self.done} done, {self.remaining} remaining, {self.failed} failed"

    def __call__(self, day: date, outcome: str) -> None:
        if outcome == "ok":
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, status=f"{self.status()} · last {day}")
            return
        now = time.monotonic()
        # every failure is worth a line; dates left untried (an unreachable source) and
        # successes only now and then
        if outcome == "failed" or now - self._last_log >= self.every or not self.remaining:
            self._last_log = now
            self.logger.info("%s: %s (last %s: %s)", self.label, self.status(), day, outcome)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
