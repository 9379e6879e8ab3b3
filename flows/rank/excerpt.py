"""Abstract snippets: at most ``width`` characters centred on the best keyword match.

:func:`snippet` is the definition. :class:`Excerpts` gives the same results for one
index's abstracts while sharing the work between subscribers: every returned paper
gets a snippet, so the search for each term runs once per (paper, term) with
``str.find`` instead of a regular expression compiled for every term list.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.rank.postings import HYPHENS
from flows.rank.spans import find_agrees, inside_compound, is_boundary, plain_candidates, term_spans

SNIPPET_WIDTH = 300
MAX_SPANS = 200  # occurrences considered per snippet

Span = tuple[int, int, str]  # start, end, the term as matched (lower case)


def snippet(text: str, terms: Sequence[str], width: int = SNIPPET_WIDTH) -> str:
    """At most ``width`` characters of ``text`` around its best match, "…" where cut.

    The best match is the stretch of text that holds the most different terms (then
    the most occurrences, then the earliest); the excerpt is centred on it. Terms are
    found where the digest highlights them (:func:`flows.rank.spans.term_spans`).
    """
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return _centred(text, _term_spans(text, terms), width)


# Snippets remembered: at most twice this many. Cutting one again costs about as much as
# remembering it (replaying 200,000 calls: no memo 0.78-1.31 s, 10,000 0.86-1.44 s, except
# where a few keywords are popular: 0.69 vs 0.53 s); 2,000 keeps most of that gain at 2.4 MB
# instead of 12 MB.
SNIPPETS_KEPT = 2_000


class Excerpts:
    """Snippets of one index's abstracts (paper number → abstract), as :func:`snippet` cuts them."""

    __slots__ = ("_abstracts", "_width", "_texts", "_keys", "_snippets", "_older")

    def __init__(self, abstracts: Sequence[str], width: int = SNIPPET_WIDTH) -> None:
        self._abstracts = abstracts
        self._width = width
        self._texts: dict[int, tuple[str, str | None]] = {}
        self._keys = _Keys()
        self._snippets: dict[tuple[int, tuple[str, ...]], str] = {}
        self._older: dict[tuple[int, tuple[str, ...]], str] = {}

    def snippet(self, number: int, terms: tuple[str, ...]) -> str:
        """``snippet(abstracts[number], terms, width)``, remembered (the latest few thousand)."""
        key = (number, terms)
        found = self._snippets.get(key)
        if found is None:
            found = self._older.get(key)
            if found is None:
                found = self._cut(number, terms)
            if len(self._snippets) >= SNIPPETS_KEPT:
                # Subscribers seldom share a paper's snippet (terms differ): kept forever, the
                # snippets were the largest part of a run's memory and grew with subscribers.
                # The latest SNIPPETS_KEPT and those before them stay (one used again from
                # those is kept on): popular snippets are not forgotten.
                self._older, self._snippets = self._snippets, {}
            self._snippets[key] = found
        return found

    def _cut(self, number: int, terms: tuple[str, ...]) -> str:
        text, lowered = self._texts.get(number) or self._text(number)
        width = self._width
        if len(text) <= width:
            return text
        keys = self._keys
        wanted = {keys[terms[0]]} if len(terms) == 1 else set(map(keys.__getitem__, terms))
        wanted.discard("")
        if lowered is None or None in wanted:
            return _centred(text, _term_spans(text, terms), width)
        if not wanted:  # nothing to centre on (a title match): the start, as _centred cuts it
            return _cut(text, 0, width)
        if len(wanted) == 1:  # the usual case: one keyword, one spelling, often one mention
            (term,) = wanted
            at = lowered.find(term)
            if at < 0:
                return _cut(text, 0, width)
            if (lowered.find(term, at + 1) < 0 and is_boundary(text, at, at + len(term))
                    and not (text[at - 1] in HYPHENS and " " in term and inside_compound(text, at))):
                return _around(text, (at, at + len(term)), width)
        return _centred(text, _spans(text, lowered, wanted), width)

    def _text(self, number: int) -> tuple[str, str | None]:
        """The abstract with whitespace collapsed, and lower-cased where str.find may search it."""
        abstract = self._abstracts[number]
        text = " ".join(abstract.split())
        if text == abstract:  # the usual case: keep one copy of the abstract, not two
            text = abstract
        lowered: str | None = text.lower()
        if not find_agrees(text, lowered):
            lowered = None
        found = self._texts[number] = (text, lowered)
        return found


class _Keys(dict):
    """Term → how :func:`_term_spans` reports it ("" for a blank term, None if not ASCII)."""

    def __missing__(self, term: str) -> str | None:
        key = " ".join(term.split()).lower()
        found = self[term] = key if key.isascii() else None
        return found


def _spans(text: str, lowered: str, wanted: set[str]) -> list[Span]:
    """What :func:`_term_spans` finds in ASCII terms, with ``str.find``: as
    :func:`flows.rank.spans.first_spans` picks them, in one loop with naming each term (a
    snippet's hot path)."""
    spans: list[Span] = []
    after = 0
    for at, _, end in sorted(plain_candidates(text, lowered, wanted)):
        if at >= after:
            spans.append((at, end, lowered[at:end]))
            if len(spans) == MAX_SPANS:
                break
            after = end
    return spans


def _term_spans(text: str, terms: Sequence[str]) -> list[Span]:
    """(start, end, the term in lower case) of the terms' occurrences (see :mod:`flows.rank.spans`)."""
    return [(at, end, text[at:end].lower()) for at, end in term_spans(text, terms)[:MAX_SPANS]]


def _centred(text: str, spans: list[Span], width: int) -> str:
    """The excerpt around the best window of spans (see :func:`snippet`)."""
    if not spans:
        return _cut(text, 0, width)
    room = width - 2  # both ends may need a "…"
    if spans[-1][1] <= spans[0][0] + room:  # all in the first window: no other holds as many
        return _around(text, (spans[0][0], spans[-1][1]), width)
    # The window starting at span i holds the later spans ending within room: ends grow
    # with starts (matches never overlap), so it is spans[i:j] with j never moving back.
    distinct = len({term for _, _, term in spans})
    best, best_key, j = (0, 1), (0, 0), 0
    for i, (start, _, _) in enumerate(spans):
        j = max(j, i + 1)
        while j < len(spans) and spans[j][1] <= start + room:
            j += 1
        count = j - i
        if (min(count, distinct), count) <= best_key:  # cannot beat the best: no need to count its terms
            continue
        key = (1 if distinct == 1 else len({term for _, _, term in spans[i:j]}), count)
        if key > best_key:
            best, best_key = (i, j), key
    return _around(text, (spans[best[0]][0], spans[best[1] - 1][1]), width)


def _around(text: str, keep: tuple[int, int], width: int) -> str:
    """The excerpt centred on ``text[keep[0]:keep[1]]``."""
    centre = (keep[0] + keep[1]) // 2
    start = max(0, min(centre - width // 2, len(text) - width))
    return _cut(text, start, width, keep)


def _cut(text: str, start: int, width: int, keep: tuple[int, int] | None = None) -> str:
    """``text[start:start+width]`` trimmed to whole words, with "…" marking each cut."""
    end = min(len(text), start + width)
    if start > 0:
        start += 1  # room for the leading "…"
        space = text.find(" ", start, keep[0] if keep else end)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        end -= 1  # room for the trailing "…"
        space = text.rfind(" ", keep[1] if keep else start, end + 1)
        end = space if space > start else end
    return ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")
