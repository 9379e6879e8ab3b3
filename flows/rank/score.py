"""Scoring a subscriber's query against the index; trending papers.

Every subscriber passes through :func:`rank`, so the work per subscriber is a few numpy
operations on one vector of the day's papers, and Python only for the handful of papers
near the cut. Whatever depends on a keyword alone (its postings, its score per paper, why
it matched a paper, the snippet around it) is worked out once per index, the first time a
subscriber needs it, and shared with every later one.

Vector layout: per keyword, two aligned arrays, the numbers of the papers it matches
(intp) and its weighted score in each (float64), kept sparse because a day holds tens of
thousands of distinct keywords. Per subscriber, one dense float64 vector indexed by paper
number holds the relevance, summed term by term in query order from 0.0 as the plain
formula adds them (so the sums are bit for bit the same). Every term's score is positive,
so 0.0 means that no keyword matched; excluded and delivered papers are reset to 0.0.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from flows.models import Match, Paper, RankedPaper
from flows.rank.feedback import DISLIKED_WEIGHT, LIKED_WEIGHT, Feedback, best_likeness, liked_match
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
# Keyword lists whose lookups an index keeps before it forgets the per-keyword work of
# graded phrases and related papers (and every keyword list's): with thousands of distinct
# keywords that work outgrew the index itself; redoing it for a later subscriber is cheap.
QUERIES_KEPT = 5000
# Related papers (see flows.rank.related): a keyword's related evidence r in a paper is the
# share of its related terms' weight the paper holds (0 to 1); it adds RELATED_WEIGHT · r ·
# the keyword's weight to the score. A paper that no keyword matches enters only if that
# sum reaches the subscriber's threshold: "near" (calibrated for precision) or "far".
RELATED_WEIGHT = 8.0
RELATED_FLOOR = 0.05  # evidence below this share is noise, and dropped
# A paper no keyword matches exactly enters on its partial matches (graded phrases) if
# they score PARTIAL_MIN, else on partial and related evidence together if that reaches
# the subscriber's level's threshold.
PARTIAL_MIN = 3.0
NON_EXACT_THRESHOLDS = {"near": 3.5, "far": 2.0, "off": float("inf")}
RELATED_SHOWN = 3  # related terms named per keyword in an explanation
RELATED_LEVELS = ("off", "near", "far")
# Scores compare rounded to 6 decimals; an unrounded total this far below another's can
# still round to the same or a higher value, so candidates within it are kept.
_ROUNDING_SLACK = 2e-6

# Per term of a query: the papers it matches and its scores there times its weight (aligned
# arrays, ascending paper numbers), the term, its hits, its explanations so far, and whether
# graded phrases gave it parts (False: exact matching, where the hits say which papers matched).
_Looked = tuple[np.ndarray, np.ndarray, Term, Hits, dict[int, Match], bool]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A query looked up in one index: each term's scores, and the papers excluded."""

    terms: tuple[_Looked, ...]
    excluded: np.ndarray  # paper numbers (intp)
    # Per term, its related evidence: (papers, RELATED_WEIGHT · weight · r) aligned arrays;
    # empty without related papers.
    related: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    # With graded phrases or related papers: per paper, whether some keyword matches it
    # exactly (it enters at MIN_SCORE; the others need the threshold of the subscriber's
    # level), as bits (np.packbits).
    exact: np.ndarray | None = None


