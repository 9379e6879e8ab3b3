"""The daily digest as a Prefect flow: fetch → store → (diff → rank → render → send) per batch.

Takes the digest date (default: today in PAPERBOY_TIMEZONE) and the run's switches
(dry run, one subscriber, one source); gives the run's summary (a line in the log, a
markdown artifact, and the returned dict). The stages are plain functions in
fetch.py, corpus.py, compose.py and send.py; the tasks and task runner it shares with
the backfill flow are in tasks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows.corpus import Corpus
from flows.fetch import FetchReport, catch_up_dates, fetch_dates
from flows.makers import close_pools, pool_for
from flows.report import RunSummary
from flows.settings import Settings, restrict_umask
from flows.sources import build_source
from flows.store import Store
from flows.subscribers import subscriber_files
from flows.tasks import ConfiguredTaskRunner, load_subscribers, send_batches, today_in


@task(name="fetch-listings", cache_policy=NONE)
def fetch_listings(settings: Settings, sources: Sequence[str], digest_date: date) -> FetchReport:
    """Fetch every listing date since the last good fetch, for each source, into the store."""
    logger = get_run_logger()
    report = FetchReport()
    with Store(settings.db_path) as store:
        for name in sources:
            source = build_source(name, settings, replay_to=digest_date if settings.snapshot_replay else None)
            caught_up = store.last_fetched(name) is not None
            days = catch_up_dates(store, name, digest_date, settings.lookback_days)
            logger.info("fetching %s for %s → %s", name, days[0], days[-1])
            fetched = fetch_dates(store, source, days)
            # Re-fetched days since the last good fetch stay candidates (a first run has
            # none: it offers only the recency window, not the whole lookback).
            fetched.earliest = days[0] if caught_up else None
            report.merge(fetched)
    return report


@flow(name="daily-digest", task_runner=ConfiguredTaskRunner())
def daily_digest(digest_date: date | None = None, dry_run: bool = False,
                 only: str | None = None, source: str | None = None) -> dict:
    """Fetch today's listings and mail every due subscriber their ranked digest, once."""
    restrict_umask()  # the database, key and subscriber files it creates are private
    settings = Settings()
    day = digest_date or today_in(settings.timezone)
    sources = [source] if source else list(settings.sources)
    fetched = fetch_listings(settings, sources, day)
    # The render processes, if the batches will use them, get ready (imports, the corpus,
    # the index) while this process reads the subscriber files; not on a rerun, where
    # (nearly) every digest of the day is already final.
    prestart = settings.task_runner == "thread" and not dry_run and not only
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day, since=fetched.earliest)
        finished = len(store.finished_subscribers(day)) if prestart else 0
        if not dry_run:  # web views older than PAPERBOY_WEB_VIEW_DAYS are not kept
            store.prune_digest_views(day - timedelta(days=settings.web_view_days))
    try:
        if prestart:
            left = len(subscriber_files(settings.subscribers_dir)) - finished
            pool_for(corpus, settings, min(settings.batch_size, left))
        subscribers, errors = load_subscribers(settings, only)
        outcome = send_batches(settings, subscribers, corpus, dry_run)
    finally:
        close_pools()
    summary = RunSummary(digest_date=day, dry_run=dry_run, fetch=fetched, batch=outcome,
                         subscriber_errors=[str(e) for e in errors],
                         candidates=len(corpus.papers))
    create_markdown_artifact(markdown=summary.markdown(), key="daily-digest-summary",
                             description=f"Paperboy daily digest {day}")
    get_run_logger().info(summary.line())
    return {**summary.as_dict(), "workers": outcome.workers}


def serve_daily(settings: Settings) -> None:
    """Run the daily flow on its schedule from this process (needs a persistent Prefect
    server: the temporary one cannot run schedules). Blocks until interrupted."""
    from prefect import serve
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    # Served by module path, so each run re-imports this module: `Flow.serve` would pickle
    # the flow by value, dropping the imports its string annotations need (`date`), and
    # every run would fail parameter validation (Prefect 3.8).
    deployment = daily_digest.to_deployment(
        name="daily-digest",
        schedules=[Cron(settings.schedule, timezone=settings.timezone)],
        description="Fetch the day's listings and mail every due subscriber their ranked digest, once.",
        tags=["paperboy"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # Runs execute here: take the deployment back from a work pool `prefect deploy` gave it.
    deployment.work_pool_name = None
    deployment.work_queue_name = None
    serve(deployment, limit=1)
