"""arXiv: the daily listing feeds for the latest announcement, the query API for every other day.

The listing feed (``{arxiv_feed_url}/{category}``, Atom or RSS 2.0) only ever shows
arXiv's latest announcement. Its channel date (RSS ``pubDate``, Atom ``updated``,
read in US Eastern time) says which announcement day that is. On weekends and
holidays it is empty: an empty listing, not an error. Entries announced as
``new`` or ``cross`` are kept; replacements are dropped.

Any other day comes from the query API, by submission date. arXiv announces on
weekday evenings (US Eastern) what was submitted up to 14:00 that day since the
previous cut-off; the feed dated the next morning carries it. So the listing of a
weekday D holds, roughly, what was submitted during the working day before D
(for a Tuesday: Friday afternoon to Monday). This module maps a past weekday D
to the whole UTC submission days from the weekday before the previous weekday
through the previous weekday::

    Mon <- Thu..Fri   Tue <- Fri..Mon (the weekend included)   Wed <- Mon..Tue
    Thu <- Tue..Wed   Fri <- Wed..Thu   Sat, Sun <- nothing (no announcements)

The window is wider than arXiv's cut-offs on purpose: every feed window lies
inside the API window of the same day and neighbouring windows overlap, so no
paper is lost between days fetched from the feed and days fetched from the API,
over a weekend or around a holiday. A paper that lands in two listings is
harmless: the store upserts by arXiv id. A day after the feed's day has not been
announced yet and raises :class:`SourceUnavailable` rather than returning part
of it.

Backfills (:meth:`ArxivSource.fetch_range`) group the API's results by UTC
submission date instead, one listing per date, and stop at the last date arXiv
has fully announced.

arXiv asks API clients for one request every 3 seconds and one connection at a
time, shared by every caller: all requests go through one :class:`RateLimiter`
per process and URL (the feeds get their own, with the same spacing).

Prefer the Atom flavour of the feed: feedparser reads RSS descriptions as HTML,
so maths such as ``$x<y$`` in an RSS abstract gets mangled; Atom summaries are
plain text.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast
from xml.sax import SAXException
from zoneinfo import ZoneInfo

import feedparser
import httpx

from flows.models import Listing, Paper
import flows.sources.clean as clean
from flows.sources.base import MalformedItem, SourceError, SourceFormatError, SourceRequestError, SourceUnavailable
from flows.sources.http import Params, RateLimiter, get, make_client, shared_limiter
from flows.sources.huggingface import squash

if TYPE_CHECKING:
    from flows.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "arxiv"
ABS_URL = "https://arxiv.org/abs/{}"
ANNOUNCE_TZ = ZoneInfo("America/New_York")  # arXiv's announcement clock
KEPT_ANNOUNCE_TYPES = frozenset({"new", "cross"})
DROPPED_ANNOUNCE_TYPES = frozenset({"replace", "replace-cross", "absonly"})
PAGE_SIZE = 200  # the API allows up to 2000 per request; smaller pages fail less often
RANGE_DAYS = 7  # days per backfill query: about 7,000 results, well under the API's 30,000 cap
MAX_RESULTS = 30_000  # the API will not page further into one query
FEED_TTL = 600.0  # seconds to reuse the latest feed instead of asking again

_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{7}"  # hep-th/9901001, math.GT/0309136
ARXIV_ID = re.compile(rf"(?:^|[:/])({_NEW_ID}|{_OLD_ID})(?:v\d+)?/?$")
CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z-]+)?")
ANNOUNCE_PREFIX = re.compile(r"\s*arXiv:\S+\s+Announce Type:\s*(\S+)\s*(?:Abstract:\s*)?", re.IGNORECASE)
NAME_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")


# -- one request at a time, spaced out -------------------------------------------------




class _Throttled:
    """Stands in for an httpx client in :func:`get`, so that every attempt, retries included,
    takes its turn at the limiter; 4xx answers that are arXiv error feeds keep their message."""

    def __init__(self, client: httpx.Client, limiter: RateLimiter) -> None:
        self.client = client
        self.limiter = limiter

    def get(self, url: str, *, params: Params = None, headers: Any = None) -> httpx.Response:
        with self.limiter.turn():
            response = self.client.get(url, params=params, headers=headers)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            try:
                message = api_error(read_feed(response.content, str(response.request.url)))
            except SourceFormatError:
                message = None
            if message:
                raise SourceRequestError(
                    f"GET {response.request.url}: HTTP {response.status_code}, arXiv says: {message}"
                )
        return response


# -- parsing ----------------------------------------------------------------------------


def arxiv_id(value: object) -> str | None:
    """The arXiv id without version in an entry id, OAI id or abs URL; None if there is none."""
    if not isinstance(value, str) or len(value) > clean.MAX_URL:
        return None
    found = ARXIV_ID.search(value.strip())
    return found.group(1) if found else None


def without_parentheses(text: str) -> str:
    """``text`` without any balanced "(...)", nested ones included; a lone bracket stays.

    One pass with a stack (removing innermost groups until none is left took time
    quadratic in the nesting depth)."""
    if "(" not in text:
        return text
    opened: list[int] = []
    cut = [0] * (len(text) + 1)  # +1 where a removed span starts, -1 after it ends
    for position, char in enumerate(text):
        if char == "(":
            opened.append(position)
        elif char == ")" and opened:
            cut[opened.pop()] += 1
            cut[position + 1] -= 1
    kept, depth = [], 0
    for position, char in enumerate(text):
        depth += cut[position]
        if depth == 0:
            kept.append(char)
    return "".join(kept)


def split_creators(text: object) -> tuple[str, ...]:
    """Author names from a feed's ``dc:creator`` ("A, B (Affiliation, Dept), and C")."""
    text = without_parentheses(squash(text))  # affiliations hold commas too
    return tuple(name for name in (squash(part) for part in NAME_SEPARATOR.split(text)) if name)


