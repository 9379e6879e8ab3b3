"""Form fields → subscriber values, validated by the same model as the files and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError

from flows.rank import QueryError, parse_keyword
from flows.subscribers import MAX_KEYWORD_LENGTH, MAX_KEYWORDS, WEEKDAYS, Subscriber
from flows.subscribers import KeywordSyntaxError, sets_max_papers, split_keywords, with_default_max
from flows.web.security import strict_int

# A textarea holding MAX_KEYWORDS keywords of the longest kind, with separators, and no more.
MAX_LIST_CHARS = MAX_KEYWORDS * (MAX_KEYWORD_LENGTH + 3)
MAX_EMAIL_CHARS = 254  # RFC 5321's limit on a forward path
LABELS = {
    "email": "Email", "keywords": "Keywords", "exclude": "Leave out",
    "max_papers": "Papers per digest", "frequency": "Frequency", "weekday": "Weekday",
    "include_trending": "Also trending", "related": "Related papers",
}
RELATED_CHOICES = ("off", "near", "far")


class FormError(ValueError):
    """A form value cannot be used; says which field (and line of a keyword list) and how to fix it."""

    def __init__(self, field: str, message: str, *, line: int | None = None, keyword: str = "") -> None:
        super().__init__(f"{LABELS.get(field, field)}: {message}")
        self.field = field
        self.message = message
        self.line = line  # 1-based line of the textarea holding the bad keyword
        self.keyword = keyword


@dataclass(frozen=True)
class Preferences:
    """The values the preferences form edits."""

    keywords: list[str]
    exclude: list[str]
    max_papers: int
    frequency: str
    weekday: str
    include_trending: bool
    related: str = "near"

    @classmethod
    def of(cls, subscriber: Subscriber, default_max: int | None = None) -> "Preferences":
        """The form's values for a subscriber file; ``default_max`` is what a file without
        ``max_papers`` gets (PAPERBOY_MAX_PAPERS), shown as it is what the digest uses."""
        subscriber = with_default_max(subscriber, default_max)
        return cls(list(subscriber.keywords), list(subscriber.exclude), subscriber.max_papers,
                   subscriber.frequency, subscriber.weekday, subscriber.include_trending, subscriber.related)

    def as_form(self) -> dict[str, Any]:
        """The values as the form shows them: one keyword per line."""
        return {**asdict(self), "keywords": "\n".join(self.keywords), "exclude": "\n".join(self.exclude)}


def keyword_list(text: str, field: str = "keywords") -> list[str]:
    """One keyword per line, or commas between them; commas inside "quoted phrases" stay.
    A keyword the ranking language refuses raises FormError naming its line."""
    if len(text) > MAX_LIST_CHARS:
        raise FormError(field, f"too long; at most {MAX_KEYWORDS} keywords of up to "
                               f"{MAX_KEYWORD_LENGTH} characters each")
    items: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            keywords = split_keywords(line)
        except KeywordSyntaxError:
            raise FormError(field, f"line {number}, “{line.strip()[:60]}”: unbalanced double quote; "
                                   "close the quoted phrase", line=number, keyword=line.strip()) from None
        for keyword in keywords:
            check_keyword(keyword, field, number)
        items += keywords
    if len(items) > MAX_KEYWORDS:
        raise FormError(field, f"{len(items)} keywords is too many; keep at most {MAX_KEYWORDS}")
    return items


def check_keyword(keyword: str, field: str, line: int) -> None:
    """FormError naming the line if ``keyword`` is too long or does not parse."""
    if len(keyword) > MAX_KEYWORD_LENGTH:
        raise FormError(field, f"line {line}, “{keyword[:30]}…”: longer than {MAX_KEYWORD_LENGTH} "
                               "characters; shorten it", line=line, keyword=keyword)
    if any(ord(char) < 32 or ord(char) == 127 for char in keyword):
        raise FormError(field, f"line {line}: “{keyword[:30]}” contains control characters; remove them",
                        line=line, keyword=keyword)
    try:
        parse_keyword(keyword, negated=field == "exclude")
    except QueryError as exc:
        raise FormError(field, f"line {line}, “{keyword}”: {exc.problem}", line=line,
                        keyword=keyword) from None


def text_field(form: Mapping[str, Any], name: str, limit: int = MAX_LIST_CHARS) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):  # an uploaded file where text belongs
        raise FormError(name, "must be text")
    if len(value) > limit:
        raise FormError(name, f"is longer than {limit} characters")
    return value


def parse_preferences(form: Mapping[str, Any], default_max: int = 20) -> Preferences:
    """The form's values, shaped but not yet validated against the model; an empty
    "papers per digest" is the default (``default_max``)."""
    frequency = text_field(form, "frequency", 10) or "daily"
    weekday = text_field(form, "weekday", 10) or "monday"
    raw_max = text_field(form, "max_papers", 10).strip() or str(default_max)
    if strict_int(raw_max) is None:  # "²".isdigit() is true, yet int("²") fails
        raise FormError("max_papers", "use a whole number from 1 to 100")
    return Preferences(
        keywords=keyword_list(text_field(form, "keywords"), "keywords"),
        exclude=keyword_list(text_field(form, "exclude"), "exclude"),
        max_papers=int(raw_max),
        frequency=frequency,
        weekday=weekday,
        include_trending=text_field(form, "include_trending", 10) in ("on", "true", "1"),
        related=text_field(form, "related", 10) or "near",
    )


def apply(subscriber: Subscriber, preferences: Preferences) -> Subscriber:
    """The subscriber as these preferences would make them; FormError naming field and keyword.
    (The form shows a file without ``max_papers`` with PAPERBOY_MAX_PAPERS, which is within
    the files' own limit: `changes` decides whether it is written.)"""
    return validated({**subscriber.model_dump(), **asdict(preferences)})


def validated(values: Mapping[str, Any]) -> Subscriber:
    try:
        return Subscriber.model_validate(dict(values))
    except ValidationError as exc:
        raise form_error(exc) from None


def form_error(exc: ValidationError) -> FormError:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "too_long" and field in ("keywords", "exclude"):
        message = f"too many; keep at most {MAX_KEYWORDS}"
    elif first["type"] in ("less_than_equal", "greater_than_equal"):
        message = "use a whole number from 1 to 100"
    elif first["type"] == "literal_error" and field == "weekday":
        message = f"choose one of {', '.join(WEEKDAYS)}"
    elif first["type"] == "literal_error" and field == "related":
        message = "choose off, near or far"
    elif first["type"] == "literal_error":
        message = "choose daily or weekly"
    elif not field and "keyword" in message:  # the model's own rule, worded for YAML
        field, message = "keywords", "add at least one keyword, or tick “Also trending”"
    elif field == "email":  # the model's message is worded for a YAML file
        message = "enter your whole email address, like name@example.org"
    return FormError(field, message)


def changes(current: Subscriber, preferences: Preferences, default_max: int | None = None) -> dict[str, Any]:
    """Only the fields that differ, so the file keeps every untouched line as it was.

    ``current`` is the file's subscriber. A file without ``max_papers`` is compared with
    ``default_max``, what its digests use: left alone, the file still says nothing (and
    follows the operator's default); changed, even to the model's 20, it is written."""
    found = {name: value for name, value in asdict(preferences).items() if getattr(current, name) != value}
    if default_max is not None and not sets_max_papers(current):
        if preferences.max_papers == default_max:
            found.pop("max_papers", None)
        else:
            found["max_papers"] = preferences.max_papers
    return found
