"""The stages chained as plain functions: fetch → store → diff → rank → render → deliver.

The Prefect flows (``daily.py``, ``backfill.py``) wrap these in tasks; tests and
the benchmark call them directly. Nothing here imports Prefect.

Sending one batch is split at the database boundary, so a batch can run in a process
that never opens SQLite (a Dask worker):

* `plan_batch` (the flow's process, reads the ledger): who in the batch is due and not
  finished, and which candidates each was already sent; a picklable `BatchPlan`.
* `send_planned` (anywhere, no database): rank, render, deliver, and hand every
  `Outcome` to a callback the moment it is known.
* `run_batch` = both, in this process, with the callback writing the ledger.
* `send_detached` = `send_planned` collecting the outcomes into a `BatchResult` for
  the flow's process to record (`BatchAborted` carries them when the batch stops early).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.message import EmailMessage

from flows.deliver import Outgoing, deliver_sync
from flows.links import DigestLinks, digest_links, secret_key
from flows.models import Digest, Outcome, Paper
from flows.rank import PaperIndex, build_index, load_acronyms, rank, trending
from flows.render import Renderer
from flows.settings import Settings
from flows.sources import Source, SourceError
from flows.store import Store
from flows.subscribers import Subscriber

log = logging.getLogger(__name__)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TRENDING_COUNT = 5


# -- fetch ------------------------------------------------------------------------------------


@dataclass
class FetchReport:
    """What fetching listings did, per date."""

    dates_fetched: list[str] = field(default_factory=list)  # "source:YYYY-MM-DD"
    dates_failed: dict[str, str] = field(default_factory=dict)  # "source:date" -> reason
    papers_fetched: int = 0
    papers_new: int = 0
    items_skipped: int = 0
    earliest: date | None = None  # catching up after an outage: first date re-fetched

    def merge(self, other: "FetchReport") -> "FetchReport":
        if other.earliest and (self.earliest is None or other.earliest < self.earliest):
            self.earliest = other.earliest
        self.dates_fetched += other.dates_fetched
        self.dates_failed.update(other.dates_failed)
        self.papers_fetched += other.papers_fetched
        self.papers_new += other.papers_new
        self.items_skipped += other.items_skipped
        return self


def catch_up_dates(store: Store, source: str, today: date, lookback_days: int) -> list[date]:
    """Listing dates a daily run fetches: from the last good fetch (again: a day's list grows
    while the day lasts) through today, never further back than the lookback."""
    earliest = today - timedelta(days=lookback_days - 1)
    last = store.last_fetched(source)
    start = max(earliest, last) if last else earliest
    return [start + timedelta(days=n) for n in range((today - start).days + 1)]


def fetch_dates(store: Store, source: Source, days: Iterable[date],
                progress: Callable[[date, str], None] | None = None) -> FetchReport:
    """Fetch and store each date in turn; a failing date is recorded and the others go on."""
    report = FetchReport()
    for day in days:
        try:
            listing = source.fetch(day)
        except SourceError as exc:
            _record_failure(store, source.name, day, str(exc), report)
            log.warning("fetch %s:%s failed: %s", source.name, day, exc)
            if progress:
                progress(day, "failed")
            continue
        _store_listing(store, source.name, listing, report)
        if progress:
            progress(day, "ok")
    return report


def dates_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def missing_dates(store: Store, source: str, start: date, end: date, refresh: bool = False) -> list[date]:
    """The dates of a range still to fetch: all of them with refresh, else the ones never
    fetched successfully (so an interrupted backfill resumes where it stopped)."""
    done = set() if refresh else store.fetched_dates(source)
    return [day for day in dates_between(start, end) if day not in done]


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Contiguous runs of dates: [(first, last), …]."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _store_listing(store: Store, source: str, listing, report: FetchReport) -> None:
    report.papers_new += store.upsert_papers(listing.papers)
    store.record_fetch(source, listing.listed, papers=len(listing.papers), skipped=listing.skipped)
    report.dates_fetched.append(f"{source}:{listing.listed.isoformat()}")
    report.papers_fetched += len(listing.papers)
    report.items_skipped += listing.skipped


def _record_failure(store: Store, source: str, day: date, reason: str, report: FetchReport) -> None:
    store.record_fetch(source, day, papers=0, error=reason)
    report.dates_failed[f"{source}:{day.isoformat()}"] = reason


def fetch_backfill(store: Store, source: Source, days: Sequence[date], *, workers: int,
                   progress: Callable[[date, str], None] | None = None) -> FetchReport:
    """Fetch many dates: range queries where the source has them (arXiv's API), else several
    dates at once on threads. Only this thread writes SQLite, one date at a time, so an
    interrupt loses nothing already fetched."""
    report = FetchReport()
    note = progress or (lambda day, status: None)
    fetch_range = getattr(source, "fetch_range", None)
    if fetch_range is not None:
        for first, last in _runs(days):
            pending = set(dates_between(first, last))
            try:
                for listing in fetch_range(first, last):
                    if listing.listed in pending:
                        _store_listing(store, source.name, listing, report)
                        pending.discard(listing.listed)
                        note(listing.listed, "ok")
            except SourceError as exc:
                for day in sorted(pending):
                    _record_failure(store, source.name, day, str(exc), report)
                    note(day, "failed")
        return report
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fetch-{source.name}")
    try:
        futures = {pool.submit(source.fetch, day): day for day in days}
        for future in as_completed(futures):
            day = futures[future]
            try:
                _store_listing(store, source.name, future.result(), report)
                note(day, "ok")
            except SourceError as exc:
                _record_failure(store, source.name, day, str(exc), report)
                note(day, "failed")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


# -- diff, rank, render, deliver ------------------------------------------------------------------


@dataclass
class BatchReport:
    """Outcomes of one batch of subscribers."""

    considered: int = 0
    sent: int = 0
    skipped: int = 0  # nothing new to send
    already: int = 0  # digest for this date already final
    not_due: int = 0  # weekly subscribers on other days, inactive subscribers
    failed: dict[str, str] = field(default_factory=dict)  # email -> reason
    deferred: dict[str, str] = field(default_factory=dict)
    previews: dict[str, int] = field(default_factory=dict)  # dry run: email -> paper count
    workers: list[str] = field(default_factory=list)  # "host:pid" that ranked, rendered and sent
    # Seconds spent inside each stage (see STAGES), wall and, as "<stage>_cpu", this thread's
    # CPU. Sending streams, so the stages interleave in time: each counts only the time
    # inside its own code.
    seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "BatchReport") -> "BatchReport":
        for name in ("considered", "sent", "skipped", "already", "not_due"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.update(other.failed)
        self.deferred.update(other.deferred)
        self.previews.update(other.previews)
        self.workers += [w for w in other.workers if w not in self.workers]
        for stage, spent in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent
        return self

    def count(self, outcome: Outcome) -> None:
        if outcome.status == "sent":
            self.sent += 1
        elif outcome.status == "skipped":
            self.skipped += 1
        elif outcome.permanent:
            self.failed[outcome.subscriber] = outcome.error
        else:
            self.deferred[outcome.subscriber] = outcome.error


# Where a batch's time goes ("setup": building the renderer, once per process). "sending"
# is the wall time of the SMTP phase, which contains index, rank, render, receive and
# ledger (messages are made while earlier ones are on the wire); "deliver" is what remains
# of it: the SMTP client and waiting for the server. With render processes (flows.makers)
# index, rank and render happen there ("pool_index", … in their own seconds) and "receive"
# is the time this thread waited for their messages.
STAGES = ("diff", "setup", "index", "rank", "render", "receive", "ledger", "deliver", "sending")


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def _add(seconds: dict[str, float] | None, stage: str, since: tuple[float, float]) -> tuple[float, float]:
    """Charge the wall and CPU time since ``since`` to ``stage`` (and "<stage>_cpu"); returns
    now. About 1 µs a stage: the CPU time tells a slow stage from a busy machine."""
    now = _now()
    if seconds is not None:
        seconds[stage] = seconds.get(stage, 0.0) + now[0] - since[0]
        cpu = f"{stage}_cpu"
        seconds[cpu] = seconds.get(cpu, 0.0) + now[1] - since[1]
    return now


def is_due(subscriber: Subscriber, digest_date: date) -> bool:
    if not subscriber.active:
        return False
    return subscriber.frequency == "daily" or WEEKDAYS[digest_date.weekday()] == subscriber.weekday


def window_days(subscriber: Subscriber, settings: Settings) -> int:
    """A weekly digest covers the week; a daily one the recency window."""
    return max(7, settings.recency_days) if subscriber.frequency == "weekly" else settings.recency_days


_WORKER_INDEXES: dict[str, dict[int, PaperIndex]] = {}  # corpus token -> its indexes here


def _shared_indexes(token: str) -> dict[int, PaperIndex]:
    """This process's indexes of a shipped corpus; only the two latest corpora are kept, so a
    long-lived worker does not accumulate every day's."""
    if token not in _WORKER_INDEXES:
        while len(_WORKER_INDEXES) >= 2:
            del _WORKER_INDEXES[next(iter(_WORKER_INDEXES))]
        _WORKER_INDEXES[token] = {}
    return _WORKER_INDEXES[token]


class Corpus:
    """The candidate papers of one run, loaded once and indexed once per window length
    (daily, weekly). Holds no database handle, so batch tasks on other threads or
    workers can share it."""

    def __init__(self, papers: Sequence[Paper], settings: Settings, digest_date: date,
                 window: int | None = None, since: date | None = None):
        self.papers, self.settings, self.digest_date = list(papers), settings, digest_date
        # A fixed window makes a catch-up digest: every active subscriber, the whole range.
        self.window = window
        # After an outage the run re-fetched listings from `since`: those are candidates too,
        # even when older than the recency window, or papers added late to them would be lost.
        self.since = since
        self.acronyms = load_acronyms(settings.acronyms_file)
        self.token = uuid.uuid4().hex  # names this corpus in other processes
        self._indexes: dict[int, PaperIndex] = {}

    def __getstate__(self) -> dict:
        # Shipped to Dask workers: the papers, not the indexes (three times their size).
        return {**self.__dict__, "_indexes": {}}

    def __setstate__(self, state: dict) -> None:
        # Every batch brings a worker a fresh copy of the same corpus: the copies share
        # one set of indexes per process, so each is built once per worker, not per batch.
        self.__dict__.update(state)
        self._indexes = _shared_indexes(self.token)

    @classmethod
    def load(cls, store: Store, settings: Settings, digest_date: date,
             since: date | None = None) -> "Corpus":
        first = digest_date - timedelta(days=max(7, settings.recency_days) - 1)
        if since is not None:
            first = min(first, since)
        return cls(store.papers_listed(first, digest_date), settings, digest_date, since=since)

    @classmethod
    def for_range(cls, store: Store, settings: Settings, start: date, end: date) -> "Corpus":
        days = (end - start).days + 1
        return cls(store.papers_listed(start, end), settings, end, window=days)

    @property
    def catch_up(self) -> bool:
        return self.window is not None

    def window_for(self, subscriber: Subscriber) -> int:
        return self._window(window_days(subscriber, self.settings))

    def _window(self, days: int) -> int:
        if self.window:
            return self.window
        if self.since is not None:
            days = max(days, (self.digest_date - self.since).days + 1)
        return days

    def warm(self) -> None:
        """Build the index daily subscribers (most of them) rank against."""
        self.index(self._window(self.settings.recency_days))

    def index(self, days: int) -> PaperIndex:
        if days not in self._indexes:
            since = self.digest_date - timedelta(days=days - 1)
            papers = [p for p in self.papers if since <= p.listed <= self.digest_date]
            self._indexes[days] = build_index(papers, acronyms=self.acronyms)
        return self._indexes[days]

    def paper_ids(self) -> list[str]:
        return [p.id for p in self.papers]


def compose(subscriber: Subscriber, corpus: Corpus, seen: set[str]) -> Digest:
    """Rank the unseen candidates for one subscriber into a digest (possibly empty)."""
    index = corpus.index(corpus.window_for(subscriber))
    ranked = rank(index, subscriber, exclude_ids=seen) if subscriber.keywords else []
    extra: list = []
    if subscriber.include_trending:
        mine = seen | {r.paper.id for r in ranked}
        extra = trending(index, exclude_ids=mine, n=TRENDING_COUNT)
    return Digest(subscriber=subscriber.email, digest_date=corpus.digest_date,
                  papers=ranked, trending=extra)


def digest_paper_ids(digest: Digest) -> tuple[str, ...]:
    return tuple(r.paper.id for r in digest.papers) + tuple(p.id for p in digest.trending)


def plan(subscribers: Sequence[Subscriber], store: Store, digest_date: date,
         report: BatchReport, catch_up: bool = False) -> list[Subscriber]:
    """Who in this batch still needs a digest for this date (a catch-up: every active one)."""
    finished = store.finished_subscribers(digest_date)
    todo = []
    for subscriber in subscribers:
        report.considered += 1
        if not (subscriber.active if catch_up else is_due(subscriber, digest_date)):
            report.not_due += 1
        elif subscriber.email in finished:
            report.already += 1
        else:
            todo.append(subscriber)
    return todo


@dataclass
class BatchPlan:
    """One batch as the ledger saw it before sending: everything the sending side needs
    from the database, so it never opens it."""

    todo: list[Subscriber]
    seen: dict[str, set[str]]  # email -> candidate ids already delivered to them
    report: BatchReport  # what planning counted: considered, not due, already final


def plan_batch(subscribers: Sequence[Subscriber], store: Store, corpus: Corpus) -> BatchPlan:
    """Read the ledger for one batch: who is due and not finished, and what each has seen."""
    started = _now()
    report = BatchReport()
    todo = plan(subscribers, store, corpus.digest_date, report, catch_up=corpus.catch_up)
    seen = store.delivered_ids([s.email for s in todo], corpus.paper_ids()) if todo else {}
    _add(report.seconds, "diff", started)
    return BatchPlan(todo, seen, report)


def outgoing(todo: Sequence[Subscriber], corpus: Corpus, renderer: Renderer, settings: Settings,
             seen: dict[str, set[str]], on_skip: Callable[[Outcome], None],
             seconds: dict[str, float] | None = None) -> Iterator[Outgoing]:
    """Lazily rank and render one message at a time, so sending overlaps with it and
    rendered messages are never all held in memory. ``seconds`` collects the time spent
    in the index build, ranking and rendering."""
    key = secret_key(settings)
    for subscriber in todo:
        made = make_one(subscriber, corpus, renderer, settings, key, seen.get(subscriber.email, set()),
                        seconds)
        if isinstance(made, Outcome):
            on_skip(made)
        else:
            yield made


def make_one(subscriber: Subscriber, corpus: Corpus, renderer: Renderer, settings: Settings, key: str,
             seen: set[str], seconds: dict[str, float] | None = None) -> Outgoing | Outcome:
    """One subscriber's message, or the "skipped" outcome when there is nothing to send."""
    started = _now()
    corpus.index(corpus.window_for(subscriber))  # built by the first subscriber of a window
    started = _add(seconds, "index", started)
    digest = compose(subscriber, corpus, seen)
    started = _add(seconds, "rank", started)
    send_empty = subscriber.send_empty or settings.send_empty
    if not digest.papers and not digest.trending and not send_empty:
        return Outcome(subscriber.email, corpus.digest_date, "skipped")
    links = digest_links(settings, key, subscriber.email)
    message = make_message(renderer, digest, subscriber, links)
    _add(seconds, "render", started)
    return Outgoing(subscriber.email, corpus.digest_date, message, digest_paper_ids(digest),
                    message_id=digest.message_id)


def make_message(renderer: Renderer, digest: Digest, subscriber: Subscriber,
                 links: DigestLinks) -> EmailMessage | bytes:
    """The message to send: finished bytes, or for an address that needs SMTPUTF8 an
    EmailMessage (aiosmtplib then negotiates SMTPUTF8 for it)."""
    if subscriber.email.isascii():
        return renderer.render_bytes(digest, subscriber, links)
    return renderer.render_message(digest, subscriber, links)


_RENDERERS: dict[tuple, Renderer] = {}


def renderer_for(settings: Settings) -> Renderer:
    """Building a renderer inlines the CSS into the template once: keep one per process
    (the flow's, or each Dask worker's)."""
    key = (str(settings.templates_dir), settings.mail_from, settings.list_id, settings.public_base_url)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(settings.templates_dir, settings=settings)
    return _RENDERERS[key]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def send_planned(plan: BatchPlan, corpus: Corpus, settings: Settings,
                 on_outcome: Callable[[Outcome], None], *, renderer: Renderer | None = None,
                 dry_run: bool = False, progress: Callable[[int], None] | None = None) -> BatchReport:
    """Rank, render and send one planned batch, handing each outcome to `on_outcome` as soon
    as it is known (a dry run hands over none). Opens no database."""
    report = BatchReport(workers=[worker_id()]).merge(plan.report)
    if not plan.todo:
        return report
    seconds = report.seconds

    def record(outcome: Outcome) -> None:
        started = _now()
        if not dry_run:
            on_outcome(outcome)
        report.count(outcome)
        _add(seconds, "ledger", started)

    from flows.makers import pool_for  # it builds on this module

    pool = None if dry_run else pool_for(corpus, settings, len(plan.todo))
    if pool is not None:
        items = pool.make(plan.todo, plan.seen, on_skip=record, seconds=seconds)
    else:
        started = _now()
        renderer = renderer or renderer_for(settings)  # built (CSS inlined) once per process
        _add(seconds, "setup", started)
        items = outgoing(plan.todo, corpus, renderer, settings, plan.seen, on_skip=record, seconds=seconds)
    if dry_run:
        for item in items:
            report.previews[item.subscriber] = len(item.paper_ids)
        return report
    _send_timed(items, settings, record, progress, seconds)
    return report


def _send_timed(items: Iterator[Outgoing], settings: Settings, record: Callable[[Outcome], None],
                progress: Callable[[int], None] | None, seconds: dict[str, float]) -> None:
    """`deliver_sync`, its wall time charged to "sending", and what the stages it pulls in
    (index, rank, render, ledger) did not spend of it to "deliver"."""
    before = dict(seconds)
    started = _now()
    with cyclic_gc_paused():
        deliver_sync(items, settings, on_outcome=record, progress=progress)
    _add(seconds, "sending", started)
    for suffix in ("", "_cpu"):
        spent = {stage: seconds.get(stage + suffix, 0.0) - before.get(stage + suffix, 0.0)
                 for stage in STAGES}
        nested = spent["index"] + spent["rank"] + spent["render"] + spent["receive"] + spent["ledger"]
        seconds["deliver" + suffix] = seconds.get("deliver" + suffix, 0.0) + spent["sending"] - nested
    for stage in STAGES:  # every stage reported, the ones this batch did not use as 0
        seconds.setdefault(stage, 0.0)
        seconds.setdefault(f"{stage}_cpu", 0.0)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a batch. Ranking and rendering allocate
    short-lived objects that reference counting frees, yet they set off the collector's
    passes over everything the run keeps (the index, the ranking caches, Prefect): about
    5% of sending, measured with gc.callbacks. A batch leaves about one cycle per message
    (asyncio's), collected once the collector resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_batch(subscribers: Sequence[Subscriber], *, store: Store, corpus: Corpus,
              renderer: Renderer, settings: Settings, dry_run: bool = False,
              progress: Callable[[int], None] | None = None) -> BatchReport:
    """Diff, rank, render and send one batch; every outcome is in the ledger when it returns,
    each written the moment the server accepted (or refused) its message."""
    return send_planned(plan_batch(subscribers, store, corpus), corpus, settings,
                        store.record_outcome, renderer=renderer, dry_run=dry_run, progress=progress)


@dataclass
class BatchResult:
    """A batch sent away from the ledger: its counts and the outcomes still to record."""

    report: BatchReport
    outcomes: list[Outcome] = field(default_factory=list)


class BatchAborted(Exception):
    """A batch sent away from the ledger stopped part-way; carries the outcomes it reached."""

    def __init__(self, reason: str, outcomes: list[Outcome]):
        super().__init__(reason, outcomes)  # both in args, so it pickles back from a worker
        self.reason, self.outcomes = reason, outcomes

    def __str__(self) -> str:
        return self.reason


def send_detached(plan: BatchPlan, corpus: Corpus, settings: Settings,
                  dry_run: bool = False) -> BatchResult:
    """`send_planned` for a process that must not write the ledger (a Dask worker): the
    outcomes come back to the caller, also when the batch stops part-way, so every digest
    the server accepted still reaches the ledger."""
    outcomes: list[Outcome] = []
    try:
        report = send_planned(plan, corpus, settings, outcomes.append, dry_run=dry_run)
    except Exception as exc:
        log.exception("batch stopped after %d outcomes", len(outcomes))
        reason = f"batch stopped after {len(outcomes)} outcomes: {type(exc).__name__}: {exc}"
    else:
        return BatchResult(report, outcomes)
    # Raised outside the handler, so no exception chain travels back with it: chains out of
    # a TaskGroup are cyclic and break the pickling Dask does (the log above has the trace).
    raise BatchAborted(reason, outcomes)
