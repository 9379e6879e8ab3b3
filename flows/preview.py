"""What one subscriber would receive now, without sending or recording anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flows.links import digest_links, secret_key
from flows.compose import compose, worth_sending
from flows.corpus import Corpus, window_days
from flows.render import Renderer
from flows.settings import Settings
from flows.send import is_due
from flows.store import Store
from flows.subscribers import WEEKDAYS, Subscriber, SubscriberError, load_all


class PreviewError(Exception):
    """The preview cannot be made (unknown subscriber, empty database)."""


@dataclass
class PreviewResult:
    html: str
    text: str
    count: int
    candidates: int
    already_seen: int
    explanations: list[str]
    would_get: str = ""  # why they would get nothing on that date, or "" when they would get it


def find_subscriber(settings: Settings, email: str) -> Subscriber:
    subscribers, errors = load_all(settings.subscribers_dir, max_papers=settings.max_papers)
    for subscriber in subscribers:
        if subscriber.email.lower() == email.lower():
            return subscriber
    from flows.tasks import mentions  # a broken file's error names its path, not the address

    broken = [e for e in errors if email.lower() in str(e).lower() or mentions(e.path, email)]
    if broken:
        raise PreviewError(str(broken[0]))
    raise PreviewError(f"no subscriber {email} in {settings.subscribers_dir}")


def explain(digest) -> list[str]:
    lines = []
    for n, ranked in enumerate(digest.papers, start=1):
        why = "; ".join(m.explain() for m in ranked.matches)
        lines.append(f"{n:2}. [{ranked.score:.2f}] {ranked.paper.title[:70]} — {why}")
    return lines


def preview_digest(settings: Settings, email: str, digest_date: date | None = None,
                   subscriber: Subscriber | None = None) -> PreviewResult:
    try:
        subscriber = subscriber or find_subscriber(settings, email)
    except SubscriberError as exc:
        raise PreviewError(str(exc)) from None
    day = digest_date or datetime.now(ZoneInfo(settings.timezone)).date()
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day)
        seen = store.delivered_ids([subscriber.email], corpus.paper_ids())[subscriber.email]
    if not corpus.papers:
        raise PreviewError(
            f"no papers listed in the {max(7, settings.recency_days)} days up to {day} in "
            f"{settings.db_path}; fetch first with `paperboy run --dry-run` (or --date; after `make demo`, source var/demo/demo.env first)"
        )
    digest = compose(subscriber, corpus, seen)
    renderer = Renderer(settings.templates_dir, settings=settings)
    links = digest_links(settings, secret_key(settings), subscriber.email)
    index_days = window_days(subscriber, settings)
    return PreviewResult(
        html=renderer.render_html(digest, subscriber, links),
        text=renderer.render_text(digest, subscriber, links),
        count=len(digest.papers),
        candidates=sum(1 for p in corpus.papers if (day - p.listed).days < index_days),
        already_seen=len(seen),
        explanations=explain(digest),
        would_get=nothing_because(subscriber, digest, day, settings),
    )


def nothing_because(subscriber: Subscriber, digest, day: date, settings: Settings) -> str:
    """Why this subscriber would get no digest on ``day`` (inactive, not their weekday,
    nothing new without send_empty), or "" when the preview is what they would get."""
    if not subscriber.active:
        return (f"{subscriber.email} is inactive: they get no digest (resume with "
                f"`paperboy subscribers set {subscriber.email} --active`)")
    if not is_due(subscriber, day):
        return (f"{subscriber.email} is not due on {day} ({WEEKDAYS[day.weekday()]}): their weekly "
                f"digest goes out on {subscriber.weekday}s; this is what it would hold")
    if not worth_sending(digest, subscriber, settings):
        return f"nothing new matched: {subscriber.email} would get no digest on {day}"
    return ""
