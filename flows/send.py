"""Send: plan a batch of subscribers from the ledger, make and deliver its messages,
record every outcome.

Takes a batch of `Subscriber`s, the run's `Corpus`, the settings and the store; gives a
`BatchReport` (sent, skipped, already final, not due, failed and deferred with reasons,
and the seconds spent per stage). Sending one batch is split at the database boundary,
so a batch can run in a process that never opens SQLite (a Dask worker):

* `plan_batch` (the flow's process, reads the ledger): who in the batch is due and not
  finished, and which candidates each was already sent; a picklable `BatchPlan`.
* `send_planned` (anywhere, no database): make the messages (flows/compose.py, or the
  render processes of flows/makers.py), deliver them (flows/deliver.py), and hand every
  `Outcome` to a callback the moment it is known.
* `run_batch` = both, in this process, with the callback writing the ledger.
* `send_detached` = `send_planned` collecting the outcomes into a `BatchResult` for
  the flow's process to record (`BatchAborted` carries them when the batch stops early).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flows.compose import cyclic_gc_paused, outgoing, renderer_for
from flows.corpus import Corpus
from flows.deliver import DeliveryStats, Outgoing, SenderHolds, deliver_sync
from flows.children import interrupts_blocked
from flows.makers import pool_for
from flows.models import Outcome
from flows.render import Renderer
from flows.settings import Settings
from flows.signals import stop_on_signals_on_this_worker
from flows.stopping import stop_requested
from flows.store import Store, ledger_key
from flows.subscribers import WEEKDAYS, Subscriber
from flows.timing import add_seconds, timed

log = logging.getLogger(__name__)


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
    # Digests whose fate is unknown (no reply to the final dot; or left in flight by a killed
    # run, handled now by PAPERBOY_UNCERTAIN): email -> what happened.
    uncertain: dict[str, str] = field(default_factory=dict)
    stopped: str = ""  # why the run stopped early (a stop request), "" if it did not
    # The relay failed every message the same way (flows.deliver's circuit breaker, RelayError):
    # its message; the batches after it were not tried and nothing was marked failed.
    broken: str = ""
    left: int = 0  # due digests not attempted because of the stop: the rerun sends them
    previews: dict[str, int] = field(default_factory=dict)  # dry run: email -> paper count
    workers: list[str] = field(default_factory=list)  # "host:pid" that ranked, rendered and sent
    # Seconds spent inside each stage (see STAGES), wall and, as "<stage>_cpu", this thread's
    # CPU. Sending streams, so the stages interleave in time: each counts only the time
    # inside its own code.
    seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "BatchReport") -> "BatchReport":
        for name in ("considered", "sent", "skipped", "already", "not_due", "left"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.update(other.failed)
        self.deferred.update(other.deferred)
        self.uncertain.update(other.uncertain)
        self.stopped = self.stopped or other.stopped
        self.broken = self.broken or other.broken
        self.previews.update(other.previews)
        self.workers += [w for w in other.workers if w not in self.workers]
        add_seconds(self.seconds, other.seconds)
        return self

    def count(self, outcome: Outcome) -> None:
        if outcome.status == "sent":
            self.sent += 1
        elif outcome.status == "skipped":
            self.skipped += 1
        elif outcome.status == "uncertain":
            self.uncertain[outcome.subscriber] = outcome.error
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


def is_due(subscriber: Subscriber, digest_date: date) -> bool:
    if not subscriber.active:
        return False
    return subscriber.frequency == "daily" or WEEKDAYS[digest_date.weekday()] == subscriber.weekday


def plan(subscribers: Sequence[Subscriber], store: Store, digest_date: date,
         report: BatchReport, catch_up: bool = False, uncertain_final: bool = False) -> list[Subscriber]:
    """Who in this batch still needs a digest for this date (a catch-up: every active one)."""
    finished = store.finished_subscribers(digest_date, uncertain_final=uncertain_final,
                                          among=[subscriber.email for subscriber in subscribers])
    todo = []
    for subscriber in subscribers:
        report.considered += 1
        if not (subscriber.active if catch_up else is_due(subscriber, digest_date)):
            report.not_due += 1
        elif ledger_key(subscriber.email) in finished:
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
    budget: int | None = None  # messages PAPERBOY_DAILY_CAP still allows (None: no cap)
    # Names the batch across a Dask cluster, so a rerun of it is known as one (flows/tasks.py
    # `claim_batch`); "" in the flow's own process.
    key: str = ""
    # Recipient domains that refused us as a sender problem in an earlier batch of this run
    # (flows/deliver.py): their digests are held back (deferred) without being tried. The
    # thread runner passes one from batch to batch; a Dask batch starts with its own.
    holds: SenderHolds = field(default_factory=SenderHolds)


def plan_batch(subscribers: Sequence[Subscriber], store: Store, corpus: Corpus, *,
               write: bool = True) -> BatchPlan:
    """Read the ledger for one batch: who is due and not finished, and what each has seen;
    digests an earlier run left in flight become uncertain, and uncertain ones are handled
    by PAPERBOY_UNCERTAIN here (``write=False``, a dry run: only read)."""
    report = BatchReport()
    settings = corpus.settings
    with timed(report.seconds, "diff"):
        if write and (settled := store.settle_in_flight()):
            log.warning("%d digest(s) were in flight when an earlier run ended: uncertain", settled)
        settle_uncertain(subscribers, store, corpus.digest_date, settings, report, write=write)
        todo = plan(subscribers, store, corpus.digest_date, report, catch_up=corpus.catch_up,
                    uncertain_final=settings.uncertain == "skip")
        seen = store.delivered_ids([s.email for s in todo], corpus.paper_ids()) if todo else {}
        budget = None
        if settings.daily_cap is not None:
            budget = max(0, settings.daily_cap - store.relayed_since(datetime.now(UTC) - timedelta(hours=24)))
    return BatchPlan(todo, seen, report, budget)


def settle_uncertain(subscribers: Sequence[Subscriber], store: Store, digest_date: date,
                     settings: Settings, report: BatchReport, write: bool = True) -> list[str]:
    """This batch's digests of this date an earlier run left uncertain: with
    PAPERBOY_UNCERTAIN=resend they are planned again (same Message-ID), with skip their
    papers are recorded as seen and they count as final. Each is named in the report."""
    emails = {ledger_key(s.email) for s in subscribers}
    found = [row["subscriber"] for row in store.uncertain_digests(digest_date) if row["subscriber"] in emails]
    if settings.uncertain == "skip":
        if write:
            store.take_uncertain_as_sent(digest_date, found)
        note = "not sent again (PAPERBOY_UNCERTAIN=skip)"
    else:
        note = "sent again with the same Message-ID (PAPERBOY_UNCERTAIN=resend)"
    for email in found:
        report.uncertain[email] = f"uncertain from an earlier run: {note}"
    return found


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def in_flight_writer(store: Store) -> Callable[[Outgoing], None]:
    """The `on_in_flight` callback that marks a digest in flight in this store's ledger."""
    def write(item: Outgoing) -> None:
        store.record_in_flight(item.subscriber, item.digest_date, item.id(), item.paper_ids)
    return write


