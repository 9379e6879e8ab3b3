"""Related terms, learned from the stored corpus: what else papers on a keyword's subject say.

A researcher following ``deep reinforcement learning`` also wants the paper that only
says "policy gradient", "reward shaping" and "actor-critic". Keywords alone never find
it; the corpus can. :func:`learn_related` reads every stored paper's title and abstract
once and learns, for each *unit* (a word stem, or two adjacent stems within a clause)
used by at least ``MIN_DF`` papers, what papers using it say (pseudo-relevance feedback
over the whole corpus):

- each paper is a vector over the kept units it holds, each weighted by its idf (a unit
  in the title ``TITLE_BOOST`` times more), scaled to unit length;
- a unit's related units are the centroid of the papers that hold it (at most
  ``MAX_SOURCE_PAPERS`` of them, those with the unit in the title first and counting
  ``TITLE_SEED`` times), cut to its ``NEIGHBOURS`` heaviest other units, never one that
  shares a stem with it, and scaled to unit length.

Nothing is downloaded: the model is a few numpy arrays (CSR over unit numbers), stored in
SQLite by the store and learned again when the corpus has changed (or when it was stored
in another ``FORMAT``). With fewer than ``MIN_PAPERS`` papers it relates nothing.

At ranking time (see ``flows.rank.expansion`` and ``flows.rank.score``) a keyword's
related terms are its units' centroids, mixed by each unit's specificity (idf) and cut to
``EXPANSION``; a paper's related evidence for the keyword is the cosine between those and
the paper's own vector (0 to 1).
"""

from __future__ import annotations

import io
import math
import zipfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from flows.rank.text import stems

# Version of the stored model: it names units by the stems of flows.rank.text, so a model
# stored by a version that stemmed otherwise (format 1: before British spellings folded)
# is learned again rather than used.
FORMAT = 2
MIN_DF = 3  # a unit needs this many papers to be learned from or related to
MIN_PAPERS = 50  # fewer stored papers teach nothing reliable: the model then relates nothing
NEIGHBOURS = 40  # related units kept per unit
MAX_SOURCE_PAPERS = 100  # papers a unit's centroid is read from (title mentions first)
TITLE_BOOST = 1.5  # a unit in a paper's title weighs this much more in the paper's vector
TITLE_SEED = 3.0  # a paper with the unit in its title counts this much more in the centroid
EXPANSION = 20  # related units used per keyword

# Function words and the boilerplate of abstracts: they follow every subject alike.
STOPWORDS = frozenset(
    """a about above across after again against all almost along also although always am among an and another
    any are around as at be because been before being below between both but by can cannot could did do does
    doing done down during each either else et etc even ever every few for from further had has have having
    here how however i if in into is it its itself just less let like may might more most much must my neither
    no nor not now of off often on once one only onto or other others otherwise our ours out over own per
    rather same several shall she should since so some such than that the their theirs them themselves then
    there thereby therefore these they this those though through thus to together too toward towards under
    unless until up upon us very via was we well were what whatever when where whereas whether which while who
    whom whose why will with within without would yet you your
    paper propose proposed present show shows shown demonstrate result results approach method methods new
    novel based using use used via work existing extensive experiments experiment experimental state art
    significantly significant furthermore moreover specifically respectively finally first second third
    recent recently including include includes well achieve achieves achieved performance outperforms
    """.split()
)
_STOP_STEMS: frozenset[str] | None = None


def stop_stems() -> frozenset[str]:
    global _STOP_STEMS
    if _STOP_STEMS is None:
        _STOP_STEMS = frozenset(s for word in STOPWORDS for s in stems(word) if s)
    return _STOP_STEMS


def units_of(text: str) -> set[str]:
    """The units of one text: its content stems and its adjacent pairs of them ("reinforc learn")."""
    return units_of_stems(stems(text))


def units_of_stems(sequence: Iterable[str | None]) -> set[str]:
    """:func:`units_of` a text already cut into stems (None where a clause breaks)."""
    stop = stop_stems()
    found: set[str] = set()
    previous: str | None = None
    for stem in sequence:
        if stem is None or stem in stop or len(stem) < 2 or stem.isdigit():
            previous = None
            continue
        found.add(stem)
        if previous is not None:
            found.add(f"{previous} {stem}")
        previous = stem
    return found


_STORED = ("format", "units", "df", "documents", "indptr", "indices", "weights")  # the arrays of to_bytes


