"""Scoring a subscriber's query against the index; trending papers.

Every subscriber passes through :func:`rank`, so the work per subscriber is a few numpy
operations on one vector of the day's papers, and Python only for the handful of papers
near the cut. Whatever depends on a keyword alone (its postings, its score per paper, why
it matched a paper, the snippet around it) is worked out once per index, the first time a
subscriber needs it, and shared with every later one: the scores in
:mod:`flows.rank.keyword_scores`, what matched in :class:`flows.rank.index.PaperIndex`.

Vector layout: per keyword, two aligned arrays, the numbers of the papers it matches
(int32) and its weighted score in each (float64), kept sparse because a day holds tens of
thousands of distinct keywords, and packed in one bytes object per keyword
(``flows.rank.bulk.pack``; read back as arrays where a subscriber's ranking uses them).
Per subscriber, one dense float64 vector indexed by paper number holds the relevance,
summed term by term in query order from 0.0 as the plain formula adds them (so the sums
are bit for bit the same). Every term's score is positive,
so 0.0 means that no keyword matched; excluded and delivered papers are reset to 0.0.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import TYPE_CHECKING

import numpy as np

from flows.models import Match, Paper, RankedPaper
from flows.rank.feedback import DISLIKED_WEIGHT, LIKED_WEIGHT, Feedback, best_likeness, liked_match
from flows.rank.bulk import PAPER_NUMBER, pack, unpack, unpack_numbers, unpack_won, won_at
from flows.rank.index import PaperIndex
from flows.rank.keyword_scores import (graded_cached, graded_scores_packed, plain_scores, related_packed, related_shares,
                                       term_scores)
from flows.rank.postings import Hits
from flows.rank.query import Query, QueryError, Term, parse_query
from flows.rank.text import holds_name

if TYPE_CHECKING:
    from flows.subscribers import Subscriber

POPULARITY_SCALE = 0.25  # times Subscriber.popularity times ln(1 + upvotes)
MIN_SCORE = 0.5
# Keyword lists whose lookups an index keeps before it forgets them, and the per-keyword work
# of graded phrases and related papers that none of those lists used (see
# PaperIndex.forget_rankings): with thousands of distinct keywords that work outgrew the index
# itself. Keeping what the latest lists used, 2,500 lists cost less CPU than forgetting
# everything every 5,000 did, and less memory.
QUERIES_KEPT = 2500
# Of those lists, the latest LISTS_KEPT keep their own lookup (PaperIndex.queries), for a list
# that comes again: subscribers rarely share a whole list (in make bench none do), and 2,500 of
# them held ≈ 4.5 MB. Their keywords' work is kept as above.
LISTS_KEPT = 500
PREPARED_TOGETHER = 250  # subscribers whose new keywords rank_many works out in one pass (see prepare)
# Related papers (see flows.rank.related): a keyword's related evidence r in a paper is the
# share of its related terms' weight the paper holds (0 to 1); it adds RELATED_WEIGHT · r ·
# the keyword's weight to the score. A paper that no keyword matches enters only if that
# sum reaches the subscriber's threshold: "near" (calibrated for precision) or "far".
RELATED_WEIGHT = 8.0
# A paper no keyword matches exactly enters on its partial matches (graded phrases) if
# they score PARTIAL_MIN, else on partial and related evidence together if that reaches
# the subscriber's level's threshold.
PARTIAL_MIN = 3.0
NON_EXACT_THRESHOLDS = {"near": 3.5, "far": 2.0, "off": float("inf")}
# Where related evidence is at hand, a paper a keyword matches exactly needs at least the
# "far" threshold too: a keyword named once, in passing, in an abstract whose words are
# otherwise unrelated to it (one mention of a phrase scores 1.5) is not enough on its own.
PASSING_MIN = NON_EXACT_THRESHOLDS["far"]
RELATED_SHOWN = 3  # related terms named per keyword in an explanation
RELATED_LEVELS = ("off", "near", "far")
# Scores compare rounded to 6 decimals; an unrounded total this far below another's can
# still round to the same or a higher value, so candidates within it are kept.
_ROUNDING_SLACK = 2e-6

# Per term of a query: the papers it matches and its scores there times its weight, with
# parts also per paper the levels that scored it (packed in one bytes object, ascending paper
# numbers: see flows.rank.bulk.pack; _arrays reads them), the term, its hits, its
# explanations so far, whether graded phrases gave it parts (False: exact matching, where
# the hits say which papers matched), and with parts the papers the whole keyword matches
# (int32 bytes: its exact matches, in no particular order, some maybe twice; None: the
# packed papers). Thousands of keywords keep theirs for the run: bytes, not small arrays.
_Looked = tuple[bytes, Term, Hits, dict[int, Match], bool, bytes | None]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A query looked up in one index: each term's scores, and the papers excluded."""

    terms: tuple[_Looked, ...]
    excluded: np.ndarray  # paper numbers (intp)
    # Per term, its related evidence: (papers, r) packed (see flows.rank.bulk.pack) and
    # RELATED_WEIGHT · weight, their factor; empty without related papers.
    related: tuple[tuple[bytes, float], ...] = ()
    # With graded phrases or related papers: per paper, whether some keyword matches it
    # exactly (it enters at MIN_SCORE; the others need the threshold of the subscriber's
    # level), as bits (np.packbits).
    exact: np.ndarray | None = None
    # What the relevance adds up, per concept of the list (see _same_concept): (papers,
    # weighted scores), and the related evidence as (papers, values, 1.0); None: per term,
    # the terms' own arrays (no two keywords of the list name one concept).
    scored: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None
    related_scored: tuple[tuple[np.ndarray, np.ndarray, float], ...] | None = None


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
    key = _list_key(index, subscriber, graded, level)
    prepared = index.queries.get(key)
    if prepared is None:  # many subscribers share a keyword list: parse and look it up once
        if index.lists_looked_up >= QUERIES_KEPT:
            index.forget_rankings()
        elif len(index.queries) >= LISTS_KEPT:
            index.queries.clear()
        prepared = index.queries[key] = _prepare(index, parse_query(*key[:2]), *key[2:])
        index.lists_looked_up += 1
    limit = subscriber.max_papers if limit is None else limit
    if limit <= 0 or not prepared.terms:
        return []
    arrays = [_arrays(looked) for looked in prepared.terms]
    relevance = _relevance(len(index.papers), prepared.scored or arrays)
    marked = _Marked.of(index, feedback)
    if prepared.exact is not None or marked:
        relevance = _tiered(relevance, prepared, level, index, marked, min_score)
    _drop_excluded(index, relevance, prepared.excluded, exclude_ids)
    best = _best(index, relevance, subscriber.popularity * POPULARITY_SCALE, min_score, limit)
    return _ranked(index, prepared, arrays, best, marked)


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
    subscribers = list(subscribers)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        found = {}
        for start in range(0, len(subscribers), PREPARED_TOGETHER):
            batch = subscribers[start:start + PREPARED_TOGETHER]
            prepare(index, batch, graded=graded, related=related)
            for reader in batch:
                found[reader.email] = rank(index, reader, exclude_ids=delivered.get(reader.email, ()), limit=limit,
                                           graded=graded, related=related, feedback=feedback.get(reader.email, ()))
        return found
    finally:
        if was_enabled:
            gc.enable()


