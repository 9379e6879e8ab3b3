"""Fetch: listing dates from the sources into the store.

Takes a `Store`, a `Source` (flows/sources/) and the dates to fetch; gives a
`FetchReport` (dates fetched and failed, papers fetched and new, items skipped). Each
date is stored as soon as it is fetched, so an interrupted run or backfill loses
nothing already fetched and resumes where it stopped. A failing date is recorded
with its reason and the others go on.

* `catch_up_dates`: what a daily run fetches (from the last good fetch through today,
  within the lookback).
* `fetch_dates`: those dates, one after another.
* `missing_dates` + `fetch_backfill`: a backfill's range, several dates at once (or
  arXiv's range queries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flows.models import Listing
from flows.sources import Source, SourceError, SourceUnreachable, backfill_range_problem
from flows.stopping import stop_requested
from flows.store import Store

log = logging.getLogger(__name__)


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


class FutureDateError(ValueError):
    """A listing or digest date after today: nothing is listed for it yet."""


def today_in(timezone: str) -> date:
    """Today's date in the operator's timezone (PAPERBOY_TIMEZONE)."""
    return datetime.now(ZoneInfo(timezone)).date()


def check_not_future(day: date, timezone: str, what: str = "--date") -> None:
    """Refuse a date after today in the configured timezone, before anything is stored.

    Today in PAPERBOY_TIMEZONE may be one day after UTC's today (zones reach UTC+14): that
    is the slack, and the latest date a run may use. A later date would be recorded as
    fetched (or its digest as sent) before it exists, and every run until then would build
    on it."""
    today = today_in(timezone)
    if day > today:
        raise FutureDateError(
            f"{what} {day} is after today ({today} in PAPERBOY_TIMEZONE={timezone}): nothing is "
            "listed for it yet; use a date up to today (or leave --date out for today)")


class BackfillRangeError(ValueError):
    """The requested date range is empty or reaches into the future."""


def check_range(start: date, end: date, today: date) -> None:
    if start > end:
        raise BackfillRangeError(f"--from {start} is after --to {end}")
    if end > today:
        raise BackfillRangeError(f"--to {end} is in the future (today is {today}); listings do not exist yet")


def check_backfill(start: date, end: date, sources: list[str], today: date, long_range: bool = False) -> None:
    """Refuse, with BackfillRangeError, a range that is empty, reaches into the future, starts
    before a source's first listing date, or spans more than MAX_BACKFILL_DATES dates without
    long_range (flows/sources ``backfill_range_problem``). The CLI checks before anything
    starts, the flow again for a deployment run."""
    check_range(start, end, today)
    problem = backfill_range_problem(start, end, sources, long_range)
    if problem:
        raise BackfillRangeError(problem)


def catch_up_dates(store: Store, source: str, today: date, lookback_days: int) -> list[date]:
    """Listing dates a daily run fetches: from the last good fetch (again: a day's list grows
    while the day lasts) through today, never further back than the lookback. A fetch
    recorded after `today` (another timezone, an old bug) is ignored, never a reason to
    fetch nothing: the catch-up starts from the latest good fetch not after today."""
    earliest = today - timedelta(days=lookback_days - 1)
    last = store.last_fetched(source, until=today)
    start = max(earliest, last) if last else earliest
    return [start + timedelta(days=n) for n in range((today - start).days + 1)]


def fetch_dates(store: Store, source: Source, days: Iterable[date],
                progress: Callable[[date, str], None] | None = None) -> FetchReport:
    """Fetch and store each date in turn; a failing date is recorded and the others go on."""
    report = FetchReport()
    days_list = list(days)
    for day in days_list:
        if stop_requested():
            break  # the dates not fetched yet are the next run's
        try:
            listing = source.fetch(day)
        except SourceError as exc:
            if stop_requested():
                break  # failed because the stop cut it short: not the source's fault
            _record_failure(store, source.name, day, str(exc), report)
            log.warning("fetch %s:%s failed: %s", source.name, day, exc)
            if progress:
                progress(day, "failed")
            if isinstance(exc, SourceUnreachable):  # every other date would fail the same way
                _not_tried(store, source.name, [d for d in days_list if d > day], exc, report, progress)
                break
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


def _store_listing(store: Store, source: str, listing: Listing, report: FetchReport) -> None:
    report.papers_new += store.upsert_papers(listing.papers)
    store.record_fetch(source, listing.listed, papers=len(listing.papers), skipped=listing.skipped)
    report.dates_fetched.append(f"{source}:{listing.listed.isoformat()}")
    report.papers_fetched += len(listing.papers)
    report.items_skipped += listing.skipped


def _record_failure(store: Store, source: str, day: date, reason: str, report: FetchReport) -> None:
    store.record_fetch(source, day, papers=0, error=reason)
    report.dates_failed[f"{source}:{day.isoformat()}"] = reason


def _not_tried(store: Store, source: str, days: Iterable[date], exc: SourceError, report: FetchReport,
               progress: Callable[[date, str], None] | None) -> None:
    """Record dates left untried because the source is unreachable (one reason for them
    all, so the summary can say it once); the next run tries them again."""
    for day in days:
        _record_failure(store, source, day, f"not tried: {exc}", report)
        if progress:
            progress(day, "not tried")


_UNREACHED = object()  # a date not fetched because its source proved unreachable meanwhile


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
            if stop_requested():
                break
            pending = set(dates_between(first, last))
            try:
                for listing in fetch_range(first, last):
                    if stop_requested():
                        break
                    if listing.listed in pending:
                        _store_listing(store, source.name, listing, report)
                        pending.discard(listing.listed)
                        note(listing.listed, "ok")
            except SourceError as exc:
                if stop_requested():
                    break
                for day in sorted(pending):
                    _record_failure(store, source.name, day, str(exc), report)
                    note(day, "failed")
                if isinstance(exc, SourceUnreachable):  # the later runs of dates would fail the same way
                    later = [day for day in days if day > last]
                    _not_tried(store, source.name, sorted(later), exc, report, progress)
                    break
        return report
    # The first date that finds the source unreachable (its host name does not resolve)
    # stops the dates not started yet: they would fail the same way, one by one.
    unreachable: list[SourceUnreachable] = []

    def attempt(day: date) -> Listing | object | None:
        if stop_requested():
            return None
        if unreachable:
            return _UNREACHED
        try:
            return source.fetch(day)
        except SourceUnreachable as exc:
            unreachable.append(exc)  # at once: threads between two requests see it
            raise

    untried: list[date] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fetch-{source.name}")
    try:
        futures = {pool.submit(attempt, day): day for day in days}
        for future in as_completed(futures):
            day = futures[future]
            try:
                listing = future.result()
            except SourceError as exc:
                if not stop_requested():
                    _record_failure(store, source.name, day, str(exc), report)
                    note(day, "failed")
                continue
            if listing is _UNREACHED:
                untried.append(day)
            elif listing is not None:
                _store_listing(store, source.name, listing, report)
                note(day, "ok")
            if stop_requested():
                break  # dates in flight finish (below); the ones not started never start
    finally:
        # Waits only for requests already in flight; with a stop requested their listings
        # are dropped, and those dates are fetched again by the next run.
        pool.shutdown(wait=True, cancel_futures=True)
    if unreachable and not stop_requested():
        _not_tried(store, source.name, sorted(untried), unreachable[0], report, progress)
    return report
