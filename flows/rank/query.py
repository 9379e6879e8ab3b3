"""The keyword language: one list entry is one keyword (see ``flows.rank`` for the syntax)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from flows.rank.text import words

FIELDS = ("title", "abstract")
MIN_WEIGHT = 0.1
MAX_WEIGHT = 10.0
_FIELD_PREFIX = re.compile(r"([^\W\d_]+)\s*:")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
# Most keywords are plain ASCII words: no prefix, quote, weight or exclusion to look for.
_PLAIN = re.compile(r"[A-Za-z0-9]+(?:[ -][A-Za-z0-9]+)*")


class QueryError(ValueError):
    """A keyword that cannot be understood; the message names it."""

    def __init__(self, keyword: str, problem: str) -> None:
        super().__init__(f"keyword {keyword!r}: {problem}")
        self.keyword = keyword
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Term:
    """One parsed keyword."""

    keyword: str  # the words as the subscriber wrote them, for explanations
    words: tuple[str, ...]  # normalised, not stemmed
    field: str | None = None  # None: title and abstract
    weight: float = 1.0
    negated: bool = False
    key: str = ""  # what decides which papers match: field and words ("title:world model")
    # Whether the thesaurus's neighbours count as graded levels (flows.rank.thesaurus): not
    # for a subscriber with related papers off, who asked for their own words only.
    neighbours: bool = True
    # Other keywords of the same list that are among this one's neighbours: scored as the
    # subscriber's own keywords, so never again as this one's neighbours.
    besides: tuple[tuple[str, ...], ...] = ()
    # Written in quotes: the whole phrase only (in any of its spellings), never its parts or
    # the thesaurus's neighbours (see flows.rank.graded): `"graph neural networks"` is not
    # found in a paper for saying "neural networks".
    whole: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            # other levels, so their own caches; a whole phrase has no levels but itself
            if self.whole:
                plain = "\x04"
            else:
                plain = "" if self.neighbours else "\x02"
                if self.besides:
                    plain += "\x03" + "\x03".join(" ".join(words) for words in self.besides) + "\x03"
            object.__setattr__(self, "key", f"{plain}{self.field or ''}:{' '.join(self.words)}")

    def without_neighbours(self) -> Term:
        return self if not self.neighbours or self.whole else replace(self, neighbours=False, besides=(), key="")

    def besides_keywords(self, besides: tuple[tuple[str, ...], ...]) -> Term:
        return replace(self, besides=besides, key="")


@dataclass(frozen=True, slots=True)
class Query:
    """A subscriber's keywords, parsed: what to look for and what to keep out."""

    terms: tuple[Term, ...]
    exclusions: tuple[Term, ...] = ()


def parse_query(keywords: Sequence[str], exclude: Sequence[str] = (), *, remember: bool = True) -> Query:
    """Parse a subscriber's keywords and ``exclude`` entries; raises :class:`QueryError`.

    Duplicates (same words and field) count once. Results are cached: many
    subscribers share the same list, and ranking parses a list twice (``prepare``, then
    ``rank``). ``remember=False`` leaves the caches alone: validating 10,000 subscriber
    files kept ≈ 8 MB of parsed lists in a process that never ranks them.
    """
    keywords, exclude = tuple(keywords), tuple(exclude)
    for keyword in (*keywords, *exclude):
        if not isinstance(keyword, str):
            raise QueryError(repr(keyword), "is not text")
    if not remember:
        return _parsed(keywords, exclude, _parse_plain_or_not)
    return _parse_query(keywords, exclude)


# Lists, not keywords: they are rarely shared (the index keeps its own lookups of the lists it
# ranked, see flows.rank.score.QUERIES_KEPT), so the lists of the chunk being ranked (parsed
# by prepare, then by rank: at most PREPARED_TOGETHER = 250) are enough; 65,536 kept every
# subscriber's list for the whole run, 4,096 cost ≈ 2 MB.
@lru_cache(maxsize=1_024)
def _parse_query(keywords: tuple[str, ...], exclude: tuple[str, ...]) -> Query:
    return _parsed(keywords, exclude, parse_keyword)


