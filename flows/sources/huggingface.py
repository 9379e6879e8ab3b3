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
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from flows.models import Listing, Paper, is_arxiv_id
import flows.sources.clean as clean
from flows.sources.base import MalformedItem, SourceFormatError
from flows.sources.http import get, make_client, shared_limiter

if TYPE_CHECKING:
    from flows.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "huggingface"
PAPER_URL = "https://huggingface.co/papers/{}"
# A paper whose id is not arXiv's has no page there (the bundled sample's made-up ids):
# its link searches Hugging Face's papers for the title instead.
SEARCH_URL = "https://huggingface.co/papers?q={}"
MAX_PAGES = 20  # a day has had well under 200 papers; this only stops a runaway loop
MAX_SUMMARY = 600  # characters of ai_summary kept (a one-line TL;DR is about 150)
VERSION = re.compile(r"v\d+\Z")
PAPER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")  # arXiv ids, old and new style


def squash(text: object) -> str:
    """``text`` with every run of whitespace turned into one space; "" for non-strings."""
    return " ".join(text.split()) if isinstance(text, str) else ""


def http_url(value: object) -> str | None:
    """``value`` if it is an absolute http(s) URL, else None (drops javascript:, data:, ...)."""
    if not isinstance(value, str) or len(value) > clean.MAX_URL:
        return None
    value = value.strip()
    if not value or not value.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and host else None


def _date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _authors(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    names = (a.get("name") if isinstance(a, dict) else a for a in value[:clean.MAX_AUTHORS])
    return tuple(name for name in (clean.text(n, "author", clean.MAX_NAME) for n in names) if name)


def parse_item(item: dict, listed: date) -> Paper:
    """One Daily Papers item as a :class:`Paper` listed on ``listed``; MalformedItem when it
    lacks an id or title, or holds a value no paper has (see :mod:`flows.sources.clean`)."""
    paper = item.get("paper") if isinstance(item, dict) else None
    if not isinstance(paper, dict):
        raise MalformedItem("item has no paper object")
    raw_id = paper.get("id")
    paper_id = raw_id.strip() if isinstance(raw_id, str) and len(raw_id) <= clean.MAX_ID else ""
    if not PAPER_ID.fullmatch(paper_id):
        raise MalformedItem(f"item has no usable paper.id: {clean.preview(raw_id)}")
    if is_arxiv_id(paper_id):  # one row per paper: arXiv's source keys it without the version
        paper_id = VERSION.sub("", paper_id)
    title = (clean.text(paper.get("title"), "title", clean.MAX_TITLE)
             or clean.text(item.get("title"), "title", clean.MAX_TITLE))
    if not title:
        raise MalformedItem(f"paper {paper_id} has no title")
    try:
        return Paper(
            id=paper_id,
            title=title,
            abstract=clean.text(paper.get("summary"), "summary", clean.MAX_ABSTRACT),
            listed=listed,
            authors=_authors(paper.get("authors")),
            published=_date(paper.get("publishedAt")),
            upvotes=clean.count(paper.get("upvotes"), "upvotes"),
            comments=clean.count(item.get("numComments"), "numComments"),
            ai_keywords=clean.texts(paper.get("ai_keywords"), "ai_keywords", clean.MAX_NAME,
                                    clean.MAX_KEYWORDS),
            github_repo=http_url(paper.get("githubRepo")),
            project_page=http_url(paper.get("projectPage")),
            url=(PAPER_URL.format(quote(paper_id, safe="/")) if is_arxiv_id(paper_id)
                 else SEARCH_URL.format(quote_plus(title[:200]))),
            source=SOURCE,
            ai_summary=clean.text(paper.get("ai_summary"), "ai_summary", clean.MAX_ABSTRACT)[:MAX_SUMMARY],
            github_stars=clean.count(paper.get("githubStars"), "githubStars"),
        )
    except MalformedItem as exc:
        raise MalformedItem(f"paper {paper_id}: {exc}") from None


def parse_body(content: bytes, listed: date, where: str) -> tuple[list[Paper], int, int]:
    """Papers from one API response body, how many items were skipped, and how many items
    the body held (a page shorter than asked for is the last)."""
    items, unreadable = clean.json_items(content, where)
    papers, skipped = parse_page(items, listed)
    return papers, skipped + unreadable, len(items) + unreadable


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
                response = get(client, url, params, retries=self.settings.http_retries, sleep=self.sleep,
                               headers={"Accept": "application/json"})
            found, bad, size = parse_body(response.content, day, f"GET {url} page {page} for {day}")
            skipped += bad
            new = [paper for paper in found if paper.id not in papers]
            papers.update((paper.id, paper) for paper in new)
            # A server that ignores p would repeat page 0 forever: stop when nothing is new.
            if size < limit or not (new or bad):
                break
        else:
            log.warning("%s: stopped after %d pages for %s", SOURCE, MAX_PAGES, day)
        log.info("%s %s: %d papers, %d skipped", SOURCE, day, len(papers), skipped)
        return Listing(source=SOURCE, listed=day, papers=tuple(papers.values()), skipped=skipped)
