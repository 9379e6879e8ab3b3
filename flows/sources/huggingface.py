"""Hugging Face Daily Papers: ``GET {base}/api/daily_papers?date=YYYY-MM-DD&p=N&limit=L``.

Each item of the JSON list wraps a ``paper`` object (arXiv id, title, summary,
authors, upvotes, ...) with the listing's own fields (``publishedAt`` = when it
was listed, ``numComments``). Parsing is lenient: optional fields may be absent
or odd, and an item without an id or title is skipped and counted, never fatal.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from flows.models import Listing, Paper
from flows.sources.base import MalformedItem, SourceFormatError
from flows.sources.http import get_json, make_client, shared_limiter

if TYPE_CHECKING:
    from flows.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "huggingface"
PAPER_URL = "https://huggingface.co/papers/{}"
MAX_PAGES = 20  # a day has had well under 200 papers; this only stops a runaway loop
PAPER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")  # arXiv ids, old and new style


def squash(text: object) -> str:
    """``text`` with every run of whitespace turned into one space; "" for non-strings."""
    return " ".join(text.split()) if isinstance(text, str) else ""


def http_url(value: object) -> str | None:
    """``value`` if it is an absolute http(s) URL, else None (drops javascript:, data:, ...)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _count(value: object) -> int:
    # bool is an int subclass; True upvotes would be nonsense
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _authors(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    names = (squash(a.get("name")) if isinstance(a, dict) else squash(a) for a in value)
    return tuple(name for name in names if name)


def _keywords(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(k for k in map(squash, value) if k))


def parse_item(item: dict, listed: date) -> Paper:
    """One Daily Papers item as a :class:`Paper` listed on ``listed``."""
    paper = item.get("paper") if isinstance(item, dict) else None
    if not isinstance(paper, dict):
        raise MalformedItem("item has no paper object")
    paper_id = paper.get("id").strip() if isinstance(paper.get("id"), str) else ""
    if not PAPER_ID.fullmatch(paper_id):
        raise MalformedItem(f"item has no usable paper.id: {str(paper.get('id'))[:80]!r}")
    title = squash(paper.get("title")) or squash(item.get("title"))
    if not title:
        raise MalformedItem(f"paper {paper_id} has no title")
    return Paper(
        id=paper_id,
        title=title,
        abstract=squash(paper.get("summary")),
        listed=listed,
        authors=_authors(paper.get("authors")),
        published=_date(paper.get("publishedAt")),
        upvotes=_count(paper.get("upvotes")),
        comments=_count(item.get("numComments")),
        ai_keywords=_keywords(paper.get("ai_keywords")),
        github_repo=http_url(paper.get("githubRepo")),
        project_page=http_url(paper.get("projectPage")),
        url=PAPER_URL.format(quote(paper_id, safe="/")),
        source=SOURCE,
    )


def parse_page(items: list, listed: date) -> tuple[list[Paper], int]:
    """Papers from one API list (a page, or several pages concatenated) and how many were skipped.

    Duplicates keep their first occurrence and are not counted as skipped.
    """
    if not isinstance(items, list):
        raise SourceFormatError(f"expected a JSON list of items, got {type(items).__name__}")
    papers: dict[str, Paper] = {}
    skipped = 0
    for position, item in enumerate(items):
        try:
            paper = parse_item(item, listed)
        except MalformedItem as exc:
            log.warning("skipping item %d listed %s: %s", position, listed, exc)
            skipped += 1
            continue
        papers.setdefault(paper.id, paper)
    return list(papers.values()), skipped


class HuggingFaceSource:
    """The Hugging Face Daily Papers API, one listing date at a time."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sleep = sleep
        # Anonymous API use is limited (about 500 calls per 5 minutes); requests may overlap
        # (backfills fetch several dates at once) but their starts are spaced.
        self.limiter = shared_limiter(settings.hf_base_url, settings.hf_min_interval,
                                      sleep=sleep, exclusive=False)

    def fetch(self, day: date) -> Listing:
        """Everything listed on ``day``, all pages, de-duplicated."""
        if self.client is not None:
            return self._fetch(self.client, day)
        with make_client(self.settings) as client:
            return self._fetch(client, day)

    def _fetch(self, client: httpx.Client, day: date) -> Listing:
        url = f"{self.settings.hf_base_url.rstrip('/')}/api/daily_papers"
        limit = self.settings.hf_page_size
        papers: dict[str, Paper] = {}
        skipped = 0
        for page in range(MAX_PAGES):
            params = {"date": day.isoformat(), "p": page, "limit": limit}
            with self.limiter.turn():
                items = get_json(client, url, params, retries=self.settings.http_retries, sleep=self.sleep)
            if not isinstance(items, list):
                raise SourceFormatError(f"GET {url} page {page} for {day}: not a JSON list")
            found, bad = parse_page(items, day)
            skipped += bad
            new = [paper for paper in found if paper.id not in papers]
            papers.update((paper.id, paper) for paper in new)
            # A server that ignores p would repeat page 0 forever: stop when nothing is new.
            if len(items) < limit or not (new or bad):
                break
        else:
            log.warning("%s: stopped after %d pages for %s", SOURCE, MAX_PAGES, day)
        log.info("%s %s: %d papers, %d skipped", SOURCE, day, len(papers), skipped)
        return Listing(source=SOURCE, listed=day, papers=tuple(papers.values()), skipped=skipped)