def send_planned(plan: BatchPlan, corpus: Corpus, settings: Settings,
                 on_outcome: Callable[[Outcome], None], *, renderer: Renderer | None = None,
                 dry_run: bool = False, progress: Callable[[int], None] | None = None,
                 on_in_flight: Callable[[Outgoing], None] | None = None) -> BatchReport:
    """Rank, render and send one planned batch, handing each outcome to `on_outcome` as soon
    as it is known (a dry run hands over none) and each digest to `on_in_flight` just before
    its data goes out. Opens no database. After a stop request (flows.stopping) it takes
    no new subscriber: what it did not attempt is counted in ``left``, for the rerun."""
    report = BatchReport(workers=[worker_id()]).merge(plan.report)
    if not plan.todo:
        return report
    if reason := stop_requested():
        report.stopped, report.left = reason, len(plan.todo)
        return report
    seconds = report.seconds
    done: set[str] = set()

    def record(outcome: Outcome) -> None:
        with timed(seconds, "ledger"):
            if not dry_run:
                on_outcome(outcome)
            report.count(outcome)
            done.add(outcome.subscriber)

    with interrupts_blocked():  # the pool's processes and multiprocessing's resource tracker: no SIGHUP
        pool = None if dry_run else pool_for(corpus, settings, len(plan.todo))
    if pool is not None:
        items = pool.make(plan.todo, plan.seen, on_skip=record, seconds=seconds)
    else:
        with timed(seconds, "setup"):
            renderer = renderer or renderer_for(settings)  # built (CSS inlined) once per process
        items = outgoing(plan.todo, corpus, renderer, settings, plan.seen, on_skip=record, seconds=seconds)
    if dry_run:
        for item in items:
            report.previews[item.subscriber] = len(item.paper_ids)
        return report
    in_flight = None
    if on_in_flight is not None:
        def in_flight(item: Outgoing) -> None:
            with timed(seconds, "ledger"):
                on_in_flight(item)
    stats = _send_timed(items, settings, record, progress, seconds, in_flight, plan.budget, plan.holds)
    rest = [s.email for s in plan.todo if s.email not in done]
    if stats.capped:  # PAPERBOY_DAILY_CAP: recorded, so the report and `paperboy status` show them
        reason = (f"daily cap reached (PAPERBOY_DAILY_CAP={settings.daily_cap} messages per 24 hours); "
                  "deferred to the next run")
        for email in rest:
            record(Outcome(email, corpus.digest_date, "failed", error=reason))
    elif rest:
        report.stopped, report.left = stats.stopped or "stopped", len(rest)
        log.warning("stopped (%s): %d digest(s) of this batch left for the next run", report.stopped, len(rest))
    return report


