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
from datetime import date

from flows.compose import cyclic_gc_paused, outgoing, renderer_for
from flows.corpus import Corpus
from flows.deliver import Outgoing, deliver_sync
from flows.makers import pool_for
from flows.models import Outcome
from flows.render import Renderer
from flows.settings import Settings
from flows.store import Store
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
        add_seconds(self.seconds, other.seconds)
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


def is_due(subscriber: Subscriber, digest_date: date) -> bool:
    if not subscriber.active:
        return False
    return subscriber.frequency == "daily" or WEEKDAYS[digest_date.weekday()] == subscriber.weekday


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
    report = BatchReport()
    with timed(report.seconds, "diff"):
        todo = plan(subscribers, store, corpus.digest_date, report, catch_up=corpus.catch_up)
        seen = store.delivered_ids([s.email for s in todo], corpus.paper_ids()) if todo else {}
    return BatchPlan(todo, seen, report)


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
        with timed(seconds, "ledger"):
            if not dry_run:
                on_outcome(outcome)
            report.count(outcome)

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
    _send_timed(items, settings, record, progress, seconds)
    return report


def _send_timed(items: Iterator[Outgoing], settings: Settings, record: Callable[[Outcome], None],
                progress: Callable[[int], None] | None, seconds: dict[str, float]) -> None:
    """`deliver_sync`, its wall time charged to "sending", and what the stages it pulls in
    (index, rank, render, ledger) did not spend of it to "deliver"."""
    before = dict(seconds)
    with timed(seconds, "sending"), cyclic_gc_paused():
        deliver_sync(items, settings, on_outcome=record, progress=progress)
    for suffix in ("", "_cpu"):
        spent = {stage: seconds.get(stage + suffix, 0.0) - before.get(stage + suffix, 0.0)
                 for stage in STAGES}
        nested = spent["index"] + spent["rank"] + spent["render"] + spent["receive"] + spent["ledger"]
        seconds["deliver" + suffix] = seconds.get("deliver" + suffix, 0.0) + spent["sending"] - nested
    for stage in STAGES:  # every stage reported, the ones this batch did not use as 0
        seconds.setdefault(stage, 0.0)
        seconds.setdefault(f"{stage}_cpu", 0.0)


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
