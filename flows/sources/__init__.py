"""Listing sources: each one turns "what was listed on this day?" into a :class:`Listing`.

A source is anything with a ``name`` and ``fetch(day) -> Listing``. An empty
listing is a normal answer (weekends, holidays); failures raise one of the
:class:`SourceError` subclasses below, and only :class:`SourceUnavailable` is
worth retrying later.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from flows.models import Listing
    from flows.settings import Settings


class SourceError(Exception):
    """A listing source could not give an answer."""


class SourceUnavailable(SourceError):
    """The source failed transiently (429, 5xx, timeouts) even after retrying."""


class SourceRequestError(SourceError):
    """The source refused the request (a 4xx other than 429); retrying will not help."""


class SourceFormatError(SourceError):
    """The source answered with something that is not the expected format."""


class MalformedItem(SourceError):
    """One listed item lacks what a paper needs (id, title); it is skipped, not fatal."""


@runtime_checkable
class Source(Protocol):
    """What every listing source offers."""

    name: str

    def fetch(self, day: dt.date) -> Listing: ...


SOURCE_NAMES = ("huggingface", "snapshot", "arxiv")


def build_source(name: str, settings: Settings, *, replay_to: dt.date | None = None) -> Source:
    """The source called ``name``, configured from ``settings``.

    For "snapshot", replay happens when ``replay_to`` is passed, or when
    ``settings.snapshot_replay`` is true (then onto today in ``settings.timezone``).
    Other sources ignore ``replay_to``.
    """
    # Imported here so that the submodules can import the exceptions above.
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
    "build_source",
]
