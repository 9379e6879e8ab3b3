"""The subscriber model: one subscriber's preferences, validated.

Takes the fields of one subscriber file (or of a form, or of CLI options); gives a frozen
`Subscriber`, or a ValueError naming the field and how to fix it. Keywords are checked
against the ranking language (flows/rank/query.py). Also the small vocabulary the files,
the CLI and the web pages share: the limits, the weekdays, the errors, and
`split_keywords` for comma-separated keyword lists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date as date_type
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from flows import shipped
from flows.models import Paper

MAX_KEYWORDS = 50
MAX_KEYWORD_LENGTH = 100
MAX_CATEGORIES = 50
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KNOWN_SOURCES = ("huggingface", "arxiv", "snapshot")
ARXIV_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")  # cs.LG, hep-th, astro-ph.GA

# How to fix each field, appended to pydantic's message when it does not say so itself.
FIELD_HINTS = {
    "email": "use an address like email: ada@example.org",
    "name": "use one line, e.g. name: Ada Lovelace",
    "keywords": 'use a list of words or "quoted phrases", e.g. keywords: [diffusion, world models]',
    "exclude": "use a list of words or phrases to leave out, e.g. exclude: [survey]",
    "max_papers": "use a whole number from 1 to 100, e.g. max_papers: 20",
    "frequency": "use frequency: daily, or frequency: weekly with weekday: monday",
    "weekday": f"use one of {', '.join(WEEKDAYS)}, e.g. weekday: monday",
    "include_trending": "use true or false, e.g. include_trending: true",
    "popularity": "use a number from 0 (ignore upvotes) to 10, e.g. popularity: 1.0",
    "send_empty": "use true or false, e.g. send_empty: false",
    "related": "use off (only your keywords), near (closely related papers) or far, e.g. related: near",
    "active": "use true or false, e.g. active: true",
    "sources": f"use a list of {', '.join(KNOWN_SOURCES)}, e.g. sources: [huggingface], or leave it out",
    "categories": "use a list of arXiv categories, e.g. categories: [cs.LG, cs.CL], or leave it out",
    "suppressed": "written by Paperboy when the address bounces: date and reason, e.g. "
                  "suppressed: {date: 2026-12-03, reason: hard bounce}; `paperboy subscribers set EMAIL "
                  "--active` clears it",
}


class SubscriberError(Exception):
    """A subscriber file or value is not valid."""


class SubscriberNotFound(SubscriberError):
    """No subscriber file holds this email address."""


class SubscriberExists(SubscriberError):
    """A subscriber file already holds this email address."""


class SubscriberLocked(SubscriberError):
    """Another edit held the subscribers lock for too long."""


class Suppression(BaseModel):
    """Why and since when Paperboy stopped mailing an address (its mail bounced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date_type
    reason: str = Field(max_length=500)

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


class Subscriber(BaseModel):
    """One subscriber's preferences, exactly as their YAML file holds them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    name: str = ""
    keywords: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    max_papers: int = Field(20, ge=1, le=100)
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    include_trending: bool = False
    popularity: float = Field(1.0, ge=0, le=10)  # weight of log(upvotes) in the score; 0 ignores it
    send_empty: bool = False
    # Papers only the keywords' related terms find (learned from the stored corpus): off,
    # near (few, calibrated to stay precise) or far (more).
    related: Literal["off", "near", "far"] = "near"
    active: bool = True
    sources: list[str] | None = None
    categories: list[str] | None = Field(None, max_length=MAX_CATEGORIES)
    suppressed: Suppression | None = None  # set with active: false when the address bounces

    @field_validator("frequency", "weekday", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # The CLI accepts any case ("Weekly", "FRI"); so does the file.
        if isinstance(value, str):
            value = value.strip().lower()
            if len(value) >= 3:
                value = next((day for day in WEEKDAYS if day.startswith(value)), value)
        return value

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not a valid email address ({exc}); e.g. email: ada@example.org") from None

    @field_validator("name")
    @classmethod
    def _single_line_name(cls, value: str) -> str:
        # A name ends up in the To: header; line breaks there would forge headers.
        if re.search(r"[\r\n\x00-\x1f\x7f]", value):
            raise ValueError("must be one line without control characters")
        if len(value) > 200:
            raise ValueError("is longer than 200 characters")
        return value.strip()

    @field_validator("keywords")
    @classmethod
    def _valid_keywords(cls, value: list[str]) -> list[str]:
        cleaned = _bounded_keywords(value)
        check_query(cleaned, [])
        return cleaned

    @field_validator("exclude")
    @classmethod
    def _valid_exclude(cls, value: list[str], info: ValidationInfo) -> list[str]:
        cleaned = _bounded_keywords(value)
        if "keywords" in info.data:  # otherwise the keywords already failed on their own
            check_query(info.data["keywords"], cleaned)
        return cleaned

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("is empty; name at least one source, or leave the field out for all")
        for source in value:
            if source not in KNOWN_SOURCES:
                raise ValueError(f"{source!r} is not a source; use {', '.join(KNOWN_SOURCES)}")
        return list(dict.fromkeys(value))

    @field_validator("categories")
    @classmethod
    def _arxiv_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for category in value:
            if not ARXIV_CATEGORY.match(category):
                raise ValueError(f"{category[:40]!r} is not an arXiv category like cs.LG or hep-th")
        return list(dict.fromkeys(value))

    def wants(self, paper: Paper) -> bool:
        """Whether a paper can be in this subscriber's digest at all (flows.shipped.wants:
        one code for this model and for the plain copy render processes use)."""
        return shipped.wants(self, paper)

    @model_validator(mode="after")
    def _something_to_rank(self) -> "Subscriber":
        if self.active and not self.keywords and not self.include_trending:
            raise ValueError(
                "an active subscriber needs at least one keyword (or include_trending: true)"
            )
        return self

    @property
    def display_name(self) -> str:
        return shipped.display_name(self)


def _bounded_keywords(value: list[str]) -> list[str]:
    cleaned = []
    for keyword in value:
        keyword = keyword.strip()
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise ValueError(f"{keyword[:30]!r}… is longer than {MAX_KEYWORD_LENGTH} characters; shorten it")
        if re.search(r"[\x00-\x1f\x7f]", keyword):
            raise ValueError(f"{keyword!r} contains control characters; remove them")
        if keyword:
            cleaned.append(keyword)
    return cleaned


def check_query(keywords: list[str], exclude: list[str],
                parse: Callable[[list[str], list[str]], object] | None = None) -> None:
    """Raise ValueError naming the keyword if the ranking language rejects it.

    ``parse`` defaults to the ranking module's ``parse_query``; while that module does
    not exist yet, keywords are only checked for length and control characters.
    """
    parse = parse or _query_parser()
    if parse is None or not (keywords or exclude):
        return
    try:
        parse(keywords, exclude)
    except ValueError as exc:  # the ranking module's QueryError is a ValueError with .keyword
        keyword, problem = getattr(exc, "keyword", None), getattr(exc, "problem", None)
        text = f"keyword {keyword!r}: {problem}" if keyword and problem else str(exc)
        if keyword and keyword not in text and repr(keyword) not in text:  # named once ('\u200b' is repr'd)
            text = f"keyword {keyword!r}: {text}"
        raise ValueError(
            f"{text}; fix or remove it (a keyword is a word, words, a \"quoted phrase\", "
            "word^2 or title:word)"
        ) from None


def _query_parser() -> Callable[[list[str], list[str]], object]:
    # Imported when first needed: the ranking package brings numpy and the stemmer, which
    # reading or listing subscriber files does not need.
    from flows.rank.query import parse_query

    # Not remembered: the flow's process validates every file and ranks none of them.
    return functools.partial(parse_query, remember=False)


def with_default_max(subscriber: Subscriber, max_papers: int | None) -> Subscriber:
    """The subscriber as the daily run sees them: a file that does not set ``max_papers``
    gets ``max_papers`` (PAPERBOY_MAX_PAPERS); None leaves the model's default."""
    if max_papers is not None and not sets_max_papers(subscriber):
        return subscriber.model_copy(update={"max_papers": max_papers})
    return subscriber


