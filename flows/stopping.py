"""A run's request to stop: set at the edge (a signal handler in the CLI, a cancelled
Prefect run), read by the stages that loop over work (sending, fetching a backfill).

Takes a reason ("SIGTERM", "SIGINT", …); gives every loop one question to ask between
two units of work: `stop_requested()`. Stopping is cooperative: a loop that sees the
request finishes the unit in hand (an SMTP transaction, a listing date), records its
outcome, takes no new work and returns; what is left is for the next run. Safe to set
from a signal handler (no locks taken) and to read from any thread.
"""

from __future__ import annotations

import threading

_requested = threading.Event()
_reason: list[str] = []


def request_stop(reason: str) -> None:
    """Ask every loop of this process to stop after the unit of work in hand."""
    if not _requested.is_set():
        _reason[:] = [reason]
        _requested.set()


def stop_requested() -> str | None:
    """The reason a stop was requested, or None."""
    return _reason[0] if _requested.is_set() and _reason else None


def wait_for_stop(timeout: float | None = None) -> str | None:
    """Block until a stop is requested (or the timeout passes); the reason or None."""
    _requested.wait(timeout)
    return stop_requested()


def clear_stop() -> None:
    """Forget a stop request (a new run in the same process, or a test)."""
    _requested.clear()
    _reason[:] = []