def rank(
    index: PaperIndex,
    subscriber: Subscriber,
    *,
    exclude_ids: Collection[str] = frozenset(),
    limit: int | None = None,
    min_score: float = MIN_SCORE,
    graded: bool = True,
    related: str | None = None,
    feedback: Sequence[Feedback] = (),
) -> list[RankedPaper]:
    """The subscriber's best papers, best first, each with the keywords that matched.

    ``exclude_ids`` are papers the subscriber already received; ``limit`` defaults to
    ``subscriber.max_papers``. Each paper carries a snippet of its abstract centred on
    the terms that matched there. ``graded`` gives parts of multi-word keywords partial
    credit (see :mod:`flows.rank.graded`); without it only whole keywords match.
    ``related`` (``off``, ``near``, ``far``; default: the subscriber's ``related``
    setting) adds papers that only the keywords' related terms find, when the index has
    a related model. ``graded=False, related="off"`` is the exact-match ranking.
    ``feedback``: the papers the subscriber marked "more" or "less" like this (see
    :mod:`flows.rank.feedback`; needs the related model).
    Raises :class:`QueryError` for a keyword that does not parse.
    """
    level = related if related is not None else getattr(subscriber, "related", "near")
    use_related = level != "off" and index.related is not None
    key = (tuple(subscriber.keywords), tuple(subscriber.exclude), graded, use_related)
    prepared = index.queries.get(key)
    if prepared is None:  # many subscribers share a keyword list: parse and look it up once
        if len(index.queries) >= QUERIES_KEPT:
            index.forget_rankings()
        prepared = index.queries[key] = _prepare(index, parse_query(*key[:2]), graded, use_related)
    limit = subscriber.max_papers if limit is None else limit
    if limit <= 0 or not prepared.terms:
        return []
    relevance = _relevance(len(index.papers), prepared.terms)
    marked = _Marked.of(index, feedback)
    if prepared.exact is not None or marked:
        relevance = _tiered(relevance, prepared, level, index, marked, min_score)
    _drop_excluded(index, relevance, prepared.excluded, exclude_ids)
    best = _best(index, relevance, subscriber.popularity * POPULARITY_SCALE, min_score, limit)
    return _ranked(index, prepared, best, marked)


def rank_many(
    index: PaperIndex,
    subscribers: Iterable[Subscriber],
    *,
    delivered: Mapping[str, Collection[str]] | None = None,
    limit: int | None = None,
    graded: bool = True,
    related: str | None = None,
    feedback: Mapping[str, Sequence[Feedback]] | None = None,
) -> dict[str, list[RankedPaper]]:
    """:func:`rank` for a batch of subscribers (keyed by email); ``delivered`` and
    ``feedback`` by email too.

    The results are exactly :func:`rank`'s. The cycle collector is paused for the batch:
    ranking allocates objects that live as long as the index and never form cycles, and
    the collector's full passes over them are otherwise wasted work.
    """
    delivered, feedback = delivered or {}, feedback or {}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return {
            reader.email: rank(index, reader, exclude_ids=delivered.get(reader.email, ()), limit=limit,
                               graded=graded, related=related, feedback=feedback.get(reader.email, ()))
            for reader in subscribers
        }
    finally:
        if was_enabled:
            gc.enable()


def term_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray]:
    """The papers the term matches and its score in each, before the subscriber's weight."""
    cached = index.term_scores.get(term.key)
    if cached is None:
        hits = index.hits(term)
        scores = _field_scores(hits.abstract, hits.abstract_phrase, ABSTRACT_WEIGHT)
        for number, score in _field_scores(hits.title, hits.title_phrase, TITLE_WEIGHT).items():
            scores[number] = scores.get(number, 0.0) + score  # abstract first, as the formula adds
        numbers = _read_only(np.fromiter(scores.keys(), np.intp, len(scores)))
        values = _read_only(np.fromiter(scores.values(), np.float64, len(scores)))
        cached = index.term_scores[term.key] = (numbers, values)
    return cached