def _parsed(keywords: tuple[str, ...], exclude: tuple[str, ...], parse: Callable[..., Term]) -> Query:
    terms: dict[str, Term] = {}
    exclusions: dict[str, Term] = {}
    for keyword in keywords:
        term = parse(keyword)
        (exclusions if term.negated else terms).setdefault(term.key, term)
    for keyword in exclude:
        term = parse(keyword, negated=True)
        exclusions.setdefault(term.key, term)
    return Query(tuple(terms.values()), tuple(exclusions.values()))


@lru_cache(maxsize=65_536)
def parse_keyword(keyword: str, *, negated: bool = False) -> Term:
    """One keyword: ``[-][field:](word | words | "phrase")[^weight]``."""
    return _parse_plain_or_not(keyword, negated=negated)


def _parse_plain_or_not(keyword: str, *, negated: bool = False) -> Term:
    if _PLAIN.fullmatch(keyword):
        return Term(keyword, tuple(words(keyword)), negated=negated)
    return _parse_keyword(keyword, negated=negated)


def clear_caches() -> None:
    """Forget every parsed query and keyword (the ranking benchmark starts each run cold)."""
    _parse_query.cache_clear()
    parse_keyword.cache_clear()


def _parse_keyword(keyword: str, *, negated: bool) -> Term:
    text = unicodedata.normalize("NFKC", keyword).strip()
    if text.startswith("-"):
        negated, text = True, text[1:].lstrip()
    field, text = _field_prefix(keyword, text)
    quoted = text.startswith('"')
    body, weight = _body_and_weight(keyword, text)
    if negated and weight is not None:
        raise QueryError(keyword, "a weight has no effect on an exclusion; remove the ^")
    found = tuple(words(body))
    if not found:
        problem = "is empty" if not body.strip() else "has no letters or digits to match"
        raise QueryError(keyword, problem)
    label = " ".join(body.split())
    # an exclusion is the whole phrase anyway: quoted or not, one key
    return Term(label, found, field, 1.0 if weight is None else weight, negated, whole=quoted and not negated)


def _field_prefix(keyword: str, text: str) -> tuple[str | None, str]:
    match = _FIELD_PREFIX.match(text)
    if not match:
        return None, text
    name = match.group(1).casefold()
    if name not in FIELDS:
        if not _meant_as_field(match.group(1)):
            return None, text  # "N:M sparsity", "RL: exploration": words, not a field
        raise QueryError(
            keyword,
            f"unknown field {match.group(1)!r}; use title: or abstract:, or put the keyword in quotes",
        )
    return name, text[match.end():].lstrip()


def _meant_as_field(name: str) -> bool:
    """Whether ``name:`` at a keyword's start was meant as a field ("author:", "titel:"),
    rather than being part of the words: a one- or two-letter name ("N:M sparsity") or an
    acronym in capitals ("RL: exploration", "LLM:") is words."""
    return len(name) >= 3 and not name.isupper()


def _body_and_weight(keyword: str, text: str) -> tuple[str, float | None]:
    if text.startswith('"'):
        close = text.find('"', 1)
        if close < 0:
            raise QueryError(keyword, "unbalanced quote: the phrase has no closing \"")
        body, rest = text[1:close], text[close + 1:].strip()
        if rest and not rest.startswith("^"):
            raise QueryError(
                keyword, f"unexpected {rest!r} after the closing quote; put each keyword on its own line"
            )
        if not body.strip():
            raise QueryError(keyword, "empty phrase \"\"")
        return body, _weight(keyword, rest[1:]) if rest else None
    if '"' in text:
        raise QueryError(keyword, "unbalanced quote: quotes must enclose the whole phrase")
    if "^" in text:
        body, _, weight = text.rpartition("^")
        return body, _weight(keyword, weight)
    return text, None


def _weight(keyword: str, text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise QueryError(
            keyword, f"weight {text!r} after ^ is not a number (allowed {MIN_WEIGHT:g} to {MAX_WEIGHT:g})"
        )
    weight = float(text)
    if not (MIN_WEIGHT <= weight <= MAX_WEIGHT) or math.isnan(weight):
        raise QueryError(keyword, f"weight {text} is outside the allowed {MIN_WEIGHT:g} to {MAX_WEIGHT:g}")
    return weight
