"""Listing sources: each one turns "what was listed on this day?" into a :class:`Listing`.

A source is anything with a ``name`` and ``fetch(day) -> Listing``. An empty
listing is a normal answer (weekends, holidays); failures raise one of the
:class:`SourceError` subclasses (flows/sources/base.py), and only :class:`SourceUnavailable` is
worth retrying later.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from flows.sources.base import (
    MalformedItem,
    Source,
    SourceError,
    SourceFormatError,
    SourceRequestError,
    SourceUnavailable,
    SourceUnreachable,
)

if TYPE_CHECKING:
    from flows.settings import Settings


SOURCE_NAMES = ("huggingface", "snapshot", "arxiv")

# The first listing date each source has: nothing before it can be fetched, so a backfill that
# starts earlier is a typo (1025 for 2025), never hours of empty requests. Hugging Face Daily
# Papers began on 2023-05-04; arXiv took its first submissions in August 1991. A snapshot
# directory holds whatever was saved.
FIRST_LISTING: dict[str, dt.date] = {
    "huggingface": dt.date(2023, 5, 4),
    "arxiv": dt.date(1991, 8, 14),
}

# A year of listing dates. Longer backfills are legitimate (a whole arXiv archive) but take
# hours of requests at the sources' rate limits, so they are asked for explicitly (--long-range).
MAX_BACKFILL_DATES = 366


def backfill_range_problem(start: dt.date, end: dt.date, sources: list[str],
                           long_range: bool = False) -> str | None:
    """Why a backfill of [start, end] from ``sources`` should not run, in one line, or None:
    it starts before a source's first listing, or spans more than MAX_BACKFILL_DATES dates
    without ``long_range``. (Empty and future ranges: flows/fetch.py ``check_range``.)"""
    for name in sources:
        first = FIRST_LISTING.get(name)
        if first is not None and start < first:
            return (f"--from {start} is before the first {name} listing ({first}): there is "
                    f"nothing to fetch before it; use --from {first} or later")
    count = (end - start).days + 1
    if count > MAX_BACKFILL_DATES and not long_range:
        return (f"--from {start} --to {end} is {count:,} listing dates, more than "
                f"{MAX_BACKFILL_DATES} (hours of requests); add --long-range if you mean it, "
                "or split the range")
    return None


def build_source(name: str, settings: Settings, *, replay_to: dt.date | None = None) -> Source:
    """The source called ``name``, configured from ``settings``.

    For "snapshot", replay happens when ``replay_to`` is passed, or when
    ``settings.snapshot_replay`` is true (then onto today in ``settings.timezone``).
    Other sources ignore ``replay_to``.
    """
    # Imported when asked for: each brings its own HTTP and parsing libraries.
    if name == "huggingface":
        from flows.sources.huggingface import HuggingFaceSource

        return HuggingFaceSource(settings)
    if name == "snapshot":
        from flows.sources.snapshot import SnapshotSource

        if replay_to is None and settings.snapshot_replay:
            replay_to = dt.datetime.now(ZoneInfo(settings.timezone)).date()
        return SnapshotSource(settings.snapshot_dir, replay_to=replay_to)
    if name == "arxiv":
        from flows.sources.arxiv import ArxivSource

        return ArxivSource(settings)
    raise ValueError(f"unknown source {name!r}; valid sources: {', '.join(SOURCE_NAMES)}")


__all__ = [
    "FIRST_LISTING",
    "MAX_BACKFILL_DATES",
    "SOURCE_NAMES",
    "MalformedItem",
    "Source",
    "SourceError",
    "SourceFormatError",
    "SourceRequestError",
    "SourceUnavailable",
    "SourceUnreachable",
    "backfill_range_problem",
    "build_source",
]