def prepare(index: PaperIndex, subscribers: Iterable[Subscriber], *, graded: bool = True,
            related: str | None = None) -> None:
    """Work out together what ranking these subscribers will need of their keywords (graded
    scores, related evidence) that the index does not hold yet: the same results as
    :func:`rank` works out one keyword at a time, at a fraction of the cost. Optional: call
    it with each batch before ranking it. Keyword lists that do not parse are left to
    :func:`rank` (which raises for them)."""
    subscribers = list(subscribers)
    if index.lists_looked_up + len(subscribers) > QUERIES_KEPT:
        index.forget_rankings()
    wanted_graded: dict[str, Term] = {}
    wanted_related: dict[str, Term] = {}
    scores = index.term_scores
    for subscriber in subscribers:
        level = related if related is not None else getattr(subscriber, "related", "near")
        key = _list_key(index, subscriber, graded, level)
        if key in index.queries:
            continue
        _, _, _, use_related, neighbours = key
        try:
            query = parse_query(*key[:2])
        except QueryError:
            continue
        for term in _for_level(index, query, neighbours).terms:
            if graded and f"\x00{term.key}" not in scores:
                wanted_graded.setdefault(term.key, term)
            if use_related and f"\x01{term.key}" not in scores:
                wanted_related.setdefault(term.key, term)
    if wanted_graded:
        graded_scores_packed(index, list(wanted_graded.values()))
    if wanted_related:
        terms = list(wanted_related.values())
        for term, share in zip(terms, related_shares(index, terms)):
            scores[f"\x01{term.key}"] = share


