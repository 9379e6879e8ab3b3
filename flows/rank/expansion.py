"""A keyword's related terms and the papers' vectors they are compared with.

Takes the related model learned from the stored corpus (``flows.rank.related``) and the
day's postings (``flows.rank.postings``); gives a keyword's expansion (its related units,
strongest first, and their weights as a unit-length vector), each paper's vector length
over the model's units, and per unit the papers holding it with its weight in each. The
ranking index (``flows.rank.index.PaperIndex``) caches what these return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from flows.rank.bulk import PAPER_NUMBER
from flows.rank.postings import EMPTY, FieldIndex
from flows.rank.related import EXPANSION, TITLE_BOOST, RelatedModel, stop_stems

# A keyword's related units and their weights (see PaperIndex.expansion).
Expansion = tuple[np.ndarray, np.ndarray]  # unit numbers (int32), weights
NO_EXPANSION: Expansion = (np.zeros(0, np.int32), np.zeros(0))
RELIABLE_DF = 10  # a unit taught by this many papers counts half as a source of related terms


def expand(model: RelatedModel | None, variants: Sequence[tuple[str, ...]],
           unit_stems: Callable[[], list[tuple[str, ...]]]) -> Expansion:
    """A keyword's related units (the model's unit numbers, int32) and their weights: its
    units' associations in the model, mixed by each unit's idf, less any unit that shares
    a stem with one of the keyword's ``variants`` (its stem sequences). ``unit_stems``
    gives each unit's stems (asked for only when several units are mixed)."""
    if model is None or not model.documents:
        return NO_EXPANSION
    own = {stem for variant in variants for stem in variant}
    sources: dict[str, float] = {}
    for variant in _taught(model, variants):
        units = [" ".join(variant)] if len(variant) <= 2 else [
            f"{a} {b}" for a, b in zip(variant, variant[1:])]
        for unit in units:
            if model.document_frequency(unit):
                sources[unit] = max(sources.get(unit, 0.0), source_weight(model, unit))
    if not sources:  # no pair known: fall back on the content words themselves
        for variant in _taught(model, variants):
            for unit in variant:
                if model.document_frequency(unit):
                    sources[unit] = max(sources.get(unit, 0.0), source_weight(model, unit))
    if len(sources) == 1:
        (unit,) = sources
        number = model.ids[unit]
        start, end = int(model.indptr[number]), int(model.indptr[number + 1])
        mine = unit.split(" ")
        if all(stem in mine or stem not in model.ids for stem in own):
            # One unit's centroid, strongest first: no neighbour shares a stem with the
            # unit (learning kept none), nor with another spelling of the keyword (no
            # unit holds a stem the model does not know as a unit: a pair's stems are
            # units too). So its first EXPANSION neighbours, weighted as they are (its
            # share, w / w, is exactly 1).
            end = min(end, start + EXPANSION)
            if end <= start:
                return NO_EXPANSION
            weights = model.weights[start:end].astype(np.float64)
            weights /= unit_length(weights)
            weights.flags.writeable = False
            return read_only_ids(model.indices[start:end]), weights
    stems = unit_stems()
    mixed: dict[int, float] = {}
    total = sum(sources.values())
    for unit, weight in sources.items():
        number = model.ids[unit]
        start, end = model.indptr[number], model.indptr[number + 1]
        share = weight / total
        for neighbour, strength in zip(model.indices[start:end].tolist(), model.weights[start:end].tolist()):
            if own.isdisjoint(stems[neighbour]):
                mixed[neighbour] = mixed.get(neighbour, 0.0) + share * strength
    if len(sources) == 1:  # one unit's centroid: strongest first already
        best = list(mixed.items())[:EXPANSION]
    else:
        items = mixed.items()
        if len(mixed) > EXPANSION:  # only units weighing at least the EXPANSION-th weight can be among the first
            least = sorted(mixed.values(), reverse=True)[EXPANSION - 1]
            items = [item for item in items if item[1] >= least]
        best = sorted(items, key=lambda item: (-item[1], model.units[item[0]]))[:EXPANSION]
    if not best:
        return NO_EXPANSION
    weights = np.array([weight for _, weight in best])
    weights /= unit_length(weights)
    weights.flags.writeable = False
    return read_only_ids(np.array([number for number, _ in best], np.int32)), weights


