"""Manual backfills as a Prefect flow: index a range of listing dates, optionally send one
catch-up digest per subscriber for the whole range.

Takes the range (and a source, --send, --refresh); gives the backfill's summary (a line in
the log, a markdown artifact, the returned dict). Fetching is flows/fetch.py's
`fetch_backfill`; sending goes through the same batches as the daily flow (tasks.py).
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.children import start_resource_tracker
from flows.corpus import Corpus
from flows.fetch import (BackfillRangeError, FetchReport, check_backfill, check_range,  # noqa: F401
                         fetch_backfill, missing_dates)
from flows.progress import DateProgress
from flows.report import BackfillSummary
from flows.refusals import sender_domains
from flows.settings import Settings, restrict_umask
from flows.sources import build_source
from flows.store import Store, run_lock
from flows.signals import stop_on_signals, stops_passed_to_workers
from flows.stopping import stop_requested
from flows.tasks import ConfiguredTaskRunner, final_state, publish, load_subscribers, send_batches, today_in


@task(name="fetch-range", cache_policy=NONE)
def fetch_range(settings: Settings, source_name: str, start: date, end: date, refresh: bool) -> FetchReport:
    """Fetch every listing date of the range not fetched yet (all of them with refresh)."""
    logger = get_run_logger()
    with Store(settings.db_path) as store:
        days = missing_dates(store, source_name, start, end, refresh)
        skipped = (end - start).days + 1 - len(days)
        logger.info("%s: %d dates to fetch, %d already fetched (skipped)", source_name, len(days), skipped)
        progress = DateProgress(len(days), f"backfill {source_name}", logger=logger)
        try:
            source = build_source(source_name, settings)
            return fetch_backfill(store, source, days, workers=settings.backfill_concurrency,
                                  progress=progress)
        finally:
            progress.close()


@flow(name="backfill", task_runner=ConfiguredTaskRunner())
def backfill(start: date, end: date, source: str | None = None, send: bool = False,
             refresh: bool = False, long_range: bool = False) -> dict:
    """Index the listings of [start, end]; with send, mail each subscriber one catch-up digest.

    Ends like the daily flow (flows/tasks.py `final_state`): Completed, Failed (every date
    failed, or catch-up digests failed or were deferred) or Cancelled (a stop request: the
    dates fetched so far are kept, the same backfill resumes). A range of more than MAX_DATES
    dates needs long_range."""
    restrict_umask()  # the database, key and subscriber files it creates are private
    settings = Settings()
    with stop_on_signals(), (run_lock(settings.db_path) if send else nullcontext()):  # see daily_digest
        start_resource_tracker()
        return final_state(run_backfill(settings, start, end, source, send, refresh, long_range))


def run_backfill(settings: Settings, start: date, end: date, source: str | None, send: bool,
                 refresh: bool, long_range: bool = False) -> dict:
    names = [source] if source else list(settings.sources)
    check_backfill(start, end, names, today_in(settings.timezone), long_range)
    fetched = FetchReport()
    for name in names:
        if stop_requested():
            break
        fetched.merge(fetch_range(settings, name, start, end, refresh))
    sent, errors = None, []
    if send and not stop_requested():
        subscribers, errors = load_subscribers(settings, None)
        with Store(settings.db_path) as store:
            corpus = Corpus.for_range(store, settings, start, end)
        with stops_passed_to_workers(settings.task_runner == "dask" and not settings.dask_address):
            sent = send_batches(settings, subscribers, corpus, dry_run=False)
    summary = BackfillSummary(start=start, end=end, fetch=fetched, batch=sent,
                              subscriber_errors=[str(e) for e in errors],
                              sender_domains=sender_domains(settings.from_domain, settings.bounce_address))
    publish(summary.markdown(), key="backfill-summary", description=f"Paperboy backfill {start} → {end}")
    get_run_logger().info(summary.line())
    return summary.as_dict()
