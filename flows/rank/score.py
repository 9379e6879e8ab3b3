"""Scoring a subscriber's query against the index; trending papers.

Every subscriber passes through :func:`rank`, so the work per subscriber is dict merges
and list operations that run in C. Whatever depends on a keyword alone (its postings,
its score per paper, why it matched a paper, the snippet around it) is worked out once
per index, the first time a subscriber needs it, and shared with every later one.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, repeat
from operator import add, mul
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
# Scores compare rounded to 6 decimals; an unrounded total this far below another's can
# still round to the same or a higher value, so candidates within it are kept.
_ROUNDING_SLACK = 2e-6

# Per term of a query: its scores times its weight, the term, its hits, its explanations so far.
_Looked = tuple[dict[int, float], Term, Hits, dict[int, Match]]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A query looked up in one index: each term's scores, and the papers excluded."""

    terms: tuple[_Looked, ...]
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
    ``subscriber.max_papers``. Each paper carries a snippet of its abstract centred on
    the terms that matched there. Raises :class:`QueryError` for a keyword that does
    not parse.
    """
    key = (tuple(subscriber.keywords), tuple(subscriber.exclude))
    prepared = index.queries.get(key)
    if prepared is None:  # many subscribers share a keyword list: parse and look it up once
        prepared = index.queries[key] = _prepare(index, parse_query(*key))
    limit = subscriber.max_papers if limit is None else limit
    if limit <= 0 or not prepared.terms:
        return []
    relevance = _relevance(prepared.terms)
    _drop_excluded(index, relevance, prepared.excluded, exclude_ids)
    best = _best(index, relevance, subscriber.popularity * POPULARITY_SCALE, min_score, limit)
    return _ranked(index, prepared.terms, best)


def rank_many(
    index: PaperIndex,
    subscribers: Iterable[Subscriber],
    *,
    delivered: Mapping[str, Collection[str]] | None = None,
    limit: int | None = None,
) -> dict[str, list[RankedPaper]]:
    """:func:`rank` for a batch of subscribers (keyed by email); ``delivered`` by email too.

    The results are exactly :func:`rank`'s. The cycle collector is paused for the batch:
    ranking allocates objects that live as long as the index and never form cycles, and
    the collector's full passes over them are otherwise wasted work.
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
    return _Prepared(tuple(_look_up(index, term) for term in query.terms), frozenset(excluded))


def _look_up(index: PaperIndex, term: Term) -> _Looked:
    found = index.looked_up.get((term.keyword, term.key, term.weight))
    if found is None:
        scores = term_scores(index, term)
        if term.weight != 1:
            scores = dict(zip(scores, map(mul, repeat(term.weight), scores.values())))
        found = (scores, term, index.hits(term), index.explained(term))
        index.looked_up[term.keyword, term.key, term.weight] = found
    return found


def _relevance(terms: tuple[_Looked, ...]) -> dict[int, float]:
    """Paper number → Σ weight · term score, added in the order of the terms."""
    scores: dict[int, float] = {}
    for found, *_ in terms:
        if not scores:
            scores = dict(found)
            continue
        # Most papers match one term of a query: copy those in C, then add up the others (in C).
        common = scores.keys() & found.keys()
        if common:
            summed = zip(common, map(add, map(scores.__getitem__, common), map(found.__getitem__, common)))
            summed = list(summed)  # before the update below changes scores
            scores.update(found)
            scores.update(summed)
        else:
            scores.update(found)
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
    # Every subscriber passes through here, so each pass over all its candidates counts.
    # Upvotes move a total by at most |scale| · max ln(1 + upvotes): a paper whose relevance is
    # further than that below the limit-th best relevance (or the minimum) cannot make the list.
    most = index.max_log_upvotes
    cut = min_score - max(scale, 0.0) * most
    if len(relevance) > limit:
        cut = max(cut, sorted(relevance.values(), reverse=True)[limit - 1] - abs(scale) * most)
    cut -= _ROUNDING_SLACK
    numbers = [number for number, value in relevance.items() if value >= cut]
    if scale:
        upvotes = index.scaled_log_upvotes(scale)
        totals = [relevance[number] + upvotes[number] for number in numbers]
    else:
        totals = list(map(relevance.__getitem__, numbers))
    # Scores are compared as reported, to 6 decimals, so that sums equal on paper tie
    # however floating point rounded them, and then upvotes and id decide. Rounding keeps
    # the order, so only totals near or above the limit-th best can make the list.
    lowest = max(min_score, sorted(totals, reverse=True)[limit - 1]) if len(totals) > limit else min_score
    lowest -= _ROUNDING_SLACK
    rounded: dict[float, float] = {}  # equal totals are common (no upvotes, one mention each)
    tie_rank, ranked = index.tie_rank, []
    for number, total in zip(numbers, totals):
        if total >= lowest:
            score = rounded.get(total)
            if score is None:
                score = rounded[total] = round(total, 6)
            if score >= min_score:
                ranked.append((-score, tie_rank[number], number))
    ranked.sort()
    return [(-negated, number) for negated, _, number in ranked[:limit]]


def _ranked(index: PaperIndex, terms: tuple[_Looked, ...], best: list[tuple[float, int]]) -> list[RankedPaper]:
    """The best papers with their explanations (worked out once per keyword and paper) and snippets."""
    matches: dict[int, list[Match]] = {number: [] for _, number in best}
    for scores, term, hits, explained in terms:
        for number in scores.keys() & matches.keys():
            match = explained.get(number)
            if match is None:
                match = explained[number] = index.explain(term, hits, number)
            matches[number].append(match)
    papers, excerpts, found = index.papers, index.excerpts, []
    for total, number in best:
        these = matches[number]
        if len(these) == 1:  # the usual case
            shown = these[0].terms if "abstract" in these[0].fields else ()
        else:
            shown = tuple(chain.from_iterable(match.terms for match in these if "abstract" in match.fields))
        found.append(RankedPaper(papers[number], total, tuple(these), excerpts.snippet(number, shown)))
    return found


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
