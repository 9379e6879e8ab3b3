"""What each keyword scores in each paper: worked out once per index and shared by every
subscriber who has the keyword (:mod:`flows.rank.score` adds them up per subscriber).

Per keyword, cached in ``index.term_scores`` as packed arrays (``flows.rank.bulk.pack``:
the papers it matches, ascending, and its score in each, before the subscriber's weight):

- ``term.key``: the exact-match score, per field ``weight · saturate(tf)`` (times
  PHRASE_BOOST where the field holds it as a phrase), the abstract's plus the title's;
- ``"\\x00" + term.key``: the graded score, where parts of a multi-word keyword count too
  (see :mod:`flows.rank.graded`): per field the best level, whole keyword or a part times
  its credit, with the level that won each field;
- ``"\\x01" + term.key``: the related evidence, the share of the keyword's related terms'
  weight each paper holds (see :mod:`flows.rank.related`), at least RELATED_FLOOR.

``graded_scores_packed`` and ``related_shares`` work out many keywords in one pass (numpy over
every keyword's postings laid end to end); the results are the same as one keyword at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from itertools import repeat

import numpy as np

from flows.rank.bulk import PAPER_NUMBER, best_levels, pack, unpack, weighted_shares
from flows.rank.index import PaperIndex, packed_expansion_key
from flows.rank.postings import Hits, PaperSet
from flows.rank.query import Term

SATURATION = 1.2  # k in tf·(1+k)/(tf+k): 1 mention → 1, 2 → 1.38, 3 → 1.57, never above 2.2
TITLE_WEIGHT = 3.0  # one title mention outweighs any number of abstract mentions
ABSTRACT_WEIGHT = 1.0
PHRASE_BOOST = 1.5  # phrases and acronyms are more specific than single words
RELATED_FLOOR = 0.05  # related evidence below this share is noise, and dropped

_NO_SHARE = b""  # a keyword without related terms (packed)
_NOT_GRADED = b""  # parts, none of which occurs (packed)
# In index.term_scores under "\x00" + key: a keyword without parts, whose graded scores are
# its plain scores (index.term_scores[key]), not kept twice.
_WITHOUT_PARTS = "without parts"


def term_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray]:
    """The papers the term matches and its score in each, before the subscriber's weight."""
    return unpack(plain_scores(index, term))


def plain_scores(index: PaperIndex, term: Term) -> bytes:
    """:func:`term_scores`, packed (cached per index)."""
    cached = index.term_scores.get(term.key)
    if cached is None:
        hits = index.hits(term)
        scores = _field_scores(hits.abstract, hits.abstract_phrase, ABSTRACT_WEIGHT)
        for number, score in _field_scores(hits.title, hits.title_phrase, TITLE_WEIGHT).items():
            scores[number] = scores.get(number, 0.0) + score  # abstract first, as the formula adds
        numbers = np.fromiter(scores.keys(), PAPER_NUMBER, len(scores))
        values = np.fromiter(scores.values(), np.float64, len(scores))
        cached = index.term_scores[term.key] = pack(numbers, values)
    return cached  # type: ignore[return-value]


