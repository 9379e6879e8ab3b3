"""SIGINT, SIGTERM and SIGHUP at the edge of a run: a stop request, never an exception deep inside.

The first SIGINT (Ctrl-C) or SIGTERM (systemd, Docker, Kubernetes, a Prefect cancellation)
asks the run to stop (flows/stopping.py): every loop finishes the unit in hand (an SMTP
transaction, a listing date), records it, takes no new work, and the flow ends Cancelled
with its summary; the command then exits with `EXIT_CODES[signal]`. A second Ctrl-C stops
at once (KeyboardInterrupt where the run is); what was recorded stays recorded.

Installed by the CLI around a command, and again by each flow for the time it runs (Prefect
puts its own SIGTERM handler in place for a flow run, which would raise in the middle of a
transaction). Signal handlers belong to the main thread: elsewhere this does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flows.stopping import request_stop, stop_requested

# 128 + the signal's number, as shells report a process killed by it; distinct from the
# run's own codes (0 ok, 1 problems, 2 configuration, 3 broken subscriber files).
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
# SIGHUP: a dropped SSH session or a closed terminal; the shell sends it to each job. Left
# alone when the command started with it ignored (`nohup paperboy run`).
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def announce(text: str) -> None:
    """One line on stderr, written with a single system call (safe inside a handler)."""
    try:
        os.write(2, f"\n{text}\n".encode())
    except OSError:
        pass


def on_signal(signum: int, frame: object) -> None:
    """The handler: the first signal asks for a stop, a second SIGINT interrupts at once."""
    name = signal.Signals(signum).name
    if stop_requested() is None:
        request_stop(name)
        again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
        announce(f"{name}: stopping after the work in hand; everything done so far is "
                 f"recorded{again}")
        return
    if signum == signal.SIGINT:
        announce("SIGINT again: stopping now")
        raise KeyboardInterrupt


@contextmanager
def stop_on_signals(handler: Callable[[int, object], None] = on_signal) -> Iterator[None]:
    """SIGINT and SIGTERM request a stop while the block runs (main thread only); the
    previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in HANDLED:
        if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
            continue  # nohup: the operator asked for the run to outlive the terminal
        try:
            previous[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):  # not the main interpreter, or not allowed here
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            try:
                signal.signal(signum, old if old is not None else signal.SIG_DFL)
            except (ValueError, OSError):
                pass


def exit_code(reason: str | None) -> int | None:
    """The exit code for a run stopped for ``reason`` (a signal name), or None."""
    if reason is None:
        return None
    return EXIT_CODES.get(reason, 1)
