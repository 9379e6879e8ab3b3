"""Ranking and rendering in other processes, so the process that sends only sends.

Takes a batch's subscribers and what each was already sent; gives their messages (or
"skipped" outcomes), in order, exactly as compose.py makes them in this process.

Making a message (rank ≈ 1.3 ms, render ≈ 2.2 ms of CPU in `make bench`) costs more than
twice what sending it costs the SMTP client, and one Python process runs one of them at a
time. With
PAPERBOY_RENDER_PROCESSES > 0 a batch of at least PAPERBOY_RENDER_PROCESSES_FROM
subscribers has its messages made by a pool of processes, in chunks, a few chunks ahead
of the connections; the sending process receives finished bytes, sends them, and writes
each outcome to the ledger after the server's reply as before. Nothing about delivery
or the ledger changes: the pool never sends and never opens SQLite.

The pool lives as long as its corpus (one per run): each process unpickles the corpus
and builds its indexes and renderer once. If a pool process dies, the rest of the batch
is made in the sending process, so the run goes on.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flows.children import die_with_parent, ignore_interrupts, interrupts_blocked
from flows.outgoing import Outgoing
from flows.links import secret_key
from flows.models import Outcome
from flows.compose import cyclic_gc_paused, make_one, outgoing, prepare_ranking, renderer_for
from flows.corpus import Corpus
from flows.shipped import plain_settings, plain_subscriber
from flows.timing import add_seconds, timed

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings
    from flows.subscribers import Subscriber

log = logging.getLogger(__name__)

CHUNK = 25  # subscribers per job: big enough that pickling is noise, small enough to start soon
AHEAD = 3  # jobs queued per process: keeps them busy, bounds messages held (≈ 50 KB each)

Made = Outgoing | Outcome


class MessagePool:
    """Processes that make messages for one corpus (see the module docstring)."""

    def __init__(self, corpus: Corpus, settings: Settings, processes: int) -> None:
        self.corpus, self.settings, self.processes = corpus, settings, processes
        # "spawn": the flow's process runs threads (Prefect's), which a forked child would
        # inherit in whatever state they were in.
        self.executor = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            # the corpus, settings and (per job) subscribers as plain values: a render
            # process never imports pydantic (flows/shipped.py)
            initializer=_start, initargs=(corpus.shipped(), plain_settings(settings), secret_key(settings),
                                          os.getpid(), threading.current_thread() is threading.main_thread()))
        # They die with this process and ignore the terminal's Ctrl-C (flows/children.py);
        # SIGINT stays blocked while they start, until they ignore it.
        with _main_not_shipped(), interrupts_blocked():  # every process starts now, none later
            for _ in range(processes):
                self.executor.submit(_ready)  # not waited for: they get ready while this one works

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def make(self, todo: Sequence[Subscriber], seen: dict[str, set[str]],
             on_skip: Callable[[Outcome], None],
             seconds: dict[str, float] | None = None) -> Iterator[Outgoing]:
        """Like `compose.outgoing`, the messages made here: in order, lazily, a few chunks
        ahead. The time spent waiting for them is charged to "receive"; the pool's own
        index, rank and render seconds to "pool_index", "pool_rank", "pool_render"."""
        chunks = deque(todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK))
        pending: deque[Future] = deque()
        done = 0  # subscribers whose messages were handed on
        try:
            while chunks or pending:
                while chunks and len(pending) < AHEAD * self.processes:
                    job = [(plain_subscriber(s), seen.get(s.email, set())) for s in chunks.popleft()]
                    pending.append(self.executor.submit(_make, job))
                with timed(seconds, "receive"):
                    made, spent = pending.popleft().result()
                add_seconds(seconds, spent, prefix="pool_")
                for item in made:
                    done += 1
                    if isinstance(item, Outcome):
                        on_skip(item)
                    else:
                        yield item
        except BrokenProcessPool as exc:
            rest = todo[done:]
            log.warning("a render process stopped (%s); making the remaining %d messages here",
                        exc, len(rest))
            self.close()
            _forget(self)
            corpus, settings = self.corpus, self.settings
            yield from outgoing(rest, corpus, renderer_for(settings), settings, seen, on_skip, seconds)


@contextmanager
def _main_not_shipped() -> Iterator[None]:
    """Start processes without the parent's ``__main__``. A spawned process runs the parent's
    main script again (as ``__mp_main__``) unless the script guards its work with
    ``if __name__ == "__main__":``; an operator's script calling the flow without it would
    start the whole run over in every render process. They need nothing from it, so
    multiprocessing, which looks at ``sys.modules["__main__"]`` to decide, sees a bare one."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_POOL: MessagePool | None = None