def _send_timed(items: Iterator[Outgoing], settings: Settings, record: Callable[[Outcome], None],
                progress: Callable[[int], None] | None, seconds: dict[str, float],
                on_in_flight: Callable[[Outgoing], None] | None, budget: int | None,
                holds: SenderHolds | None = None) -> DeliveryStats:
    """`deliver_sync`, its wall time charged to "sending", and what the stages it pulls in
    (index, rank, render, ledger) did not spend of it to "deliver"."""
    before = dict(seconds)
    with timed(seconds, "sending"), cyclic_gc_paused():
        stats = deliver_sync(items, settings, on_outcome=record, progress=progress,
                             on_in_flight=on_in_flight, budget=budget, holds=holds)
    for suffix in ("", "_cpu"):
        spent = {stage: seconds.get(stage + suffix, 0.0) - before.get(stage + suffix, 0.0)
                 for stage in STAGES}
        nested = spent["index"] + spent["rank"] + spent["render"] + spent["receive"] + spent["ledger"]
        seconds["deliver" + suffix] = seconds.get("deliver" + suffix, 0.0) + spent["sending"] - nested
    for stage in STAGES:  # every stage reported, the ones this batch did not use as 0
        seconds.setdefault(stage, 0.0)
        seconds.setdefault(f"{stage}_cpu", 0.0)
    return stats


def run_batch(subscribers: Sequence[Subscriber], *, store: Store, corpus: Corpus,
              renderer: Renderer, settings: Settings, dry_run: bool = False,
              progress: Callable[[int], None] | None = None) -> BatchReport:
    """Diff, rank, render and send one batch; every outcome is in the ledger when it returns,
    each written the moment the server accepted (or refused) its message."""
    return send_planned(plan_batch(subscribers, store, corpus), corpus, settings,
                        store.record_outcome, renderer=renderer, dry_run=dry_run, progress=progress,
                        on_in_flight=in_flight_writer(store))


@dataclass
class BatchResult:
    """A batch sent away from the ledger: its counts and the outcomes still to record."""

    report: BatchReport
    outcomes: list[Outcome] = field(default_factory=list)
    # Dask ran this batch again after the worker that had it died; this run sent nothing
    # (flows/tasks.py `claim_batch`), and what the first one sent is unknown.
    rerun: bool = False


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
    if not settings.dask_address:  # a worker of the run's own cluster: it stops when the run does
        stop_on_signals_on_this_worker()
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
