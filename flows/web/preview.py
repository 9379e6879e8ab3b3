"""The live preview: which recent papers edited keywords would match, ranked as a digest would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from markupsafe import Markup

from flows.links import digest_links
from flows.compose import compose
from flows.corpus import Corpus, window_days
from flows.render import MARK_STYLE, digest_context
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import Subscriber

CORPUS_TTL = 60.0  # seconds; new listings arrive once a day, keystrokes many times a second
PREVIEW_LIMIT = 20  # papers shown, whatever max_papers says


@dataclass
class Preview:
    """What the preview shows: the digest's context, plus which papers were already sent."""

    papers: list[dict[str, Any]]
    trending: list[dict[str, Any]]
    candidates: int  # papers in the subscriber's window
    window_days: int

    @property
    def summary(self) -> str:
        days = f"the last {self.window_days} days"
        if not self.papers:
            return f"No paper from {days} matches these keywords."
        if len(self.papers) == 1:
            return f"1 of {self.candidates} papers from {days} matches."
        return f"{len(self.papers)} of {self.candidates} papers from {days} match (best first)."


class CorpusCache:
    """Recent papers, loaded and indexed once a minute at most, shared by every request.

    The index memoises per keyword as it ranks; one lock keeps concurrent previews
    from filling those caches at the same time (a preview ranks in milliseconds).
    """

    def __init__(self, settings: Settings, ttl: float = CORPUS_TTL) -> None:
        self.settings, self.ttl = settings, ttl
        self._lock = threading.Lock()
        self._entry: tuple[date, float, Corpus] | None = None

    @contextmanager
    def use(self, today: date) -> Iterator[Corpus]:
        with self._lock:
            if not (self._entry and self._entry[0] == today
                    and time.monotonic() - self._entry[1] < self.ttl):
                with Store(self.settings.db_path) as store:
                    self._entry = (today, time.monotonic(), Corpus.load(store, self.settings, today))
            yield self._entry[2]


def preview(subscriber: Subscriber, cache: CorpusCache, today: date, key: str) -> Preview:
    """Rank recent papers for ``subscriber`` (as edited, not as saved), marking those already sent."""
    settings = cache.settings
    days = window_days(subscriber, settings)
    with cache.use(today) as corpus:
        digest = compose(subscriber, corpus, seen=set())
        candidates = len(corpus.index(days))
    digest.papers = digest.papers[:PREVIEW_LIMIT]
    with Store(settings.db_path) as store:
        ids = [r.paper.id for r in digest.papers]
        sent = store.delivered_ids([subscriber.email], ids)[subscriber.email]
    context = digest_context(digest, subscriber, digest_links(settings, key, subscriber.email))
    papers = [
        {**shown, "title_html": _unstyled(shown["title_html"]),
         "snippet_html": _unstyled(shown["snippet_html"]), "already_sent": ranked.paper.id in sent}
        for ranked, shown in zip(digest.papers, context["papers"])
    ]
    return Preview(papers, context["trending"], candidates, days)


def _unstyled(html: Markup) -> Markup:
    # The digest's <mark> carries an inline style for mail clients; the page's CSP forbids
    # inline styles and its stylesheet styles <mark>. The text around it is already escaped.
    return Markup(str(html).replace(f'<mark style="{MARK_STYLE}">', "<mark>"))
