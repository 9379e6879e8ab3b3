"""The live preview: which recent papers edited keywords would match, ranked as a digest would.

It ranks every matching paper, not just a digest's worth, so the page can say how many
papers the keywords really match and how many each keyword brings in: that is what tells
a subscriber which keyword is too broad or finds nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flows.cards import keyword_counts, paper_card, trending_item
from flows.compose import TRENDING_COUNT
from flows.corpus import Corpus, window_days
from flows.rank import QueryError, parse_keyword, rank, trending
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import Subscriber

CORPUS_TTL = 60.0  # seconds; new listings arrive once a day, keystrokes many times a second
PREVIEW_LIMIT = 20  # papers shown, whatever max_papers says
BROAD_SHARE = 0.25  # a keyword matching this share of the window's papers is called broad


@dataclass(frozen=True)
class KeywordCount:
    """How many of the matching papers one keyword matched, as the subscriber wrote it."""

    keyword: str
    count: int
    note: str = ""  # "matches nothing", "broad"


@dataclass
class Preview:
    """What the preview shows: the best cards, the true count, and a count per keyword."""

    papers: list[dict[str, Any]]
    trending: list[dict[str, Any]]
    matching: int  # every paper of the window these keywords match
    per_digest: int  # the subscriber's max_papers
    candidates: int  # papers in the subscriber's window
    window_days: int
    keywords: list[KeywordCount] = field(default_factory=list)
    related: int = 0  # papers only a related term matched

    @property
    def summary(self) -> str:
        days = f"the last {self.window_days} days"
        if not self.matching:
            return f"No paper from {days} matches these keywords."
        verb = "matches" if self.matching == 1 else "match"
        line = f"{self.matching} of {self.candidates} papers from {days} {verb}"
        if self.matching > self.per_digest:
            return f"{line}; a digest lists the best {self.per_digest}."
        return f"{line}."

    def as_json(self) -> dict[str, Any]:
        return {"count": self.matching, "summary": self.summary,
                "keywords": [{"keyword": k.keyword, "count": k.count, "note": k.note} for k in self.keywords]}


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


def _label(keyword: str) -> str:
    """The words a keyword's matches are explained with ("title:diffusion^2" → "diffusion")."""
    try:
        return parse_keyword(keyword).keyword
    except QueryError:
        return keyword


def keyword_table(keywords: list[str], counts: dict[str, int], candidates: int) -> list[KeywordCount]:
    table = []
    for keyword in keywords:
        count = counts.get(_label(keyword), 0)
        note = "matches nothing" if not count else "broad" if count >= max(5, BROAD_SHARE * candidates) else ""
        table.append(KeywordCount(keyword, count, note))
    return table


def preview(subscriber: Subscriber, cache: CorpusCache, today: date, key: str) -> Preview:
    """Rank recent papers for ``subscriber`` (as edited, not as saved), marking those already sent."""
    settings = cache.settings
    days = window_days(subscriber, settings)
    with cache.use(today) as corpus:
        index = corpus.index(corpus.window_for(subscriber))
        every = rank(index, subscriber, limit=len(index)) if subscriber.keywords else []
        candidates = len(index)
        extra = []
        if subscriber.include_trending:
            best = {r.paper.id for r in every[:subscriber.max_papers]}
            extra = trending(index, exclude_ids=best, n=TRENDING_COUNT)
    shown = every[:PREVIEW_LIMIT]
    with Store(settings.db_path) as store:
        sent = store.delivered_ids([subscriber.email], [r.paper.id for r in shown])[subscriber.email]
    counts, related = keyword_counts(every)
    papers = []
    for ranked in shown:
        # No inline styles (the page's CSP forbids them): its stylesheet styles .hl and .chip.
        papers.append({**paper_card(ranked), "already_sent": ranked.paper.id in sent})
    return Preview(papers, [trending_item(p) for p in extra], len(every), subscriber.max_papers,
                   candidates, days, keyword_table(list(subscriber.keywords), dict(counts), candidates),
                   related)