def _list_key(index: PaperIndex, subscriber: Subscriber, graded: bool,
              level: str) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool, bool]:
    """What decides a keyword list's lookups in ``index.queries``: the keywords, the
    exclusions, graded phrases, related evidence (a level other than off, and a related
    model) and the thesaurus's neighbours (a level other than off)."""
    return (tuple(subscriber.keywords), tuple(subscriber.exclude), graded,
            level != "off" and index.related is not None, level != "off")


def _read_only(array: np.ndarray) -> np.ndarray:
    """The array, locked: the caches on the index are shared by every subscriber."""
    array.flags.writeable = False
    return array


def _prepare(index: PaperIndex, query: Query, graded: bool, use_related: bool, neighbours: bool) -> _Prepared:
    query = _for_level(index, query, neighbours)
    excluded: set[int] = set()
    for term in query.exclusions:  # exclusions stay exact: only the whole keyword excludes
        hits = index.hits(term)
        excluded.update(hits.title, hits.abstract)
    index.mark_used([term.key for term in query.terms])  # their per-keyword work outlives a forget
    looked = tuple([_look_up(index, term, graded) for term in query.terms])
    related = tuple([_weighted_related(index, term) for term in query.terms]) if use_related else ()
    if related and not any(packed for packed, _ in related):
        related = ()
    exact = None
    if (graded or related) and looked:
        exact = np.zeros(len(index.papers), np.bool_)  # packed: 1 bit a paper, whatever the keywords
        matched = [unpack_numbers(entry[0]) if entry[5] is None else np.frombuffer(entry[5], PAPER_NUMBER)
                   for entry in looked]
        exact[matched[0] if len(matched) == 1 else np.concatenate(matched)] = True
        exact = np.packbits(exact)
    scored = related_scored = None
    concepts = _same_concept(index, query.terms)
    if concepts is not None:
        arrays = [_arrays(entry) for entry in looked]
        scored = tuple([_best_of([arrays[n][0] for n in members], [arrays[n][1] for n in members])
                        for members in concepts])
        if related:
            shares = [unpack(packed) for packed, _ in related]
            related_scored = tuple([(*_best_of([shares[n][0] for n in members],
                                               [related[n][1] * shares[n][1] for n in members]), 1.0)
                                    for members in concepts])
    return _Prepared(looked, np.fromiter(sorted(excluded), np.intp, len(excluded)), related, exact,
                     scored, related_scored)


def _same_concept(index: PaperIndex, terms: Sequence[Term]) -> list[list[int]] | None:
    """The list's keywords grouped by concept, in the order of each group's first keyword;
    None if every keyword is a concept of its own (the usual case). Keywords restricted to
    the same field whose spellings overlap (an acronym and its long form, "MoE" and
    "mixture of experts"), directly or through another keyword of the list, name one
    concept. A paper that writes it, in either form, counts once: as the best-scoring
    keyword of the group, not the sum (which counted one "mixture of experts (MoE)" twice)."""
    if len(terms) < 2:
        return None
    first = list(range(len(terms)))  # per keyword, the first keyword of its concept
    owner: dict[tuple, int] = {}
    joined = False
    for n, term in enumerate(terms):
        for spelling in index.variants(term.words):
            m = owner.setdefault((term.field, spelling), n)
            if first[m] != first[n]:
                low, high = sorted((first[m], first[n]))
                first = [low if f == high else f for f in first]
                joined = True
    if not joined:
        return None
    groups: dict[int, list[int]] = {}
    for n, f in enumerate(first):
        groups.setdefault(f, []).append(n)
    return [groups[f] for f in sorted(groups)]


