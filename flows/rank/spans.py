"""Where a paper's text holds the terms that matched it: one definition for the digest's
highlights (flows.cards) and the abstract snippet's centre (flows.rank.excerpt).

A term matches as whole words, in any case, where the ranking would count it
(flows.rank.postings): a word is a run of letters and digits ("_" separates words, as
the ranking's tokens do), and a term of several words never starts inside a hyphenated
compound, so "world models" is not found in "real-world models", while "image
generation" is in "text-to-image generation" (after a linking word). Where terms overlap,
the leftmost wins, then the longest: what a regex alternation of the terms, longest
first, finds.

:func:`term_spans` is the definition. It searches with ``str.find`` where that is exact
(ASCII terms in text on one line with single spaces): compiling a regex per paper (each
matched its own terms) cost more than the rest of a digest's context.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from flows.rank.postings import HYPHENS, LINKING_STEMS
from flows.rank.text import stem


def one_line(text: str) -> str:
    """``text`` with every run of whitespace as one space, and none at either end."""
    if _single_spaced(text):  # nearly always: str methods, no list of words
        return text
    return " ".join(text.split())


def _single_spaced(text: str) -> bool:
    """True if one_line() would leave ``text`` as it is (or it holds an invisible character)."""
    # isprintable() is False for every whitespace but " " (and for format characters,
    # which then take the exact, slower path): str methods, a regex took 30 µs a snippet.
    return text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " "


def term_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) of the terms' occurrences in ``text``, leftmost first, no overlaps."""
    terms = tuple(terms)
    wanted, ascii_terms = _wanted(terms)
    if not wanted:
        return []
    lowered = text.lower()
    if ascii_terms and _single_spaced(text) and find_agrees(text, lowered):
        return first_spans(plain_candidates(text, lowered, wanted))
    return first_spans(_regex_candidates(text, wanted))


def find_agrees(text: str, lowered: str) -> bool:
    """Whether ``str.find`` of ASCII terms in ``lowered`` (``text.lower()``) finds what
    case-insensitive regexes find in ``text``: it is as long, and holds neither character
    that re.IGNORECASE matches to an ASCII letter and lower() does not ("\u0131" dotless i,
    "\u017f" long s). Of the other two found by trying every code point, the Kelvin sign
    lowers to "k" as the regex matches it, and "\u0130" lowers to two characters."""
    return len(lowered) == len(text) and "\u0131" not in text and "\u017f" not in text


def plain_candidates(text: str, lowered: str, wanted: Iterable[str]) -> list[tuple[int, int, int]]:
    """Every occurrence of every term, as :func:`first_spans` takes them, found with str.find.

    ``lowered`` is ``text.lower()`` and as long; the terms are lower case, on one line, and
    ASCII, as is any character of ``text`` they could match. Occurrences that start inside a
    compound are left out (a shorter term at the same start can then win: "models" where
    "world models" may not start)."""
    found = []  # (start, -length, end): at each position the longest term wins
    size = len(text)
    for term in wanted:
        length = len(term)
        phrase = " " in term
        at = lowered.find(term)
        while at >= 0:
            end = at + length  # as is_boundary, inline: this loop runs for every occurrence
            if ((at == 0 or not text[at - 1].isalnum()) and (end == size or not text[end].isalnum())
                    and not (phrase and text[at - 1] in HYPHENS and inside_compound(text, at))):
                found.append((at, -length, end))
            at = lowered.find(term, at + 1)
    return found


def _regex_candidates(text: str, wanted: Iterable[str]) -> list[tuple[int, int, int]]:
    """What :func:`plain_candidates` finds, for any text: one regex per term."""
    found = []
    for term in wanted:
        pattern = _term_pattern(term)
        phrase = " " in term
        match = pattern.search(text)
        while match:
            at, end = match.span()
            if not (phrase and inside_compound(text, at)):
                found.append((at, at - end, end))
            match = pattern.search(text, at + 1)
    return found


def first_spans(found: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Leftmost first, the longest at each start, no overlaps."""
    spans: list[tuple[int, int]] = []
    position = 0
    for at, _, end in sorted(found):
        if at >= position:
            spans.append((at, end))
            position = end
    return spans


def is_boundary(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` has no letter or digit right before or after it."""
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


def inside_compound(text: str, at: int) -> bool:
    """Whether a match starting at ``at`` starts right after "word-" whose word is not a
    linking one ("to" in "text-to-image"). Only terms of several words are held to this:
    a one-word term counts inside a compound ("RL" in "BC-RL"), as in the ranking."""
    if at < 2 or text[at - 1] not in HYPHENS or not text[at - 2].isalnum():
        return False
    start = at - 1
    while start and text[start - 1].isalnum():
        start -= 1
    return stem(text[start:at - 1].lower()) not in LINKING_STEMS


@functools.lru_cache(maxsize=2048)  # the same matches' terms, card after card
def _wanted(terms: tuple[str, ...]) -> tuple[frozenset[str], bool]:
    """The terms as the search takes them (one line, lower case), and whether all are ASCII."""
    wanted = frozenset(one_line(term).lower() for term in terms if term and term.strip())
    return wanted, all(term.isascii() for term in wanted)


@functools.lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    """One term (on one line) as a whole-word, any-case pattern; its spaces match any
    whitespace run."""
    body = re.escape(term).replace(r"\ ", r"\s+")
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])", re.IGNORECASE)
