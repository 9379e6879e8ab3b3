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
    "SOURCE_NAMES",
    "MalformedItem",
    "Source",
    "SourceError",
    "SourceFormatError",
    "SourceRequestError",
    "SourceUnavailable",
    "SourceUnreachable",
    "build_source",
]