def graded_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`term_scores` with partial credit for parts of the keyword, and whether it has
    parts (False: its scores are :func:`term_scores`')."""
    key = f"\x00{term.key}"  # never a plain key: those start with the field name or ":"
    cached = index.term_scores.get(key)
    if cached is not None:
        return cached  # type: ignore[return-value]
    levels = index.graded(term)
    if not levels:
        numbers, values = term_scores(index, term)
        found: tuple = (numbers, values, False)
    else:
        hits, size = index.hits(term), len(index.papers)
        abstract = _best_of_levels(hits.abstract, hits.abstract_phrase, levels, 1, ABSTRACT_WEIGHT, size)
        title = _best_of_levels(hits.title, hits.title_phrase, levels, 0, TITLE_WEIGHT, size)
        total = abstract + title  # abstract first, as the formula adds
        numbers = _read_only(np.flatnonzero(total))
        values = _read_only(total[numbers])
        found = (numbers, values, True)
    index.term_scores[key] = found  # type: ignore[assignment]
    return found


def _best_of_levels(counts: dict[int, int], in_phrase: AbstractSet[int], levels, f: int,
                    weight: float, size: int) -> np.ndarray:
    """Per paper (dense), the field's best score: the whole keyword's, or a part's times its credit."""
    best = np.zeros(size)
    for level_counts, level_phrase, scale in (
        (counts, in_phrase, weight),
        *(((hits.abstract, hits.abstract_phrase) if f else (hits.title, hits.title_phrase)) + (weight * part.credit,)
          for part, hits in levels),
    ):
        if not level_counts:
            continue
        scores = _field_scores(level_counts, level_phrase, scale)
        numbers = np.fromiter(scores.keys(), np.intp, len(scores))
        values = np.fromiter(scores.values(), np.float64, len(scores))
        best[numbers] = np.maximum(best[numbers], values)
    return best


def level_scores(index: PaperIndex, term: Term, number: int) -> list[tuple[str, float, object, Hits]]:
    """Per field of one paper, the level that scored it: (field, score, part or None, hits)."""
    hits = index.hits(term)
    found = []
    for f, (name, weight) in enumerate(zip(("title", "abstract"), (TITLE_WEIGHT, ABSTRACT_WEIGHT))):
        best: tuple[str, float, object, Hits] | None = None
        for part, level in ((None, hits), *index.graded(term)):
            counts, phrase = (level.abstract, level.abstract_phrase) if f else (level.title, level.title_phrase)
            tf = counts.get(number)
            if tf:
                credit = 1.0 if part is None else part.credit
                score = weight * credit * (PHRASE_BOOST if number in phrase else 1.0) * saturate(tf)
                if best is None or score > best[1]:
                    best = (name, score, part, level)
        if best is not None:
            found.append(best)
    return found


def _read_only(array: np.ndarray) -> np.ndarray:
    """The array, locked: the caches on the index are shared by every subscriber."""
    array.flags.writeable = False
    return array


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


def _field_scores(counts: dict[int, int], in_phrase: AbstractSet[int], weight: float) -> dict[int, float]:
    plain, boosted = _saturated(weight), _saturated(weight * PHRASE_BOOST)
    if len(in_phrase) == len(counts) or not in_phrase:  # the usual cases, done in C
        table = boosted if in_phrase else plain
        return dict(zip(counts.keys(), map(table.__getitem__, counts.values())))
    return {number: (boosted if number in in_phrase else plain)[tf] for number, tf in counts.items()}


def _prepare(index: PaperIndex, query: Query, graded: bool, use_related: bool) -> _Prepared:
    excluded: set[int] = set()
    for term in query.exclusions:  # exclusions stay exact: only the whole keyword excludes
        hits = index.hits(term)
        excluded.update(hits.title, hits.abstract)
    looked = tuple(_look_up(index, term, graded) for term in query.terms)
    related = tuple(_weighted_related(index, term) for term in query.terms) if use_related else ()
    if related and not any(numbers.size for numbers, _ in related):
        related = ()
    exact = None
    if (graded or related) and looked:
        exact = np.zeros(len(index.papers), np.bool_)  # packed: 1 bit a paper, whatever the keywords
        for entry in looked:
            exact[term_scores(index, entry[2])[0]] = True
        exact = np.packbits(exact)
    return _Prepared(looked, np.fromiter(sorted(excluded), np.intp, len(excluded)), related, exact)


@dataclass(frozen=True, slots=True)
class _Marked:
    """A subscriber's feedback in one index: what they liked and disliked, and per paper
    its likeness to each (the best cosine)."""

    liked: tuple[Feedback, ...]
    disliked: tuple[Feedback, ...]
    like: np.ndarray | None
    unlike: np.ndarray | None

    @classmethod
    def of(cls, index: PaperIndex, feedback: Sequence[Feedback]) -> "_Marked | None":
        if not feedback or index.related is None:
            return None
        liked = tuple(item for item in feedback if item.verdict == "more")
        disliked = tuple(item for item in feedback if item.verdict == "less")
        return cls(liked, disliked, best_likeness(index, liked) if liked else None,
                   best_likeness(index, disliked) if disliked else None)


def _tiered(relevance: np.ndarray, prepared: _Prepared, level: str, index: PaperIndex,
            marked: _Marked | None, min_score: float) -> np.ndarray:
    """Add the related evidence; keep the papers a keyword matches exactly, those whose
    partial matches reach PARTIAL_MIN, and those whose partial and related evidence (and
    likeness to liked papers) together reach the level's threshold. Likeness to disliked
    papers then lowers a kept paper's score, never below the minimum: not an exclusion."""
    keep = relevance >= PARTIAL_MIN
    if prepared.exact is not None:
        keep |= np.unpackbits(prepared.exact, count=relevance.size).view(np.bool_)
    else:
        keep |= _exact_matches(index, prepared)
    threshold = NON_EXACT_THRESHOLDS[level]
    if prepared.related:
        relevance = relevance + _related_evidence(relevance.size, prepared.related)
    if marked is not None and marked.like is not None:
        relevance = relevance + LIKED_WEIGHT * marked.like
        threshold = min(threshold, NON_EXACT_THRESHOLDS["near"])  # they asked for these
    if prepared.related or (marked is not None and marked.like is not None):
        keep |= relevance >= threshold
    relevance = np.where(keep, relevance, 0.0)
    if marked is not None and marked.unlike is not None:
        lowered = relevance - DISLIKED_WEIGHT * marked.unlike
        relevance = np.where(keep, np.maximum(lowered, np.minimum(relevance, min_score)), 0.0)
    return relevance


def _exact_matches(index: PaperIndex, prepared: _Prepared) -> np.ndarray:
    exact = np.zeros(len(index.papers), np.bool_)
    for looked in prepared.terms:
        exact[term_scores(index, looked[2])[0]] = True
    return exact


def related_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray]:
    """The papers holding at least ``RELATED_FLOOR`` of the keyword's related-term weight,
    and that share (cached per index: subscribers share keywords, and keywords share
    their related terms, "RL" and "reinforcement learning" for one)."""
    key = f"\x01{term.key}"
    cached = index.term_scores.get(key)
    if cached is None:
        units, weights = index.expansion(term)
        shared = (units, weights.tobytes())
        cached = index.expansion_scores.get(shared)
        if cached is None:
            cached = index.expansion_scores[shared] = _expansion_scores(index, units, weights)
        index.term_scores[key] = cached
    return cached