def _best_of(numbers: list[np.ndarray], values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Aligned (papers, values) arrays merged: each paper once, with its highest value."""
    if len(numbers) == 1:
        return numbers[0], values[0]
    papers = np.concatenate(numbers)
    merged = np.concatenate(values)
    order = np.lexsort((-merged, papers))  # by paper, the highest value first
    papers, merged = papers[order], merged[order]
    first = np.ones(papers.size, np.bool_)
    first[1:] = papers[1:] != papers[:-1]
    return _read_only(papers[first]), _read_only(merged[first])


def _for_level(index: PaperIndex, query: Query, neighbours: bool) -> Query:
    """The query's terms as the subscriber's level has them: with related papers off, the
    thesaurus's neighbours do not count either (they are related terms too; they need no
    related model: they count from the first day). A keyword of the list that is another's
    neighbour is scored as a keyword, not again as that one's neighbour."""
    if not neighbours:
        return Query(tuple([term.without_neighbours() for term in query.terms]), query.exclusions)
    if len(query.terms) < 2:
        return query
    terms = list(query.terms)
    for n, term in enumerate(query.terms):
        labels = index.neighbour_variants(term)
        if not labels:
            continue
        besides = tuple(dict.fromkeys(other.words for m, other in enumerate(query.terms) if m != n
                                      and other.words != term.words
                                      and not labels.isdisjoint(index.variants(other.words))))
        if besides:
            terms[n] = term.besides_keywords(besides)
    return Query(tuple(terms), query.exclusions)


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
    """Add the related evidence; keep the papers a keyword matches exactly (with related
    evidence at hand: if they reach PASSING_MIN with it), those whose partial matches
    reach PARTIAL_MIN, and those whose partial and related evidence (and
    likeness to liked papers) together reach the level's threshold. Likeness to disliked
    papers then lowers a kept paper's score, never below the minimum: not an exclusion."""
    keep = relevance >= PARTIAL_MIN
    if prepared.exact is not None:
        exact = np.unpackbits(prepared.exact, count=relevance.size).view(np.bool_)
    else:
        exact = _exact_matches(index, prepared)
    threshold = NON_EXACT_THRESHOLDS[level]
    if prepared.related:
        evidence = prepared.related_scored or [(*unpack(packed), factor) for packed, factor in prepared.related]
        relevance = relevance + _related_evidence(relevance.size, evidence)
        keep |= exact & (relevance >= PASSING_MIN)
    else:
        keep |= exact
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
        exact[term_scores(index, looked[1])[0]] = True
    return exact


def _weighted_related(index: PaperIndex, term: Term) -> tuple[bytes, float]:
    """The keyword's related shares (packed, cached per index) and their factor,
    RELATED_WEIGHT · weight: multiplied where they are used, not kept as one more array per
    keyword."""
    return related_packed(index, term), RELATED_WEIGHT * term.weight


def _related_evidence(size: int, related: tuple[tuple[np.ndarray, np.ndarray, float], ...]) -> np.ndarray:
    """Paper number → Σ over keywords of RELATED_WEIGHT · weight · related share (each
    product rounded as factor · share, then added in the order of the keywords)."""
    numbers = np.concatenate([entry[0] for entry in related])
    shares = np.concatenate([entry[1] for entry in related])
    factors = [entry[2] for entry in related]
    if factors.count(factors[0]) == len(factors):
        values = factors[0] * shares
    else:
        values = np.repeat(np.array(factors), [entry[0].size for entry in related]) * shares
    return np.bincount(numbers, values, size)