def pool_for(corpus: Corpus, settings: Settings, subscribers: int) -> MessagePool | None:
    """The pool for this corpus (started on first use), or None where the batch is made
    here: render processes off, a small batch, or a process that may not have children
    (a Dask worker is daemonic)."""
    global _POOL
    wanted = settings.render_processes
    if not wanted or subscribers < settings.render_processes_from or multiprocessing.current_process().daemon:
        return None
    if _POOL is not None and (_POOL.corpus.token != corpus.token or _POOL.processes != wanted):
        close_pools()
    if _POOL is None:
        started = time.perf_counter()
        try:
            _POOL = MessagePool(corpus, settings, wanted)
        except (BrokenProcessPool, OSError) as exc:
            log.warning("could not start render processes (%s); making messages here", exc)
            return None
        log.info("started %d render process(es) in %.2f s", wanted, time.perf_counter() - started)
        # (a process that fails to get ready breaks the pool: its first batch then makes
        # its messages here, see MessagePool.make)
    return _POOL


def close_pools() -> None:
    """Stop the render processes (the daily flow does at its end; also at exit)."""
    global _POOL
    if _POOL is not None:
        pool, _POOL = _POOL, None
        pool.close()


def _forget(pool: MessagePool) -> None:
    global _POOL
    if _POOL is pool:
        _POOL = None


atexit.register(close_pools)


# -- in a pool process ----------------------------------------------------------------------------

_WORKER: dict = {}


def _ready() -> int:
    return os.getpid()


def _start(corpus: Corpus, settings: Settings, key: str, parent: int, from_main_thread: bool) -> None:
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group:
    # stopping is the sending process's decision (it finishes, records, then closes this
    # pool), so a render process does not die under it mid-chunk; and it dies with that
    # process however that one ends (flows/children.py).
    ignore_interrupts()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent, kernel=from_main_thread)
    _WORKER.update(corpus=corpus, settings=settings, key=key, renderer=renderer_for(settings))
    seconds: dict[str, float] = {}
    with timed(seconds, "index"):
        corpus.warm()  # before the first job: meanwhile the flow's process reads the subscribers
    _WORKER["seconds"] = seconds  # reported with the first job's


def _make(job: list[tuple[Subscriber, set[str]]]) -> tuple[list[Made], dict[str, float]]:
    """Make one chunk's messages; with the seconds spent per stage (wall, and "_cpu")."""
    w = _WORKER
    seconds = w.pop("seconds", None) or {}
    with cyclic_gc_paused():
        prepare_ranking([subscriber for subscriber, _ in job], w["corpus"], seconds)
        made = [make_one(subscriber, w["corpus"], w["renderer"], w["settings"], w["key"], seen, seconds)
                for subscriber, seen in job]
    give_back()
    return made, seconds


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _malloc_trim()


def give_back() -> None:
    """Hand the memory a job freed back to the system. glibc keeps freed heap pages for
    later use, so a render process's resident size only grows: after 10,000 digests
    ≈ 7 MB of it was free heap (its peak ≈ 3 MB lower with this). ≈ 0.6 ms a job of 25
    digests (CPU of the render process, outside the stages it times). No-op elsewhere."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