def graded_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`term_scores` with partial credit for parts of the keyword, and whether it has
    parts (False: its scores are :func:`term_scores`')."""
    packed, has_parts = graded_scores_packed(index, [term])[0]
    return (*unpack(packed, won=has_parts), has_parts)


def graded_cached(index: PaperIndex, term: Term) -> tuple[bytes, bool] | None:
    """The keyword's graded scores if the index holds them: packed (with the winning levels
    if it has parts), and whether it has parts."""
    cached = index.term_scores.get(f"\x00{term.key}")  # never a plain key: those start with the field name or ":"
    if cached is None:
        return None
    if cached is _WITHOUT_PARTS:
        return index.term_scores[term.key], False  # type: ignore[return-value]
    return cached, True  # type: ignore[return-value]


def graded_scores_packed(index: PaperIndex, terms: Sequence[Term]) -> list[tuple[bytes, bool]]:
    """Per keyword (cached in the index): the papers it or a part of it matches, its score
    in each and, with parts, per paper which level scored each field (an int8 pair, -1 for
    none), packed (see flows.rank.bulk.pack); and whether it has parts. Per field a keyword
    scores its best level: the whole keyword (level 0) or a part (level i: the i-th of
    ``index.graded``) times its credit; then the abstract's plus the title's."""
    found: list = [None] * len(terms)
    todo: dict[str, list[int]] = {}
    scores = index.term_scores
    for n, term in enumerate(terms):
        if f"\x00{term.key}" in scores:
            found[n] = graded_cached(index, term)
        else:
            todo.setdefault(term.key, []).append(n)
    if not todo:
        return found
    firsts = [terms[numbers[0]] for numbers in todo.values()]
    with_parts: list[int] = []
    for k, (term, levels) in enumerate(zip(firsts, index.graded_many(firsts))):
        if not levels:
            _store_graded(index, term, (plain_scores(index, term), False), todo[term.key], found)
        else:
            with_parts.append(k)
    if not with_parts:
        return found
    # Every level's field counts laid end to end: per entry its keyword, field, level, paper, tf;
    # per run of entries its score table (weight · credit, times PHRASE_BOOST where the field
    # holds the level as a phrase).
    owners, fields, levels, papers, counts, scales, lengths = [], [], [], [], [], [], []
    phrased: list[tuple[int, np.ndarray, float]] = []  # runs with some entries in a phrase
    entries = 0
    for k in with_parts:
        term = firsts[k]
        hits = index.hits(term)
        every = ((None, hits), *index.graded(term))
        for f, weight in ((0, TITLE_WEIGHT), (1, ABSTRACT_WEIGHT)):
            for level, (part, level_hits) in enumerate(every):
                field_counts = level_hits.abstract if f else level_hits.title
                if not field_counts:
                    continue
                in_phrase = level_hits.abstract_phrase if f else level_hits.title_phrase
                scale = weight if part is None else weight * part.credit
                size = len(field_counts)
                if isinstance(field_counts, PaperSet):
                    papers.extend(field_counts.tolist())
                    counts.extend(repeat(1, size))
                else:  # laid end to end as Python ints, made one array below: a few per level
                    papers.extend(field_counts)
                    counts.extend(field_counts.values())
                if in_phrase and len(in_phrase) == size:
                    scale = scale * PHRASE_BOOST
                elif in_phrase:
                    mask = np.fromiter((number in in_phrase for number in field_counts), np.bool_, size)
                    phrased.append((entries, mask, scale * PHRASE_BOOST))
                owners.append(k)
                fields.append(f)
                levels.append(level)
                scales.append(scale)
                lengths.append(size)
                entries += size
    if not entries:  # parts, but neither they nor the keyword occur anywhere
        for k in with_parts:
            _store_graded(index, firsts[k], (_NOT_GRADED, True), todo[firsts[k].key], found)
        return found
    sizes = np.array(lengths, np.intp)
    tf = np.array(counts, np.intp)
    table = np.repeat(np.array(scales), sizes)
    for start, mask, boosted in phrased:
        table[start:start + mask.size][mask] = boosted
    # table · saturate(tf), as _field_scores' tables compute each (same products)
    values = table * (tf * (1 + SATURATION) / (tf + SATURATION))
    best = best_levels(len(index.papers), len(firsts), np.repeat(np.array(owners, np.intp), sizes),
                       np.repeat(np.array(fields, np.int64), sizes), np.array(papers, np.intp), values,
                       np.repeat(np.array(levels, np.int64), sizes))
    for k in with_parts:
        numbers, totals, won = best[k]
        _store_graded(index, firsts[k], (pack(numbers, totals, won), True), todo[firsts[k].key], found)
    return found


def _store_graded(index: PaperIndex, term: Term, graded: tuple[bytes, bool], positions: list[int],
                  found: list) -> None:
    index.term_scores[f"\x00{term.key}"] = graded[0] if graded[1] else _WITHOUT_PARTS  # type: ignore[assignment]
    for n in positions:
        found[n] = graded


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


def related_scores(index: PaperIndex, term: Term) -> tuple[np.ndarray, np.ndarray]:
    """The papers holding at least ``RELATED_FLOOR`` of the keyword's related-term weight,
    and that share (cached per index: subscribers share keywords, and keywords share
    their related terms, "RL" and "reinforcement learning" for one)."""
    return unpack(related_packed(index, term))


def related_packed(index: PaperIndex, term: Term) -> bytes:
    """:func:`related_scores`, packed (cached per index)."""
    key = f"\x01{term.key}"
    cached = index.term_scores.get(key)
    if cached is None:
        cached = index.term_scores[key] = related_shares(index, [term])[0]
    return cached  # type: ignore[return-value]


def related_shares(index: PaperIndex, terms: Sequence[Term]) -> list[bytes]:
    """:func:`related_scores` of several keywords, packed, worked out together (not cached
    here)."""
    found: list = [None] * len(terms)
    todo: dict[bytes, list[int]] = {}
    expansions = {}
    for n, term in enumerate(terms):
        expansion = index.packed_expansion(term)
        if not expansion:
            found[n] = _NO_SHARE
            continue
        shared = packed_expansion_key(expansion)
        cached = index.expansion_scores.get(shared)
        if cached is not None:
            found[n] = cached
        else:
            todo.setdefault(shared, []).append(n)
            expansions[shared] = expansion
    if todo:
        indptr, papers, weights = index.unit_postings
        keys = list(todo)
        shares = weighted_shares(indptr, papers, weights, len(index.papers), [unpack(expansions[k]) for k in keys],
                                 RELATED_FLOOR)
        for shared, (numbers, values) in zip(keys, shares):
            share = index.expansion_scores[shared] = pack(numbers, values)
            for n in todo[shared]:
                found[n] = share
    return found