def _look_up(index: PaperIndex, term: Term, graded: bool) -> _Looked:
    key = (term.keyword, term.key, term.weight) if not graded else (term.keyword, f"\x00{term.key}", term.weight)
    found = index.looked_up.get(key)
    if found is None:
        if graded:
            packed, has_parts = graded_cached(index, term) or graded_scores_packed(index, [term])[0]
        else:
            packed, has_parts = plain_scores(index, term), False
        if term.weight != 1:  # elementwise, each product rounded as the same product of Python floats
            numbers, scores = unpack(packed, won=has_parts)
            packed = pack(numbers, term.weight * scores, unpack_won(packed) if has_parts else None)
        explained = index.explained(term, graded=has_parts)
        hits = index.hits(term)
        matched = _exact_papers(hits).tobytes() if has_parts else None
        found = (packed, term, hits, explained, has_parts, matched)
        index.looked_up[key] = found
    return found


def _arrays(looked: _Looked) -> tuple[np.ndarray, np.ndarray]:
    """A looked-up term's papers and weighted scores (read-only views of its packed bytes)."""
    return unpack(looked[0], won=looked[4])


def _exact_papers(hits: Hits) -> np.ndarray:
    """The papers the whole keyword matches, in no particular order and some maybe twice
    (for the exact-match bits): :func:`term_scores`' papers without working out, and keeping
    for the rest of the run, its scores, which ranking with graded phrases never reads."""
    abstract, title = hits.abstract, hits.title
    if not title:
        return np.fromiter(abstract, PAPER_NUMBER, len(abstract))
    return np.fromiter(chain(abstract, title), PAPER_NUMBER, len(abstract) + len(title))


def _relevance(size: int, terms: Sequence[tuple]) -> np.ndarray:
    """Paper number → Σ weight · term score, added in the order of the terms (or of the
    list's concepts: their (papers, scores) arrays come first too); 0.0 if none matched."""
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


def _ranked(index: PaperIndex, prepared: _Prepared, arrays: list[tuple[np.ndarray, np.ndarray]],
            best: list[tuple[float, int]], marked: _Marked | None = None) -> list[RankedPaper]:
    """The best papers with their explanations (worked out once per keyword and paper) and
    snippets; ``arrays``: per term, its papers and scores (see _arrays)."""
    terms = prepared.terms
    matches: dict[int, list[Match]] = {number: [] for _, number in best}
    # Which keyword matches which winner, for all keywords at once: every keyword's papers
    # laid end to end (query order, each ascending), looked up in a mark per paper. Entries
    # come out by keyword, then paper, so each paper's matches keep the query's order. A
    # keyword's papers are where it, or a part of it, scored: the papers its hits name.
    if len(terms) == 1:
        numbers = arrays[0][0]
    else:
        numbers = np.concatenate([papers for papers, _ in arrays])
    marked_papers = np.zeros(len(index.papers), np.bool_)
    marked_papers[list(matches)] = True
    entries = np.flatnonzero(marked_papers[numbers])
    if entries.size:
        starts = list(accumulate([papers.size for papers, _ in arrays], initial=0))  # few: in Python
        owners = np.searchsorted(np.array(starts[1:]), entries, side="right")
        positions = entries - np.array(starts[:-1])[owners]
        shared = index.paper_numbers
        for owner, number, position in zip(owners.tolist(), numbers[entries].tolist(), positions.tolist()):
            looked = terms[owner]
            explained = looked[3]
            match = explained.get(number)
            if match is None:
                if looked[4]:  # with parts: the levels that won each field when it was scored
                    match = index.explain_won(looked[1], looked[2], *won_at(looked[0], position), number)
                else:
                    match = index.explain(looked[1], looked[2], number)
                explained[shared[number]] = match
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
    for looked, (packed, factor) in zip(prepared.terms, prepared.related):
        numbers, shares = unpack(packed)
        at = np.searchsorted(numbers, number)
        if at < numbers.size and numbers[at] == number:
            evidence.append((-(factor * float(shares[at])), looked[1].keyword, looked[1]))
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
            # one name per idea: "reinforcement learning" makes "Reinforcement" redundant
            if spelled and not any(holds_name(spelled, s) or holds_name(s, spelled) for s in shown):
                shown.append(spelled)
                fields.add("title" if spelled in index.papers[number].title else "abstract")
                if len(shown) == RELATED_SHOWN:
                    break
        where = tuple(name for name in ("title", "abstract") if name in fields)
        found = explained[index.paper_numbers[number]] = Match(term.keyword, where, tuple(shown), "related", tuple(shown))
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