def _expansion_scores(index: PaperIndex, units: tuple[str, ...], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not units:
        return _read_only(np.zeros(0, np.intp)), _read_only(np.zeros(0))
    postings = [index.unit_papers(unit) for unit in units]
    numbers = np.concatenate([numbers for numbers, _ in postings])
    values = np.concatenate([values for _, values in postings])
    values *= np.repeat(weights, [n.size for n, _ in postings])
    weights = values
    share = np.bincount(numbers, weights, len(index.papers))
    kept = np.flatnonzero(share >= RELATED_FLOOR)
    return _read_only(kept), _read_only(share[kept])


def _weighted_related(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray]:
    key = (term.keyword, f"\x01{term.key}", term.weight)
    found = index.looked_up.get(key)
    if found is None:
        numbers, share = related_scores(index, term)
        found = index.looked_up[key] = (numbers, _read_only((RELATED_WEIGHT * term.weight) * share))
    return found


def _related_evidence(size: int, related: tuple[tuple[np.ndarray, np.ndarray], ...]) -> np.ndarray:
    """Paper number → Σ over keywords of RELATED_WEIGHT · weight · related share."""
    numbers = np.concatenate([entry[0] for entry in related])
    values = np.concatenate([entry[1] for entry in related])
    return np.bincount(numbers, values, size)


def _look_up(index: PaperIndex, term: Term, graded: bool) -> _Looked:
    key = (term.keyword, term.key, term.weight) if not graded else (term.keyword, f"\x00{term.key}", term.weight)
    found = index.looked_up.get(key)
    if found is None:
        if graded:
            numbers, scores, has_parts = graded_scores(index, term)
        else:
            (numbers, scores), has_parts = term_scores(index, term), False
        if term.weight != 1:  # elementwise, each product rounded as the same product of Python floats
            scores = _read_only(term.weight * scores)
        explained = index.explained(term, graded=has_parts)
        found = (numbers, scores, term, index.hits(term), explained, has_parts)
        index.looked_up[key] = found
    return found


def _relevance(size: int, terms: tuple[_Looked, ...]) -> np.ndarray:
    """Paper number → Σ weight · term score, added in the order of the terms; 0.0 if none matched."""
    if len(terms) == 1:
        relevance = np.zeros(size)
        relevance[terms[0][0]] = terms[0][1]
        return relevance
    # bincount adds the weights one by one in the order given, each bin starting from 0.0:
    # with the terms concatenated in query order, that is the plain formula's order.
    numbers = np.concatenate([looked[0] for looked in terms])
    scores = np.concatenate([looked[1] for looked in terms])
    return np.bincount(numbers, scores, size)


def _drop_excluded(
    index: PaperIndex, relevance: np.ndarray, excluded: np.ndarray, exclude_ids: Collection[str]
) -> None:
    """Reset the papers an exclusion matches, and those already delivered, to "not matched"."""
    if excluded.size:
        relevance[excluded] = 0.0
    if not exclude_ids:
        return
    if len(exclude_ids) <= np.count_nonzero(relevance):
        numbers = index.numbers
        delivered = [numbers[paper_id] for paper_id in exclude_ids if paper_id in numbers]
    else:  # a long history: look up the few matched papers in it instead
        papers = index.papers
        delivered = [n for n in np.flatnonzero(relevance).tolist() if papers[n].id in exclude_ids]
    if delivered:
        relevance[delivered] = 0.0


def _best(
    index: PaperIndex, relevance: np.ndarray, scale: float, min_score: float, limit: int
) -> list[tuple[float, int]]:
    """(score, paper number) of the best papers: by score, then upvotes, then id."""
    totals = relevance + index.scaled_log_upvotes(scale) if scale else relevance
    numbers = _near_the_top(relevance, totals, min_score, limit)
    # Scores are compared as reported, to 6 decimals, so that sums equal on paper tie
    # however floating point rounded them, and then upvotes and id decide.
    rounded: dict[float, float] = {}  # equal totals are common (no upvotes, one mention each)
    tie_rank, ranked = index.tie_rank, []
    for number, total in zip(numbers.tolist(), totals[numbers].tolist()):
        score = rounded.get(total)
        if score is None:
            score = rounded[total] = round(total, 6)
        if score >= min_score:
            ranked.append((-score, tie_rank[number], number))
    ranked.sort()
    return [(-negated, number) for negated, _, number in ranked[:limit]]


def _near_the_top(relevance: np.ndarray, totals: np.ndarray, min_score: float, limit: int) -> np.ndarray:
    """The matched papers whose total, rounded, may reach both the minimum and the list.

    Rounding keeps the order, and a total more than the slack below another rounds lower:
    so below the minimum less the slack, or below the limit-th best total less the slack
    (with that many papers above it), no paper can make the list.
    """
    numbers = np.flatnonzero((totals >= min_score - _ROUNDING_SLACK) & (relevance > 0.0))
    if numbers.size > limit:
        values = totals[numbers]
        kth = float(np.partition(values, numbers.size - limit)[numbers.size - limit])
        numbers = numbers[values >= max(min_score, kth) - _ROUNDING_SLACK]
    return numbers


def _ranked(index: PaperIndex, prepared: _Prepared, best: list[tuple[float, int]],
            marked: _Marked | None = None) -> list[RankedPaper]:
    """The best papers with their explanations (worked out once per keyword and paper) and snippets."""
    terms = prepared.terms
    matches: dict[int, list[Match]] = {number: [] for _, number in best}
    winners = matches.keys()
    winner_array = np.fromiter(winners, np.intp, len(matches))
    for numbers, _, term, hits, explained, has_parts in terms:
        if has_parts:  # the papers the keyword scored, sorted: look the winners up in them
            if not numbers.size:
                continue
            at = np.searchsorted(numbers, winner_array)
            found = set(winner_array[(at < numbers.size) & (numbers[np.minimum(at, numbers.size - 1)] == winner_array)]
                        .tolist())
        else:
            found = winners & hits.title.keys()
            if hits.abstract:  # empty for a title: keyword
                found |= winners & hits.abstract.keys()
        for number in found:
            match = explained.get(number)
            if match is None:
                if not has_parts:
                    match = explained[number] = index.explain(term, hits, number)
                else:
                    match = explained[number] = index.explain_levels(term, level_scores(index, term, number), number)
            matches[number].append(match)
    if prepared.related:
        for number in [number for number, found in matches.items() if not found]:
            matches[number] = _related_matches(index, prepared, number)
    if marked is not None and marked.liked:
        for number, found in matches.items():
            why = liked_match(index, marked.liked, number)
            if why is not None:
                found.append(why)
    papers, snippet, found_papers = index.papers, index.excerpts.snippet, []
    for total, number in best:
        these = matches[number]
        if len(these) == 1:  # the usual case
            shown = these[0].terms if "abstract" in these[0].fields else ()
        else:
            shown = tuple(chain.from_iterable(match.terms for match in these if "abstract" in match.fields))
        found_papers.append(RankedPaper(papers[number], total, tuple(these), snippet(number, shown)))
    return found_papers


def _related_matches(index: PaperIndex, prepared: _Prepared, number: int) -> list[Match]:
    """Why a paper no keyword matched was included: per keyword with related evidence in
    it, strongest first, the related terms it holds (as the paper spells them)."""
    evidence = []
    for looked, (numbers, values) in zip(prepared.terms, prepared.related):
        at = np.searchsorted(numbers, number)
        if at < numbers.size and numbers[at] == number:
            evidence.append((-float(values[at]), looked[2].keyword, looked[2]))
    evidence.sort(key=lambda item: (item[0], item[1]))
    return [_related_match(index, term, number) for _, _, term in evidence]


def _related_match(index: PaperIndex, term: Term, number: int) -> Match:
    explained = index.explained(term, graded=None)
    found = explained.get(number)
    if found is None:
        shown: list[str] = []
        fields: set[str] = set()
        for unit in index.expansion(term)[0]:
            spelled = index.spell(number, unit)
            lowered = spelled.lower() if spelled else ""
            # one name per idea: "reinforcement learning" makes "Reinforcement" redundant
            if spelled and not any(lowered in s.lower() or s.lower() in lowered for s in shown):
                shown.append(spelled)
                fields.add("title" if spelled in index.papers[number].title else "abstract")
                if len(shown) == RELATED_SHOWN:
                    break
        where = tuple(name for name in ("title", "abstract") if name in fields)
        found = explained[number] = Match(term.keyword, where, tuple(shown), "related", tuple(shown))
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
