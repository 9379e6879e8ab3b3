"""Manual backfills as a Prefect flow: index a range of listing dates, optionally send one
catch-up digest per subscriber for the whole range.

Takes the range (and a source, --send, --refresh); gives the backfill's summary (a line in
the log, a markdown artifact, the returned dict). Fetching is flows/fetch.py's
`fetch_backfill`; sending goes through the same batches as the daily flow (tasks.py).
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows.corpus import Corpus
from flows.fetch import FetchReport, fetch_backfill, missing_dates
from flows.progress import DateProgress
from flows.report import BackfillSummary
from flows.settings import Settings, restrict_umask
from flows.sources import build_source
from flows.store import Store
from flows.tasks import ConfiguredTaskRunner, load_subscribers, send_batches, today_in


class BackfillRangeError(ValueError):
    """The requested date range is empty or reaches into the future."""


def check_range(start: date, end: date, today: date) -> None:
    if start > end:
        raise BackfillRangeError(f"--from {start} is after --to {end}")
    if end > today:
        raise BackfillRangeError(f"--to {end} is in the future (today is {today}); listings do not exist yet")


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
             refresh: bool = False) -> dict:
    """Index the listings of [start, end]; with send, mail each subscriber one catch-up digest."""
    restrict_umask()  # the database, key and subscriber files it creates are private
    settings = Settings()
    check_range(start, end, today_in(settings.timezone))
    fetched = FetchReport()
    for name in [source] if source else list(settings.sources):
        fetched.merge(fetch_range(settings, name, start, end, refresh))
    sent = None
    if send:
        subscribers, errors = load_subscribers(settings, None)
        with Store(settings.db_path) as store:
            corpus = Corpus.for_range(store, settings, start, end)
        sent = send_batches(settings, subscribers, corpus, dry_run=False)
    summary = BackfillSummary(start=start, end=end, fetch=fetched, batch=sent)
    create_markdown_artifact(markdown=summary.markdown(), key="backfill-summary",
                             description=f"Paperboy backfill {start} → {end}")
    get_run_logger().info(summary.line())
    return summary.as_dict()