@dataclass(frozen=True, eq=False)
class RelatedModel:
    """Per unit, the units related to it, strongest first (CSR arrays over unit numbers)."""

    units: tuple[str, ...]  # unit number → unit ("polici", "polici gradient")
    df: np.ndarray  # unit number → papers holding it (int32)
    documents: int  # papers learned from
    indptr: np.ndarray  # unit number → its associations in indices/weights[indptr[n]:indptr[n+1]]
    indices: np.ndarray  # associated unit numbers (int32)
    weights: np.ndarray  # their weights (float32), summing to 1 per unit
    ids: dict[str, int] = field(default_factory=dict, repr=False)
    seconds: float = 0.0  # how long learning took

    def __post_init__(self) -> None:
        if not self.ids:
            self.ids.update((unit, number) for number, unit in enumerate(self.units))

    def __len__(self) -> int:
        return len(self.units)

    def __reduce__(self):  # shipped to other processes without the lookup dict (rebuilt there)
        return (type(self), (self.units, self.df, self.documents, self.indptr, self.indices, self.weights,
                             {}, self.seconds))

    def __repr__(self) -> str:
        return f"<RelatedModel of {len(self.units)} units from {self.documents} papers>"

    def neighbours(self, unit: str) -> list[tuple[str, float]]:
        """The units related to ``unit``, strongest first, with their weights."""
        number = self.ids.get(unit)
        if number is None:
            return []
        start, end = self.indptr[number], self.indptr[number + 1]
        return [(self.units[i], float(w)) for i, w in zip(self.indices[start:end].tolist(),
                                                           self.weights[start:end].tolist())]

    def document_frequency(self, unit: str) -> int | None:
        number = self.ids.get(unit)
        return None if number is None else int(self.df[number])

    def idf(self, unit: str) -> float:
        df = self.document_frequency(unit) or 0
        return math.log((self.documents + 1) / (df + 0.5))

    # -- storage ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as one compressed blob (numpy's npz), for the store."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, format=np.array(FORMAT), units=np.array("\n".join(self.units)), df=self.df,
            documents=np.array(self.documents),
            indptr=self.indptr, indices=self.indices, weights=self.weights,
        )
        return buffer.getvalue()

    @classmethod
    def readable(cls, blob: bytes) -> bool:
        """Whether :meth:`from_bytes` reads ``blob``: this format, every array present and
        its checksum right (checked a chunk at a time), without building the model."""
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                names = set(archive.namelist())
                if not {f"{name}.npy" for name in _STORED} <= names or archive.testzip() is not None:
                    return False
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                return int(data["format"]) == FORMAT
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):
            return False

    @classmethod
    def from_bytes(cls, blob: bytes) -> "RelatedModel":
        """The model stored by :meth:`to_bytes`; ValueError for one of another format."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            if "format" not in data.files or int(data["format"]) != FORMAT:
                raise ValueError("a related-terms model of another format: learn it again")
            text = str(data["units"])
            return cls(
                units=tuple(text.split("\n")) if text else (), df=data["df"], documents=int(data["documents"]),
                indptr=data["indptr"], indices=data["indices"], weights=data["weights"],
            )


def learn_related(texts: Iterable[tuple[str, str]]) -> RelatedModel:
    """Learn each unit's related units from papers' (title, abstract) pairs."""
    started = time.perf_counter()
    vocabulary: dict[str, int] = {}
    documents: list[np.ndarray] = []
    in_title: list[np.ndarray] = []
    for title, abstract in texts:
        heading = units_of(title)
        found = heading | units_of(abstract)
        ordered = sorted(found)  # units numbered in an order that no hash seed changes
        documents.append(np.fromiter((vocabulary.setdefault(u, len(vocabulary)) for u in ordered), np.int32,
                                     len(ordered)))
        in_title.append(np.fromiter((u in heading for u in ordered), np.bool_, len(ordered)))
    n = len(documents)
    if not n:
        return _empty(time.perf_counter() - started)
    # Memory matters here (50,000 papers are millions of entries): 32-bit arrays, and each
    # intermediate dropped as soon as the next is made.
    lengths = np.fromiter(map(len, documents), np.int64, n)
    flat = np.concatenate(documents)
    titled = np.concatenate(in_title)
    del documents, in_title
    df_all = np.bincount(flat, minlength=len(vocabulary))
    # Keep the units enough papers use; renumber them densely.
    kept = np.flatnonzero(df_all >= MIN_DF)
    renumber = np.full(len(vocabulary), -1, np.int32)
    renumber[kept] = np.arange(len(kept), dtype=np.int32)
    named: list[str] = [""] * len(kept)
    for unit, number in vocabulary.items():
        if (new := renumber[number]) >= 0:
            named[new] = unit
    del vocabulary
    units = tuple(named)
    df = df_all[kept].astype(np.int32)
    del df_all, kept
    mapped = renumber[flat]
    del flat, renumber
    doc_of = np.repeat(np.arange(n, dtype=np.int32), lengths)
    keep = mapped >= 0
    mapped, doc_of, titled = mapped[keep], doc_of[keep], titled[keep]
    del keep
    # Each paper as a vector over the kept units: idf, more in the title, unit length.
    idf = np.log((n + 1) / (df + 0.5)).astype(np.float32)
    weight = idf[mapped] * np.where(titled, np.float32(TITLE_BOOST), np.float32(1.0))
    norms = np.sqrt(np.bincount(doc_of, weight * weight, minlength=n)).astype(np.float32)
    weight /= np.maximum(norms[doc_of], np.float32(1e-12))
    row_ptr = np.concatenate(([0], np.cumsum(np.bincount(doc_of, minlength=n))))
    order = np.argsort(mapped, kind="stable")
    col_docs, col_titled = doc_of[order], titled[order]
    del order, doc_of, titled
    col_ptr = np.concatenate(([0], np.cumsum(np.bincount(mapped, minlength=len(units)))))
    if n >= MIN_PAPERS:
        indptr, indices, weights = _centroids(units, mapped, weight, row_ptr, col_docs, col_titled, col_ptr)
    else:
        indptr, indices, weights = np.zeros(len(units) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return RelatedModel(units, df, n, indptr, indices, weights, seconds=time.perf_counter() - started)


def _centroids(units, row_units, row_weights, row_ptr, col_docs, col_titled, col_ptr):
    """Per unit, the centroid of the papers that hold it (a title counts more), cut to its
    ``NEIGHBOURS`` heaviest other units and scaled to unit length."""
    size = len(units)
    stem_sets = [frozenset(unit.split()) for unit in units]
    counts = np.zeros(size + 1, np.int64)
    all_indices: list[np.ndarray] = []
    all_weights: list[np.ndarray] = []
    row_lengths = np.diff(row_ptr)
    for a in range(size):
        docs = col_docs[col_ptr[a]:col_ptr[a + 1]]
        strength = np.where(col_titled[col_ptr[a]:col_ptr[a + 1]], TITLE_SEED, 1.0)
        if docs.size > MAX_SOURCE_PAPERS:  # the strongest seeds: papers with the unit in the title first
            chosen = np.argsort(-strength, kind="stable")[:MAX_SOURCE_PAPERS]
            docs, strength = docs[chosen], strength[chosen]
        # Every entry of the seed papers' rows at once: row starts repeated, plus 0, 1, 2, …
        lengths = row_lengths[docs]
        total = int(lengths.sum())
        firsts = np.repeat(row_ptr[docs] - np.cumsum(lengths) + lengths, lengths)
        entries = firsts + np.arange(total)
        centroid = np.bincount(row_units[entries], row_weights[entries] * np.repeat(strength, lengths), size)
        centroid[a] = 0.0
        present = np.flatnonzero(centroid)
        if present.size > NEIGHBOURS * 2:
            present = present[np.argpartition(-centroid[present], NEIGHBOURS * 2)[:NEIGHBOURS * 2]]
        present = present[np.argsort(-centroid[present], kind="stable")]
        mine = stem_sets[a]
        chosen_units = [b for b in present.tolist() if mine.isdisjoint(stem_sets[b])][:NEIGHBOURS]
        if chosen_units:
            w = centroid[chosen_units]
            all_indices.append(np.asarray(chosen_units, np.int32))
            all_weights.append((w / np.sqrt((w * w).sum())).astype(np.float32))
            counts[a + 1] = len(chosen_units)
    indptr = np.cumsum(counts)
    indices = np.concatenate(all_indices) if all_indices else np.zeros(0, np.int32)
    weights = np.concatenate(all_weights) if all_weights else np.zeros(0, np.float32)
    return indptr, indices, weights


def _empty(seconds: float = 0.0) -> RelatedModel:
    return RelatedModel((), np.zeros(0, np.int32), 0, np.zeros(1, np.int64), np.zeros(0, np.int32),
                        np.zeros(0, np.float32), seconds=seconds)