def build_unit_postings(model: RelatedModel, fields: tuple[FieldIndex, FieldIndex],
                  norms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit of the related model (CSR by unit number): the papers holding it,
    ascending, and its weight in each paper's vector (idf, more in the title, over the
    paper's vector length ``norms``). The papers are int32 (``PAPER_NUMBER``): kept for the
    whole run in every render process, and every use (indexing, bincount, concatenating)
    gives the same results as with intp."""
    ids, df, documents = model.ids, model.df, model.documents
    titles, abstracts = fields
    rows: dict[int, tuple[list[int], dict[int, int]]] = {}
    for postings in ((titles.words, abstracts.words), (titles.pairs, abstracts.pairs)):
        for key in postings[0].keys() | postings[1].keys():
            number = ids.get(key if isinstance(key, str) else f"{key[0]} {key[1]}")
            if number is not None:
                in_title = postings[0].get(key, EMPTY)
                rows[number] = (sorted(in_title.keys() | postings[1].get(key, EMPTY).keys()), in_title)
    lengths = np.zeros(len(model.units) + 1, np.int64)
    papers: list[int] = []
    boosts: list[float] = []
    idf = np.zeros(len(model.units))
    for number in sorted(rows):
        numbers, in_title = rows[number]
        lengths[number + 1] = len(numbers)
        papers.extend(numbers)
        boosts.extend([TITLE_BOOST if n in in_title else 1.0 for n in numbers])
        idf[number] = math.log((documents + 1) / (int(df[number]) + 0.5))  # as RelatedModel.idf
    indptr = np.cumsum(lengths)
    found = np.array(papers, PAPER_NUMBER)
    # idf · boost / norm, entry by entry as unit_papers computed it for one unit
    weights = np.repeat(idf, np.diff(indptr)) * np.array(boosts) / norms[found]
    for array in (indptr, found, weights):
        array.flags.writeable = False
    return indptr, found, weights


def build_paper_norms(model: RelatedModel, fields: tuple[FieldIndex, FieldIndex], count: int) -> np.ndarray:
    """Per paper (``count`` of them), the length of its vector over the model's units."""
    ids, df, documents = model.ids, model.df, model.documents
    squares = np.zeros(count)
    titles, abstracts = fields
    for postings in ((titles.words, abstracts.words), (titles.pairs, abstracts.pairs)):
        for key in sorted(postings[0].keys() | postings[1].keys()):  # an order no hash seed changes
            unit = key if isinstance(key, str) else f"{key[0]} {key[1]}"
            number = ids.get(unit)
            if number is None:
                continue
            idf = math.log((documents + 1) / (df[number] + 0.5))
            in_title = postings[0].get(key, EMPTY)
            if in_title:
                squares[list(in_title)] += (idf * TITLE_BOOST) ** 2
            rest = [n for n in postings[1].get(key, EMPTY) if n not in in_title]
            if rest:
                squares[rest] += idf * idf
    norms = np.sqrt(squares)
    norms[norms == 0.0] = 1.0
    return norms


def _taught(model: RelatedModel, variants: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The spellings of a keyword whose every content word the model learned from: one with
    a word too few stored papers use ("diffusion" of `diffusion models` in a corpus with two
    diffusion papers) would be related through its common words alone ("models": what the
    whole corpus says), which names a broader subject than the keyword's, not its own."""
    stop = stop_stems()
    return [variant for variant in variants
            if all(model.document_frequency(stem) for stem in variant
                   if stem not in stop and len(stem) >= 2 and not stem.isdigit())]


def source_weight(model: RelatedModel, unit: str) -> float:
    """How much a unit's associations count in a keyword's related terms: its specificity
    (idf), discounted where few papers taught them (RELIABLE_DF papers count half)."""
    df = model.document_frequency(unit) or 0
    return model.idf(unit) * df / (df + RELIABLE_DF)


def unit_length(weights: np.ndarray) -> float:
    """The vector's Euclidean length, the same wherever the array sits in memory (a BLAS dot
    product's rounding depends on the array's alignment: the same keyword could get weights
    a last bit apart from one run to the next)."""
    return math.sqrt(math.fsum((weights * weights).tolist()))


def read_only_ids(numbers: np.ndarray) -> np.ndarray:
    numbers = numbers.astype(np.int32)  # a copy: never a view that keeps the model's array alive
    numbers.flags.writeable = False
    return numbers
