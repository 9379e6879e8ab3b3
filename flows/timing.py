"""Where the time goes: wall and CPU seconds charged to named stages.

Takes a dict of seconds (a batch's, see `send.BatchReport.seconds`) and adds to it;
gives nothing else. The benchmark reads the dict; product code only marks where one
stage ends and the next begins::

    watch = Stopwatch(report.seconds)
    rank_it()
    watch.lap("rank")        # wall time since the watch started → seconds["rank"],
    render_it()              # this thread's CPU time → seconds["rank_cpu"]
    watch.lap("render")

    with timed(report.seconds, "ledger"):
        record(outcome)

A lap costs about a microsecond (two clock reads, two dict updates), cheap enough for
every message; with ``seconds=None`` it only reads the clocks. The CPU time tells a
slow stage from a busy machine.
"""

from __future__ import annotations

from time import perf_counter, thread_time


class Stopwatch:
    """Charges the time between marks to stages: ``seconds[stage]`` (wall) and
    ``seconds[stage + "_cpu"]`` (this thread's CPU)."""

    __slots__ = ("seconds", "_wall", "_cpu")

    def __init__(self, seconds: dict[str, float] | None) -> None:
        self.seconds = seconds
        self._wall, self._cpu = perf_counter(), thread_time()

    def restart(self) -> None:
        """Start the next stage now, charging the time since the last mark to none."""
        self._wall, self._cpu = perf_counter(), thread_time()

    def lap(self, stage: str) -> None:
        """Charge the time since the last mark to ``stage``; the next stage starts now."""
        wall, cpu = perf_counter(), thread_time()
        seconds = self.seconds
        if seconds is not None:
            seconds[stage] = seconds.get(stage, 0.0) + wall - self._wall
            key = stage + "_cpu"
            seconds[key] = seconds.get(key, 0.0) + cpu - self._cpu
        self._wall, self._cpu = wall, cpu


class timed:  # noqa: N801 - used like a function: ``with timed(seconds, "ledger"):``
    """Charge the time spent inside the ``with`` block to ``stage``."""

    __slots__ = ("_watch", "_stage")

    def __init__(self, seconds: dict[str, float] | None, stage: str) -> None:
        self._watch, self._stage = Stopwatch(seconds), stage

    def __enter__(self) -> Stopwatch:
        self._watch.restart()
        return self._watch

    def __exit__(self, *exc_info: object) -> None:
        self._watch.lap(self._stage)


def add_seconds(seconds: dict[str, float] | None, spent: dict[str, float], prefix: str = "") -> None:
    """Add another process's or batch's stage seconds to ``seconds`` (names prefixed)."""
    if seconds is not None:
        for stage, value in spent.items():
            key = prefix + stage
            seconds[key] = seconds.get(key, 0.0) + value
