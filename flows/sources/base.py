"""What every listing source shares: the `Source` protocol and the errors a fetch raises.

An empty listing is a normal answer (weekends, holidays); failures raise one of the
:class:`SourceError` subclasses below, and only :class:`SourceUnavailable` is worth
retrying later. The source modules import these from here, never from the package, so
the package can import them without a circle.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from flows.models import Listing


class SourceError(Exception):
    """A listing source could not give an answer."""


class SourceUnavailable(SourceError):
    """The source failed transiently (429, 5xx, timeouts) even after retrying."""


class SourceUnreachable(SourceUnavailable):
    """The source cannot be reached in a way no retry fixes soon (its host name does not
    resolve, its TLS certificate is not trusted): the other dates are not tried this run."""


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