def parse_document(content: bytes, url: str) -> Any:
    """The feed in ``content``, as feedparser reads it; SourceFormatError when it is not one."""
    doc = read_feed(content, url)
    broken = isinstance(doc.get("bozo_exception"), SAXException)
    if broken or not doc.get("version"):
        reason = f"not well-formed XML ({doc.get('bozo_exception')})" if broken else "not an Atom or RSS feed"
        raise SourceFormatError(f"GET {url}: {reason}")
    return doc


def read_feed(content: bytes, url: str) -> Any:
    """feedparser's reading of ``content``, made safe first (see :func:`clean.xml_safe`);
    SourceFormatError for the rare document it still cannot read."""
    if len(content) > clean.MAX_RESPONSE_BYTES:
        raise SourceFormatError(f"GET {url}: larger than {clean.MAX_RESPONSE_BYTES // 2**20} MB")
    try:
        # BytesIO: given bytes, feedparser first tries to open them as a file name.
        return feedparser.parse(io.BytesIO(clean.xml_safe(content)))
    except Exception as exc:  # noqa: BLE001 - feedparser's own failures (e.g. OverflowError on "&#99999999999;")
        raise SourceFormatError(f"GET {url}: the feed cannot be read ({type(exc).__name__})") from None


def api_error(doc: Any) -> str | None:
    """The message of an arXiv API error feed (one entry titled "Error"), or None."""
    entries = doc.get("entries") or []
    if len(entries) != 1 or squash(entries[0].get("title")) != "Error":
        return None
    entry = entries[0]
    return squash(entry.get("summary")) or squash(entry.get("id")) or "unknown error"


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        return parsedate_to_datetime(value)  # RSS
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return datetime.fromisoformat(value.strip())  # Atom
    except ValueError:
        return None


def _day_in(value: object, zone: ZoneInfo | timezone) -> date | None:
    moment = _datetime(value)
    if moment is None:
        return None
    return moment.astimezone(zone).date() if moment.tzinfo else moment.date()


def feed_day(doc: Any) -> date | None:
    """The announcement day a listing feed shows, from its channel date in US Eastern time."""
    channel = doc.get("feed") or {}
    for value in (channel.get("published"), channel.get("updated")):
        day = _day_in(value, ANNOUNCE_TZ)
        if day is not None:
            return day
    return None


def _categories(entry: Any, primary: object = None) -> tuple[str, ...]:
    tags = entry.get("tags")
    terms = [primary] + [tag.get("term") for tag in (tags if isinstance(tags, list) else [])[:clean.MAX_KEYWORDS]
                         if isinstance(tag, dict)]
    return tuple(dict.fromkeys(term for term in (clean.text(t, "category", clean.MAX_NAME) for t in terms)
                               if term))


def _merge(old: Paper | None, new: Paper) -> Paper:
    """One paper listed twice (two category feeds): the first listing, with every category."""
    if old is None:
        return new
    return replace(old, categories=tuple(dict.fromkeys(old.categories + new.categories)))


