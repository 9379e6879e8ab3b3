"""The daily digest as a Prefect flow: fetch → store → (diff → rank → render → send) per batch.

Takes the digest date (default: today in PAPERBOY_TIMEZONE) and the run's switches
(dry run, one subscriber, one source); gives the run's summary (a line in the log, a
markdown artifact, and the returned dict). The stages are plain functions in
fetch.py, corpus.py, compose.py and send.py; the tasks and task runner it shares with
the backfill flow are in tasks.py.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from collections.abc import Sequence
from datetime import date, timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.corpus import Corpus
from flows.fetch import FetchReport, catch_up_dates, check_not_future, fetch_dates
from flows.children import interrupts_blocked, start_resource_tracker
from flows.makers import close_pools, pool_for
from flows.report import RunSummary
from flows.refusals import sender_domains
from flows.settings import Settings, restrict_umask
from flows.sources import build_source
from flows.store import Store, run_lock
from flows.subscribers import Subscriber, locate_each, notices, subscriber_files
from flows.send import BatchReport
from flows.signals import stop_on_signals, stops_passed_to_workers
from flows.stopping import stop_requested
from flows.tasks import ConfiguredTaskRunner, final_state, publish, load_subscribers, send_batches, today_in


@task(name="fetch-listings", cache_policy=NONE)
def fetch_listings(settings: Settings, sources: Sequence[str], digest_date: date) -> FetchReport:
    """Fetch every listing date since the last good fetch, for each source, into the store."""
    logger = get_run_logger()
    report = FetchReport()
    with Store(settings.db_path) as store:
        for name in sources:
            if stop_requested():
                break
            source = build_source(name, settings, replay_to=digest_date if settings.snapshot_replay else None)
            caught_up = store.last_fetched(name, until=digest_date) is not None
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
    """Fetch today's listings and mail every due subscriber their ranked digest, once.

    Ends Completed with the summary; Failed when every listing date failed or digests
    failed or were deferred; Cancelled when a stop was requested (SIGINT, SIGTERM, a Prefect
    cancellation). A direct call returns the summary or raises `RunNotCompleted` (its
    `.summary`); see flows/tasks.py `final_state`."""
    restrict_umask()  # the database, key and subscriber files it creates are private
    settings = Settings()
    # One sending run per database at a time (RunLocked otherwise); a dry run writes no ledger.
    with stop_on_signals(), (nullcontext() if dry_run else run_lock(settings.db_path)):
        start_resource_tracker()  # before any helper process: it must not take a hangup
        return final_state(run_daily(settings, digest_date, dry_run, only, source))


def run_daily(settings: Settings, digest_date: date | None, dry_run: bool, only: str | None,
              source: str | None) -> dict:
    day = digest_date or today_in(settings.timezone)
    check_not_future(day, settings.timezone, "digest date")
    sources = [source] if source else list(settings.sources)
    fetched = fetch_listings(settings, sources, day)
    if fetched.dates_failed:
        # A source outage: "nothing new" would be untrue, and an empty digest sent now
        # would stand in for the real one the rerun after recovery sends.
        get_run_logger().warning("%d listing dates failed: no empty digests this run",
                                 len(fetched.dates_failed))
        settings = settings.model_copy(update={"send_empty": False})
    # The render processes, if the batches will use them, get ready (imports, the corpus,
    # the index) while this process reads the subscriber files; not on a rerun, where
    # (nearly) every digest of the day is already final.
    prestart = settings.task_runner == "thread" and not dry_run and not only and not stop_requested()
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day, since=fetched.earliest)
        finished = len(store.finished_subscribers(day)) if prestart else 0
        if not dry_run:  # web views older than PAPERBOY_WEB_VIEW_DAYS are not kept
            store.prune_digest_views(day - timedelta(days=settings.web_view_days))
    try:
        if prestart:
            left = len(subscriber_files(settings.subscribers_dir)) - finished
            with interrupts_blocked():  # its processes and the resource tracker keep SIGHUP blocked
                pool_for(corpus, settings, min(settings.batch_size, left))
        subscribers, errors = load_subscribers(settings, only)
        warn_about_files(settings, subscribers)
        if fetched.dates_failed:
            subscribers = [s.model_copy(update={"send_empty": False}) for s in subscribers]
        with stops_passed_to_workers(settings.task_runner == "dask" and not settings.dask_address):
            outcome = (send_batches(settings, subscribers, corpus, dry_run) if not stop_requested()
                       else BatchReport())
    finally:
        close_pools()
    summary = RunSummary(digest_date=day, dry_run=dry_run, fetch=fetched, batch=outcome,
                         subscriber_errors=[str(e) for e in errors],
                         candidates=len(corpus.papers),
                         sender_domains=sender_domains(settings.from_domain, settings.bounce_address))
    publish(summary.markdown(), key="daily-digest-summary", description=f"Paperboy daily digest {day}")
    get_run_logger().info(summary.line())
    return {**summary.as_dict(), "workers": outcome.workers}


def warn_about_files(settings: Settings, subscribers: Sequence[Subscriber]) -> None:
    """Log a warning naming the file and field for each line of a valid subscriber file that
    does nothing (flows/subscribers `notices`), as `paperboy subscribers check` shows them."""
    found = [(subscriber.email, said) for subscriber in subscribers if (said := notices(subscriber))]
    if not found:
        return
    files = locate_each(settings.subscribers_dir, [email for email, _ in found])
    for email, said in found:
        for field, message in said:
            get_run_logger().warning("subscriber file %s (field '%s'): %s", files.get(email, email), field, message)


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
    try:
        serve(deployment, limit=1)
    except KeyboardInterrupt:
        # Prefect's runner pauses the schedule when interrupted, but not if the interrupt
        # lands before or inside its own shutdown: pause it here too (idempotent), so no
        # runs pile up while nobody serves them.
        pause_served(f"{daily_digest.name}/{deployment.name}")
        raise


def pause_served(name: str) -> None:
    """Pause the named deployment's schedule; a failure is logged, never raised."""
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            client.pause_deployment(client.read_deployment_by_name(name).id)
    except Exception as exc:  # the server may be gone too: stopping must still work
        logging.getLogger(__name__).warning("could not pause %s: %s", name, exc)
