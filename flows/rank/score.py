"""Scoring a subscriber's query against the index; trending papers; abstract snippets."""

from __future__ import annotations

import gc
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import ge
from typing import TYPE_CHECKING

from flows.models import Match, Paper, RankedPaper
from flows.rank.index import Hits, PaperIndex
from flows.rank.query import Query, Term, parse_query

if TYPE_CHECKING:
    from flows.subscribers import Subscriber

SATURATION = 1.2  # k in tf·(1+k)/(tf+k): 1 mention → 1, 2 → 1.38, 3 → 1.57, never above 2.2
TITLE_WEIGHT = 3.0  # one title mention outweighs any number of abstract mentions
ABSTRACT_WEIGHT = 1.0
PHRASE_BOOST = 1.5  # phrases and acronyms are more specific than single words
POPULARITY_SCALE = 0.25  # times Subscriber.popularity times ln(1 + upvotes)
MIN_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A query looked up in one index: each term's scores, and the papers excluded."""

    # Per term: its weight, its scores, its hits, and its explanations worked out so far.
    terms: tuple[tuple[Term, float, dict[int, float], Hits, dict[int, Match]], ...]
    excluded: frozenset[int]


def rank(
    index: PaperIndex,
    subscriber: Subscriber,
    *,
    exclude_ids: Collection[str] = frozenset(),
    limit: int | None = None,
    min_score: float = MIN_SCORE,
) -> list[RankedPaper]:
    """The subscriber's best papers, best first, each with the keywords that matched.

    ``exclude_ids`` are papers the subscriber already received; ``limit`` defaults to
    ``subscriber.max_papers``. Raises :class:`QueryError` for a keyword that does not parse.
    """
    key = (tuple(subscriber.keywords), tuple(subscriber.exclude))
    prepared = index.queries.get(key)
    if prepared is None:  # many subscribers share a keyword list: parse and look it up once
        prepared = index.queries[key] = _prepare(index, parse_query(*key))
    limit = subscriber.max_papers if limit is None else limit
    if limit <= 0 or not prepared.terms:
        return []
    relevance = _relevance(prepared)
    _drop_excluded(index, relevance, prepared.excluded, exclude_ids)
    best = _best(index, relevance, subscriber.popularity * POPULARITY_SCALE, min_score, limit)
    return [
        RankedPaper(index.papers[number], total, _matches(index, prepared, number))
        for total, number in best
    ]


def _matches(index: PaperIndex, prepared: _Prepared, number: int) -> tuple[Match, ...]:
    found = []
    for term, _, scores, hits, explained in prepared.terms:
        if number in scores:
            match = explained.get(number)
            if match is None:
                match = explained[number] = index.explain(term, hits, number)
            found.append(match)
    return tuple(found)


def rank_many(
    index: PaperIndex,
    subscribers: Iterable[Subscriber],
    *,
    delivered: Mapping[str, Collection[str]] | None = None,
    limit: int | None = None,
) -> dict[str, list[RankedPaper]]:
    """:func:`rank` for a batch of subscribers (keyed by email); ``delivered`` by email too.

    Ranking allocates many small objects that live as long as the run and never form
    reference cycles, so the cycle collector is paused for the batch: its full passes
    over the growing caches otherwise cost about a third of the time.
    """
    delivered = delivered or {}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return {
            reader.email: rank(index, reader, exclude_ids=delivered.get(reader.email, ()), limit=limit)
            for reader in subscribers
        }
    finally:
        if was_enabled:
            gc.enable()


def term_scores(index: PaperIndex, term: Term) -> dict[int, float]:
    """Paper number → the term's score in that paper, before the subscriber's weight."""
    cached = index.term_scores.get(term.key)
    if cached is None:
        hits = index.hits(term)
        cached = _field_scores(hits.abstract, hits.abstract_phrase, ABSTRACT_WEIGHT)
        for number, score in _field_scores(hits.title, hits.title_phrase, TITLE_WEIGHT).items():
            cached[number] = cached.get(number, 0.0) + score
        index.term_scores[term.key] = cached
    return cached


def saturate(tf: int) -> float:
    """BM25's term-frequency saturation, scaled so that one mention counts 1."""
    return tf * (1 + SATURATION) / (tf + SATURATION)