def _names(entry: Any, split: bool) -> tuple[str, ...]:
    authors = entry.get("authors")
    names = [a.get("name") for a in authors[:clean.MAX_AUTHORS] if isinstance(a, dict)] \
        if isinstance(authors, list) else []
    checked = (clean.text(name, "author", clean.MAX_NAME * 20 if split else clean.MAX_NAME)
               for name in names)
    if split:  # one dc:creator holds them all
        return tuple(part for name in checked for part in split_creators(name))[:clean.MAX_AUTHORS]
    return tuple(name for name in checked if name)


def _checked(entry: Any, paper_id: str, build: Callable[[], Paper]) -> Paper:
    try:
        return build()
    except MalformedItem as exc:
        raise MalformedItem(f"paper {paper_id}: {exc}") from None


def parse_feed_entry(entry: Any, listed: date) -> Paper | None:
    """One listing-feed entry as a Paper listed on ``listed``; None for a replacement."""
    summary = clean.text(entry.get("summary"), "summary", clean.MAX_ABSTRACT)
    prefix = ANNOUNCE_PREFIX.match(summary)
    kind = clean.text(entry.get("arxiv_announce_type") or (prefix.group(1) if prefix else ""),
                      "announce type", clean.MAX_NAME).lower()
    if kind in DROPPED_ANNOUNCE_TYPES:
        return None
    if kind not in KEPT_ANNOUNCE_TYPES:
        raise MalformedItem(f"entry {clean.preview(entry.get('id'))} has announce type {clean.preview(kind)}")
    paper_id = arxiv_id(entry.get("id")) or arxiv_id(entry.get("link"))
    if paper_id is None:
        raise MalformedItem(f"entry has no arXiv id: {clean.preview(entry.get('id'))}")
    title = clean.text(entry.get("title"), "title", clean.MAX_TITLE)
    if not title:
        raise MalformedItem(f"paper {paper_id} has no title")
    return _checked(entry, paper_id, lambda: Paper(
        id=paper_id,
        title=title,
        abstract=summary[prefix.end():] if prefix else summary,
        listed=listed,
        authors=_names(entry, split=True),
        published=listed if kind == "new" else None,  # a cross-listing's paper appeared earlier
        url=ABS_URL.format(paper_id),
        source=SOURCE,
        categories=_categories(entry),
    ))


def parse_feed(doc: Any, listed: date) -> tuple[list[Paper], int]:
    """New and cross-listed papers of one listing feed, and how many entries were malformed."""
    papers: dict[str, Paper] = {}
    skipped = dropped = 0
    for position, entry in enumerate(doc.get("entries") or []):
        try:
            paper = parse_feed_entry(entry, listed)
        except MalformedItem as exc:
            log.warning("skipping feed entry %d for %s: %s", position, listed, exc)
            skipped += 1
            continue
        if paper is None:
            dropped += 1
            continue
        papers[paper.id] = _merge(papers.get(paper.id), paper)
    log.debug("feed for %s: %d kept, %d replacements dropped", listed, len(papers), dropped)
    return list(papers.values()), skipped


def parse_api_entry(entry: Any, listed: date | None = None) -> Paper:
    """One query-API entry as a Paper, listed on ``listed`` or else on its UTC submission date."""
    paper_id = arxiv_id(entry.get("id"))
    if paper_id is None:
        raise MalformedItem(f"entry has no arXiv id: {clean.preview(entry.get('id'))}")
    title = clean.text(entry.get("title"), "title", clean.MAX_TITLE)
    if not title:
        raise MalformedItem(f"paper {paper_id} has no title")
    published = _day_in(entry.get("published"), timezone.utc)
    when = listed or published
    if when is None:
        raise MalformedItem(f"paper {paper_id} has no submission date")
    primary = entry.get("arxiv_primary_category") or {}
    return _checked(entry, paper_id, lambda: Paper(
        id=paper_id,
        title=title,
        abstract=clean.text(entry.get("summary"), "summary", clean.MAX_ABSTRACT),
        listed=when,
        authors=_names(entry, split=False),
        published=published,
        url=ABS_URL.format(paper_id),
        source=SOURCE,
        categories=_categories(entry, primary.get("term") if isinstance(primary, dict) else None),
    ))


def _total(doc: Any) -> int | None:
    try:
        return int(str(doc["feed"]["opensearch_totalresults"]).strip())
    except (KeyError, TypeError, ValueError):
        return None


