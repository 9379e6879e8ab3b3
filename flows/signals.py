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

import logging
import os
import signal
import sys
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
        if _pass_to_workers.is_set():
            pass_stop_to_workers()
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


_pass_to_workers = threading.Event()


@contextmanager
def stops_passed_to_workers(local_cluster: bool = True) -> Iterator[None]:
    """While the block runs (batches on the run's own local Dask cluster: ``local_cluster``), a
    stop request made by a signal to this process alone (`kill PID`, a Prefect cancellation) is
    passed on to the cluster's worker processes as SIGINT, which they take as a stop request too
    (`stop_on_signals_on_this_worker`). Without it they sent every batch before the run ended."""
    if not local_cluster:
        yield
        return
    _pass_to_workers.set()
    try:
        yield
    finally:
        _pass_to_workers.clear()


def pass_stop_to_workers() -> None:
    """SIGINT to this process's multiprocessing children (the local cluster's workers; render
    processes, not used with Dask, ignore it anyway)."""
    import psutil

    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                child.send_signal(signal.SIGINT)
        except psutil.Error:
            pass


def request_stop_quietly(signum: int, frame: object) -> None:
    """The handler on a Dask worker of the run: every signal asks for a stop, nothing more (the
    run's own process says what happens; a second Ctrl-C is the run's to act on)."""
    request_stop(signal.Signals(signum).name)


_worker_handled = threading.Event()


def stop_on_signals_on_this_worker(timeout: float = 5.0) -> None:
    """On a worker process of the run's own local Dask cluster: SIGINT, SIGTERM and SIGHUP ask
    this process to stop (flows/stopping.py) from now on, as they do the run's process.

    A signal to the run's whole process group (a hangup, a terminal's Ctrl-C, systemd's
    control-group stop) reaches the workers too. By default SIGHUP and SIGTERM killed a worker
    mid-batch: its outcomes never came back, its nanny started a new worker and Dask ran the
    batch again there, mailing everyone the dead worker had already mailed a second time.
    With these handlers the batch in hand stops after the SMTP transaction in hand and returns
    what was sent; the batches after it send nothing. Installed as each worker starts
    (`dask_setup`), and checked again by each batch on a worker (a no-op after the first and
    outside a worker); handlers belong to the worker's main thread, where its event loop runs,
    so they are installed from there. SIGHUP stays ignored when the run started with it
    ignored (nohup)."""
    if _worker_handled.is_set() or "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        loop = get_worker().loop
    except ValueError:  # not on a worker
        return
    done = threading.Event()

    def install() -> None:
        try:
            _install_worker_handlers()
        finally:
            done.set()

    loop.add_callback(install)
    done.wait(timeout)


def _install_worker_handlers() -> None:
    try:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                    continue
                signal.signal(signum, request_stop_quietly)
    finally:
        _worker_handled.set()


def dask_setup(worker: object) -> None:
    """Dask's preload hook (`preload=["flows.signals"]`, for the run's own local cluster only:
    flows/tasks.py `task_runner_for`), run on the worker's event loop, in its main thread, as
    each worker starts, a nanny's restart included. Before, a worker got its stop handlers
    with its first batch, so one without a batch yet died of a hangup (its nanny started
    another) and took the stop passed on as SIGINT as a KeyboardInterrupt."""
    _install_worker_handlers()
    logging.getLogger("distributed.worker").addFilter(_no_heartbeat_failure)


def _no_heartbeat_failure(record: logging.LogRecord) -> bool:
    """Drops a worker's "Failed to communicate with scheduler during heartbeat." and its
    traceback (≈ 20 lines of CommClosedError … heartbeat_worker … Stream is closed). On the
    run's own local cluster the scheduler lives in the run's process, so a heartbeat fails
    only when the run closes the cluster while one is on its way (1 stopped run in 4 printed
    it, just before the "interrupted" line): nothing to act on."""
    return not record.getMessage().startswith("Failed to communicate with scheduler during heartbeat")


def exit_code(reason: str | None) -> int | None:
    """The exit code for a run stopped for ``reason`` (a signal name), or None."""
    if reason is None:
        return None
    return EXIT_CODES.get(reason, 1)