class _Saturated(dict):
    """tf → weight · saturate(tf), remembered: a few small counts cover nearly every paper."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def __missing__(self, tf: int) -> float:
        score = self[tf] = self.weight * saturate(tf)
        return score


_SATURATED: dict[float, _Saturated] = {}


def _saturated(weight: float) -> _Saturated:
    table = _SATURATED.get(weight)
    if table is None:
        table = _SATURATED[weight] = _Saturated(weight)
    return table


def _field_scores(counts: dict[int, int], in_phrase: frozenset[int], weight: float) -> dict[int, float]:
    plain, boosted = _saturated(weight), _saturated(weight * PHRASE_BOOST)
    if len(in_phrase) == len(counts) or not in_phrase:  # the usual cases, done in C
        table = boosted if in_phrase else plain
        return dict(zip(counts.keys(), map(table.__getitem__, counts.values())))
    return {number: (boosted if number in in_phrase else plain)[tf] for number, tf in counts.items()}


def _prepare(index: PaperIndex, query: Query) -> _Prepared:
    excluded: set[int] = set()
    for term in query.exclusions:
        hits = index.hits(term)
        excluded.update(hits.title, hits.abstract)
    terms = tuple(
        (term, term.weight, term_scores(index, term), index.hits(term), index.explained(term))
        for term in query.terms
    )
    return _Prepared(terms, frozenset(excluded))


def _relevance(prepared: _Prepared) -> dict[int, float]:
    scores: dict[int, float] = {}
    for _, weight, found, _, _ in prepared.terms:
        if not scores:
            scores = dict(found) if weight == 1 else {n: weight * s for n, s in found.items()}
        elif weight == 1:
            get = scores.get
            for number, score in found.items():
                scores[number] = get(number, 0.0) + score
        else:
            get = scores.get
            for number, score in found.items():
                scores[number] = get(number, 0.0) + weight * score
    return scores


def _drop_excluded(
    index: PaperIndex, scores: dict[int, float], excluded: frozenset[int], exclude_ids: Collection[str]
) -> None:
    for number in excluded if len(excluded) < len(scores) else [n for n in scores if n in excluded]:
        scores.pop(number, None)
    if len(exclude_ids) < len(scores):
        for paper_id in exclude_ids:
            scores.pop(index.numbers.get(paper_id, -1), None)
    elif exclude_ids:
        for number in [n for n in scores if index.papers[n].id in exclude_ids]:
            del scores[number]


def _best(
    index: PaperIndex, relevance: dict[int, float], scale: float, min_score: float, limit: int
) -> list[tuple[float, int]]:
    """(score, paper number) of the best papers: by score, then upvotes, then id."""
    # Every subscriber passes through here: the work over all candidates stays in C
    # (sorted, map, compress), and only those that can still make the list are scored.
    numbers, values = list(relevance), list(relevance.values())
    best = sorted(values, reverse=True)[limit - 1] if len(values) > limit else min_score
    # Upvotes add at most scale · max ln(1 + upvotes); below this a paper cannot make it.
    cutoff = max(best, min_score) - scale * index.max_log_upvotes - 1e-6
    if values and min(values) < cutoff:
        keep = list(map(ge, values, repeat(cutoff)))
        numbers, values = list(compress(numbers, keep)), list(compress(values, keep))
    # Scores are compared as reported, to 6 decimals, so that sums equal on paper tie
    # however floating point rounded them, and then upvotes and id decide.
    logs = index.log_upvotes
    totals = [round(value + scale * logs[number], 6) for number, value in zip(numbers, values)]
    floor = max(min_score, sorted(totals, reverse=True)[limit - 1]) if len(totals) > limit else min_score
    tie_rank = index.tie_rank
    ranked = sorted(
        (-total, tie_rank[number], number) for number, total in zip(numbers, totals) if total >= floor
    )
    return [(-negated, number) for negated, _, number in ranked[:limit]]


def trending(index: PaperIndex, *, exclude_ids: Collection[str], n: int) -> list[Paper]:
    """The most upvoted papers not in ``exclude_ids`` (papers without upvotes never trend)."""
    found: list[Paper] = []
    for number in index.by_popularity:
        paper = index.papers[number]
        if len(found) >= n or paper.upvotes <= 0:
            break
        if paper.id not in exclude_ids:
            found.append(paper)
    return found


def snippet(text: str, terms: Sequence[str], width: int = 300) -> str:
    """At most ``width`` characters of ``text`` around its best match, "…" where cut.

    The best match is the stretch of text that holds the most different terms (then
    the most occurrences, then the earliest); the excerpt is centred on it.
    """
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    spans = _term_spans(text, terms)
    if not spans:
        return _cut(text, 0, width)
    room = width - 2  # both ends may need a "…"
    regions = (
        [span, *(later for later in spans[i + 1:] if later[1] <= span[0] + room)]
        for i, span in enumerate(spans)
    )
    best = max(regions, key=lambda region: (len({term for _, _, term in region}), len(region)))
    keep = (best[0][0], best[-1][1])
    centre = (keep[0] + keep[1]) // 2
    start = max(0, min(centre - width // 2, len(text) - width))
    return _cut(text, start, width, keep)


def _term_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, term) of whole-word occurrences of the terms, case-insensitively."""
    wanted = {" ".join(term.split()).lower(): " ".join(term.split()) for term in terms if term.strip()}
    if not wanted:
        return []
    alternatives = "|".join(re.escape(term) for term in sorted(wanted.values(), key=len, reverse=True))
    pattern = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)
    return [(m.start(), m.end(), m.group().lower()) for m in pattern.finditer(text)][:200]


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