# -- days -------------------------------------------------------------------------------


def previous_weekday(day: date) -> date:
    """The last Monday-to-Friday strictly before ``day``."""
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def submission_window(day: date) -> tuple[date, date]:
    """First and last UTC submission date the API is asked for when listing weekday ``day``."""
    last = previous_weekday(day)
    return previous_weekday(last), last


def last_complete_submission_day(feed_day: date) -> date:
    """The last submission date arXiv has announced in full once its feed shows ``feed_day``."""
    # Submissions after the cut-off on the weekday before feed_day come out in the next feed.
    return previous_weekday(feed_day) - timedelta(days=1)


def search_query(categories: Iterable[str], first: date, last: date) -> str:
    """The API's ``search_query`` for papers in ``categories`` submitted from ``first`` to ``last``."""
    cats = " OR ".join(f"cat:{category}" for category in categories)
    return f"({cats}) AND submittedDate:[{first:%Y%m%d}0000 TO {last:%Y%m%d}2359]"


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# -- the source -------------------------------------------------------------------------


class ArxivSource:
    """arXiv listings: the feeds for the latest announcement day, the query API for the rest."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
        range_days: int = RANGE_DAYS,
    ) -> None:
        if not settings.arxiv_categories:
            raise ValueError("arxiv_categories is empty: name at least one category, e.g. cs.LG")
        bad = [c for c in settings.arxiv_categories if not CATEGORY.fullmatch(c)]
        if bad:
            raise ValueError(f"not arXiv categories: {', '.join(map(repr, bad))}")
        if not 1 <= page_size <= 2000 or range_days < 1:
            raise ValueError("page_size must be 1-2000 and range_days at least 1")
        self.settings = settings
        self.client = client
        self.sleep = sleep
        self.clock = clock
        self.page_size = page_size
        self.range_days = range_days
        self.categories = tuple(settings.arxiv_categories)
        interval = settings.arxiv_min_interval
        self.api_limiter = shared_limiter(settings.arxiv_api_url, interval, clock=clock, sleep=sleep)
        self.feed_limiter = shared_limiter(settings.arxiv_feed_url, interval, clock=clock, sleep=sleep)
        self._latest: tuple[float, date, Any] | None = None

    # public

    def fetch(self, day: date) -> Listing:
        """Papers arXiv listed on ``day``: see the module docstring for how days map to submissions."""
        with self._session() as client:
            latest, doc = self._latest_feed(client)
            if day == latest:
                return self._from_feeds(client, day, doc)
            if day.weekday() >= 5:
                return Listing(source=SOURCE, listed=day, papers=())
            if day > latest:
                raise SourceUnavailable(f"arXiv has not announced {day} yet (its feed shows {latest})")
            first, last = submission_window(day)
            papers, skipped = self._search(client, first, last, listed=day)
        log.info("%s %s: %d papers submitted %s..%s, %d skipped", SOURCE, day, len(papers), first, last,
                 skipped)
        return Listing(source=SOURCE, listed=day, papers=tuple(papers), skipped=skipped)

    def fetch_range(self, start: date, end: date) -> Iterator[Listing]:
        """One listing per UTC submission date from ``start`` to ``end``, oldest first.

        Dates arXiv has not announced in full yet are left out, so a resumed
        backfill asks for them again later.
        """
        if start > end:
            return
        with self._session() as client:
            latest, _ = self._latest_feed(client)
            complete = last_complete_submission_day(latest)
            if end > complete:
                log.info("%s: stopping at %s, the last day announced in full", SOURCE, complete)
                end = complete
            first = start
            while first <= end:
                last = min(end, first + timedelta(days=self.range_days - 1))
                yield from self._range_chunk(client, first, last)
                first = last + timedelta(days=1)

    def latest_feed_day(self) -> date:
        """The announcement day the listing feed shows now."""
        with self._session() as client:
            return self._latest_feed(client)[0]

    # feeds

    @contextmanager
    def _session(self) -> Iterator[httpx.Client]:
        if self.client is not None:
            yield self.client
            return
        with make_client(self.settings) as client:
            yield client

    def _get(self, client: httpx.Client, limiter: RateLimiter, url: str, params: Params = None) -> Any:
        throttled = cast(httpx.Client, _Throttled(client, limiter))
        response = get(throttled, url, params, retries=self.settings.http_retries, sleep=self.sleep)
        return parse_document(response.content, str(response.request.url))

    def _feed(self, client: httpx.Client, category: str) -> tuple[date, Any]:
        url = f"{self.settings.arxiv_feed_url.rstrip('/')}/{category}"
        doc = self._get(client, self.feed_limiter, url)
        day = feed_day(doc)
        if day is None:
            raise SourceFormatError(f"GET {url}: the feed has no channel date")
        return day, doc

    def _latest_feed(self, client: httpx.Client) -> tuple[date, Any]:
        """The first category's feed and its day, reused for a few minutes."""
        now = self.clock()
        if self._latest is not None and now - self._latest[0] < FEED_TTL:
            return self._latest[1], self._latest[2]
        day, doc = self._feed(client, self.categories[0])
        self._latest = (now, day, doc)
        return day, doc

    def _from_feeds(self, client: httpx.Client, day: date, first_doc: Any) -> Listing:
        papers: dict[str, Paper] = {}
        skipped = 0
        for position, category in enumerate(self.categories):
            shown, doc = (day, first_doc) if position == 0 else self._feed(client, category)
            if shown != day:  # arXiv rebuilt its feeds between our requests
                raise SourceUnavailable(f"the {category} feed shows {shown}, the first feed {day}")
            found, bad = parse_feed(doc, day)
            skipped += bad
            for paper in found:
                papers[paper.id] = _merge(papers.get(paper.id), paper)
        log.info("%s %s: %d papers from %d feeds, %d skipped", SOURCE, day, len(papers),
                 len(self.categories), skipped)
        return Listing(source=SOURCE, listed=day, papers=tuple(papers.values()), skipped=skipped)

    # the query API

    def _entries(self, client: httpx.Client, first: date, last: date) -> Iterator[Any]:
        """Every API entry submitted from ``first`` to ``last``, page after page, oldest first."""
        query = search_query(self.categories, first, last)
        start = empty_pages = 0
        while True:
            params = {
                "search_query": query,
                "start": start,
                "max_results": self.page_size,
                "sortBy": "submittedDate",
                "sortOrder": "ascending",
            }
            doc = self._get(client, self.api_limiter, self.settings.arxiv_api_url, params)
            if (message := api_error(doc)) is not None:
                raise SourceRequestError(f"GET {self.settings.arxiv_api_url}: arXiv says: {message}")
            entries, total = doc.get("entries") or [], _total(doc)
            if not entries and total is not None and start < total:
                # The API now and then answers a page with nothing; asking again usually works.
                empty_pages += 1
                if empty_pages > self.settings.http_retries:
                    raise SourceUnavailable(f"arXiv API: empty page at {start} of {total} for {query}")
                continue
            yield from entries
            start += len(entries)
            if not entries or (total is not None and start >= total):
                return
            if total is None and len(entries) < self.page_size:
                return
            if start >= MAX_RESULTS:
                raise SourceError(f"arXiv API: over {MAX_RESULTS} results for {query}; use a shorter range")

    def _search(self, client: httpx.Client, first: date, last: date, listed: date) -> tuple[list[Paper], int]:
        papers: dict[str, Paper] = {}
        skipped = 0
        for entry in self._entries(client, first, last):
            try:
                paper = parse_api_entry(entry, listed)
            except MalformedItem as exc:
                log.warning("skipping API entry for %s: %s", listed, exc)
                skipped += 1
                continue
            papers[paper.id] = _merge(papers.get(paper.id), paper)
        return list(papers.values()), skipped

    def _range_chunk(self, client: httpx.Client, first: date, last: date) -> Iterator[Listing]:
        """Listings for ``first``..``last``, each yielded as soon as the sorted results move past it."""
        days = _days(first, last)
        day = next(days)
        papers: dict[str, Paper] = {}
        skipped = 0
        for entry in self._entries(client, first, last):
            try:
                paper = parse_api_entry(entry)
            except MalformedItem as exc:
                log.warning("skipping API entry near %s: %s", day, exc)
                skipped += 1
                continue
            # Results come sorted by submission; a straggler joins the current day, never an earlier one.
            while paper.listed > day and day < last:
                yield Listing(source=SOURCE, listed=day, papers=tuple(papers.values()), skipped=skipped)
                papers, skipped, day = {}, 0, next(days)
            paper = replace(paper, listed=day)
            papers[paper.id] = _merge(papers.get(paper.id), paper)
        yield Listing(source=SOURCE, listed=day, papers=tuple(papers.values()), skipped=skipped)
        for rest in days:
            yield Listing(source=SOURCE, listed=rest, papers=())