def sets_max_papers(subscriber: Subscriber) -> bool:
    """Whether the subscriber's file says ``max_papers`` (else the operator's default applies)."""
    return "max_papers" in subscriber.model_fields_set


def notices(subscriber: Subscriber) -> list[tuple[str, str]]:
    """(field, message) for each thing a valid file says that does nothing, so its owner can
    fix the file: a warning, never an error (the file still works as it is)."""
    found = []
    if subscriber.frequency == "daily" and "weekday" in subscriber.model_fields_set:
        found.append(("weekday", (
            f"weekday: {subscriber.weekday} does nothing without frequency: weekly, so this "
            f"subscriber gets a digest every day; add frequency: weekly for one digest each "
            f"{subscriber.weekday}, or remove the weekday: line")))
    return found


@dataclass(frozen=True)
class SubscriberFileError:
    """Why one subscriber file could not be used."""

    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f" (field '{self.field}')" if self.field else ""
        return f"{self.path}{where}: {self.message}"


class KeywordSyntaxError(ValueError):
    """A comma-separated keyword list has an unbalanced double quote."""


def split_keywords(text: str) -> list[str]:
    """``'diffusion, "world, models", RL'`` → ``['diffusion', '"world, models"', 'RL']``.

    Commas separate keywords except inside double quotes. The quotes are kept: in the
    ranking language a quoted phrase is the whole phrase only (never its parts).
    """
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise KeywordSyntaxError(f"unbalanced double quote in {text!r}; close the quoted phrase")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]

