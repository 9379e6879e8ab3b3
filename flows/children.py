"""Child processes that die with the run that started them, and ignore the terminal's Ctrl-C.

A run starts helpers: the temporary Prefect API server (flows/tempserver.py) and the render
processes (flows/makers.py); multiprocessing adds its resource tracker. If the run is
killed (SIGKILL, OOM killer, a crash), nothing would stop them: they lived on for minutes
holding hundreds of MB. So each helper watches its parent:

* on Linux the kernel sends it SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``;
  strictly, when the parent *thread* that started it ends, so it is used only for children
  started from the main thread);
* everywhere, a daemon thread notices that its parent process changed (``os.getppid()``)
  within half a second and exits.

The resource tracker needs neither: it exits when the last process holding its pipe (the
run and its render processes) is gone.

A terminal's Ctrl-C goes to its whole foreground process group. The helpers must not take
it: the run stops them itself, last, after recording what it reached (see flows/signals.py).
The server gets a session of its own; render processes start with SIGINT blocked and then
ignore it. A service manager's SIGTERM may reach every process of the service at once: the
render processes ignore it, the server keeps it blocked (`terminations_blocked`).

``python -m flows.children PARENT_PID MODULE ARG…`` runs ``python -m MODULE ARG…`` as such a
helper (the temporary server is uvicorn run that way).
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5


def parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent thread ends (Linux);
    True if it accepted."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int, *, kernel: bool = True, poll: float = POLL_SECONDS) -> None:
    """Exit this process when ``parent`` (the pid that started it) is gone.

    ``kernel``: also the Linux parent-death signal (only right when the parent started this
    process from its main thread, see the module docstring)."""
    if kernel:
        parent_death_signal()
    if os.getppid() != parent:  # it died before the kernel was asked: nobody would tell us
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def ignore_interrupts() -> None:
    """SIGINT ignored (and unblocked: it may arrive blocked, see `interrupts_blocked`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def interrupts_blocked() -> Iterator[None]:
    """SIGINT and SIGHUP blocked in this thread while it starts child processes: they inherit
    the mask, so a Ctrl-C during their start-up (before they can ignore it) cannot kill them
    with a traceback, and a hangup (the shell sends SIGHUP to the whole job) never reaches
    them: SIGHUP stays blocked in them (`ignore_interrupts` unblocks SIGINT only), and they die
    with the run. The process still gets the signals: another thread handles them."""
    with signals_blocked(signal.SIGINT, signal.SIGHUP):
        yield


@contextmanager
def terminations_blocked() -> Iterator[None]:
    """SIGTERM blocked in this thread while it starts a child process that must outlive the
    run's own SIGTERM: the child inherits the mask, and the signal never reaches it (a blocked
    signal stays pending; Python's handlers do not unblock it). For the temporary Prefect
    server: a service manager's stop (systemd: SIGTERM to every process of the service) must
    not take it from under the run, which still records its final state there. The run stops
    it with SIGINT, and it dies with the run in any case (`die_with_parent`)."""
    with signals_blocked(signal.SIGTERM):
        yield


@contextmanager
def hangups_blocked() -> Iterator[None]:
    """SIGHUP blocked in this thread while it starts a helper process (inherited: the helper
    never gets a hangup, and dies with the run or ends with its work)."""
    with signals_blocked(signal.SIGHUP):
        yield


@contextmanager
def signals_blocked(*signals: signal.Signals) -> Iterator[None]:
    """These signals blocked in this thread for the block (children started in it inherit
    the mask); the mask as it was afterwards."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_resource_tracker() -> None:
    """multiprocessing's resource tracker, started now with SIGHUP blocked (it ignores only
    SIGINT and SIGTERM): started later by whichever helper needs it first, a hangup sent to
    the run's process group killed it, and multiprocessing printed a traceback per resource
    when it relaunched it. Call before any helper process starts."""
    from multiprocessing import resource_tracker

    with hangups_blocked():
        resource_tracker.ensure_running()


def main(argv: list[str]) -> None:
    """``python -m flows.children PARENT_PID MODULE ARG…``"""
    if len(argv) < 3:
        sys.exit("usage: python -m flows.children PARENT_PID MODULE [ARG…]")
    parent, module = int(argv[1]), argv[2]
    die_with_parent(parent)
    sys.argv = [module, *argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv)
