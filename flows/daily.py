"""The daily digest as a Prefect flow: fetch → store → (diff → rank → render → send) per batch.

Tasks work on batches of subscribers (about 8 ms of Prefect overhead per task
run here), never one task per subscriber per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows.pipeline import BatchReport, Corpus, FetchReport, catch_up_dates, fetch_dates, run_batch
from flows.render import Renderer
from flows.report import RunSummary
from flows.settings import Settings
from flows.sources import build_source
from flows.store import Store
from flows.subscribers import Subscriber, SubscriberFileError, load_all


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


_RENDERERS: dict[tuple, Renderer] = {}


def renderer_for(settings: Settings) -> Renderer:
    """Building a renderer inlines the CSS into the template once: keep one per process."""
    key = (str(settings.templates_dir), settings.mail_from, settings.list_id, settings.public_base_url)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(settings.templates_dir, settings=settings)
    return _RENDERERS[key]


@task(name="fetch-listings", cache_policy=NONE)
def fetch_listings(settings: Settings, sources: Sequence[str], digest_date: date) -> FetchReport:
    """Fetch every listing date since the last good fetch, for each source, into the store."""
    logger = get_run_logger()
    report = FetchReport()
    with Store(settings.db_path) as store:
        for name in sources:
            source = build_source(name, settings, replay_to=digest_date if settings.snapshot_replay else None)
            days = catch_up_dates(store, name, digest_date, settings.lookback_days)
            logger.info("fetching %s for %s → %s", name, days[0], days[-1])
            report.merge(fetch_dates(store, source, days))
    return report


@task(name="load-subscribers", cache_policy=NONE)
def load_subscribers(settings: Settings, only: str | None) -> tuple[list[Subscriber], list[SubscriberFileError]]:
    """Read and validate every subscriber file; broken files are reported, not fatal."""
    subscribers, errors = load_all(settings.subscribers_dir)
    if only:
        subscribers = [s for s in subscribers if s.email.lower() == only.lower()]
    return subscribers, errors


@task(name="send-batch", cache_policy=NONE)
def send_batch(settings: Settings, subscribers: list[Subscriber], corpus: Corpus,
               dry_run: bool) -> BatchReport:
    """Diff, rank, render and deliver one batch of subscribers, recording every outcome."""
    with Store(settings.db_path) as store:
        return run_batch(subscribers, store=store, corpus=corpus, renderer=renderer_for(settings),
                         settings=settings, dry_run=dry_run)


def batches(items: Sequence[Subscriber], size: int) -> list[list[Subscriber]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


@flow(name="daily-digest")
def daily_digest(digest_date: date | None = None, dry_run: bool = False,
                 only: str | None = None, source: str | None = None) -> dict:
    """Fetch today's listings and mail every due subscriber their ranked digest, once."""
    settings = Settings()
    day = digest_date or today_in(settings.timezone)
    sources = [source] if source else list(settings.sources)
    fetched = fetch_listings(settings, sources, day)
    subscribers, errors = load_subscribers(settings, only)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day)
    outcome = BatchReport()
    for batch in batches(subscribers, settings.batch_size):
        outcome.merge(send_batch(settings, batch, corpus, dry_run))
    summary = RunSummary(digest_date=day, dry_run=dry_run, fetch=fetched, batch=outcome,
                         subscriber_errors=[str(e) for e in errors],
                         candidates=len(corpus.papers))
    create_markdown_artifact(markdown=summary.markdown(), key="daily-digest-summary",
                             description=f"Paperboy daily digest {day}")
    get_run_logger().info(summary.line())
    return summary.as_dict()


def serve_daily(settings: Settings) -> None:
    """Run the daily flow on its schedule from this process (needs a persistent Prefect
    server: the temporary one cannot run schedules). Blocks until interrupted."""
    from prefect.schedules import Cron

    daily_digest.serve(
        name="daily-digest",
        schedules=[Cron(settings.schedule, timezone=settings.timezone)],
        description="Fetch the day's listings and mail every due subscriber their ranked digest, once.",
        tags=["paperboy"],
        limit=1,
    )
