"""Postings of the day's papers: per field, per stem and per pair of adjacent stems, the
papers that hold it and how often, and each paper's stems joined into one string.

Takes tokenised text (``flows.rank.text.stems_and_spans``) and gives the low-level
lookups the ranking index is built on (``flows.rank.index.PaperIndex``): counts of a stem
sequence, where sequences start, whether words stand close together, and how a paper
spells what matched. Nothing here knows about keywords, scores or the related model.

The postings of words and pairs (:class:`Postings`) are laid out as arrays once every paper
is in: a render process keeps them for the whole run, and a dict per stem or pair took
five times the memory.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from itertools import accumulate, chain

import numpy as np

from flows.models import Paper
from flows.rank.graded import FUNCTION_WORDS, WINDOW
from flows.rank.text import inflection_base, normalise, stem

MAX_SHOWN = 5  # spellings of a longer phrase reported per field for highlighting
# Characters that join the words of a compound ("real-world", "vision–language"): a phrase
# never starts on a word that continues one ("world models" is not in "real-world models"),
# unless a linking word comes before it ("image generation" is in "text-to-image generation").
HYPHENS = frozenset("-\u2010\u2011\u2013")
LINKING_STEMS = frozenset(map(stem, FUNCTION_WORDS))
SEPARATOR, BREAK = "\x1f", "\x1e"  # never inside a stem: stems are letters, digits, apostrophes
EMPTY: dict[int, int] = {}
NOWHERE: frozenset[int] = frozenset()


class _Slice(Mapping):
    """A read-only mapping keyed by the ascending paper numbers ``numbers[start:end]`` (a
    slice of an array shared with others): membership by binary search."""

    __slots__ = ("numbers", "start", "end")

    def __contains__(self, number: object) -> bool:
        at = bisect_left(self.numbers, number, self.start, self.end)  # type: ignore[type-var]
        return at < self.end and self.numbers[at] == number

    def __len__(self) -> int:
        return self.end - self.start


class PaperSet(_Slice):
    """Papers as a read-only mapping paper → 1: the counts of a level that either occurs in
    a paper or not (the words of a keyword close together), without a dict, or an array
    object, per keyword (thousands of keywords keep theirs for the run)."""

    __slots__ = ()

    def __init__(self, numbers: array, start: int = 0, end: int | None = None) -> None:
        self.numbers, self.start, self.end = numbers, start, len(numbers) if end is None else end

    def __getitem__(self, number: int) -> int:
        if number in self:
            return 1
        raise KeyError(number)

    def __iter__(self):
        return iter(self.tolist())

    def tolist(self) -> list[int]:
        """The papers, ascending."""
        return self.numbers[self.start:self.end].tolist()


def compact(values: np.ndarray) -> array:
    """Non-negative ints in the smallest unsigned array type that holds them all (an
    ``array.array``: binary search reads its items quicker than a numpy array's)."""
    largest = int(values.max()) if values.size else 0
    code, dtype = next((code, dtype) for code, dtype in _TYPES if largest <= np.iinfo(dtype).max)
    found = array(code)
    found.frombytes(values.astype(dtype).tobytes())
    return found


_TYPES = (("B", np.uint8), ("H", np.uint16), ("I", np.uint32), ("Q", np.uint64))


class Counts(_Slice):
    """One row of :class:`Postings`: paper number → count, papers ascending, as a read-only
    mapping over a slice of the postings' two arrays (no dict, no int objects kept). Reading
    is as a dict's: iteration in paper order, ``get`` and ``in`` by binary search."""

    __slots__ = ("counts",)

    def __init__(self, numbers: array, counts: array, start: int, end: int) -> None:
        self.numbers, self.counts, self.start, self.end = numbers, counts, start, end

    def __getitem__(self, number: int) -> int:
        at = bisect_left(self.numbers, number, self.start, self.end)
        if at < self.end and self.numbers[at] == number:
            return self.counts[at]
        raise KeyError(number)

    def get(self, number: int, default=None):  # type: ignore[override]
        at = bisect_left(self.numbers, number, self.start, self.end)
        return self.counts[at] if at < self.end and self.numbers[at] == number else default

    def __iter__(self):
        return iter(self.numbers[self.start:self.end])

    def values(self):  # type: ignore[override]
        return self.counts[self.start:self.end]

    def items(self):  # type: ignore[override]
        return zip(self.numbers[self.start:self.end], self.counts[self.start:self.end])

    def __repr__(self) -> str:
        return f"Counts({dict(self.items())})"


class Postings(Mapping):
    """Per key (a stem, or a pair of adjacent stems), the papers holding it and how often:
    ``postings[key]`` is a :class:`Counts` (paper → count). Filled paper by paper with
    :meth:`add`, in ascending paper numbers; then (:meth:`laid_out`, which ``build_index``
    calls after the last paper, or else the first read) the rows are laid end to end in
    two compact arrays (CSR by key), which hold a day's ≈ 650,000 entries in a few MB where
    a dict per key took ≈ 27 MB."""

    __slots__ = ("_rows", "_bounds", "_numbers", "_counts", "_adding")

    def __init__(self) -> None:
        self._rows: dict = {}  # key → row number
        self._bounds = array("I", [0])  # row r is entries _bounds[r] to _bounds[r + 1]
        self._numbers = self._counts = array("B")
        self._adding: list[tuple[int, Counter]] | None = []  # (paper, counts) until the first read

    def add(self, number: int, counts: Counter) -> None:
        """One paper's keys and their counts (papers in ascending order, all before any read)."""
        if self._adding is None:
            raise RuntimeError("postings are laid out on the first read: add every paper before")
        self._adding.append((number, counts))

    def laid_out(self) -> Postings:
        """The postings with every paper in, laid out (``build_index`` calls this after the
        last paper; a first read does it otherwise)."""
        if self._adding is not None:
            self._laid_out()
        return self

    def _laid_out(self) -> None:
        """Every entry in paper order, then sorted by row (stable: each row's papers stay
        ascending), in two arrays; ``_bounds`` from the rows' lengths. Rows are numbered in
        the order their keys first occur."""
        adding, self._adding = self._adding or [], None
        papers = [counted for _, counted in adding]
        rows = dict.fromkeys(chain.from_iterable(papers))
        rows.update(zip(rows, range(len(rows))))
        owners = np.fromiter(map(rows.__getitem__, chain.from_iterable(papers)), np.int64)
        numbers = np.repeat(np.fromiter((number for number, _ in adding), np.int64, len(adding)),
                            np.fromiter(map(len, papers), np.int64, len(papers)))
        counts = np.fromiter(chain.from_iterable(counted.values() for counted in papers), np.int64, owners.size)
        order = np.argsort(owners, kind="stable")
        self._rows = rows
        self._bounds = compact(np.concatenate(([0], np.cumsum(np.bincount(owners, minlength=len(rows))))))
        self._numbers, self._counts = compact(numbers[order]), compact(counts[order])

    def _row(self, row: int) -> Counts:
        return Counts(self._numbers, self._counts, self._bounds[row], self._bounds[row + 1])

    def __getitem__(self, key) -> Counts:
        if self._adding is not None:
            self._laid_out()
        return self._row(self._rows[key])

    def get(self, key, default=None):  # type: ignore[override]
        if self._adding is not None:
            self._laid_out()
        row = self._rows.get(key)
        return default if row is None else self._row(row)

    def __contains__(self, key: object) -> bool:
        if self._adding is not None:
            self._laid_out()
        return key in self._rows

    def __iter__(self):
        if self._adding is not None:
            self._laid_out()
        return iter(self._rows)

    def __len__(self) -> int:
        if self._adding is not None:
            self._laid_out()
        return len(self._rows)

    def keys(self):  # type: ignore[override]
        if self._adding is not None:
            self._laid_out()
        return self._rows.keys()


@dataclass(slots=True)
class FieldIndex:
    """One field (title or abstract) of every paper."""

    words: Postings = field(default_factory=Postings)  # stem → paper → count
    pairs: Postings = field(default_factory=Postings)  # adjacent stems → paper → count
    # Per paper, its stems joined by SEPARATOR (clause breaks as BREAK), to count longer
    # phrases with one substring search; per slot, where its separator is in that string
    # and where its word begins and ends in the text (-1 for a clause break), to show how
    # the paper spells what matched.
    joined: list[str] = field(default_factory=list)
    starts: list[array[int]] = field(default_factory=list)
    begins: list[array[int]] = field(default_factory=list)
    ends: list[array[int]] = field(default_factory=list)
    # Built on first use by graded phrases: per stem, its slots in one numbering of every
    # paper's slots (papers WINDOW apart, so no window spans two), and where each paper begins.
    _positions: dict[str, np.ndarray] | None = None
    _offsets: np.ndarray | None = None
    span: int = 0  # above every slot number of positions()
    # Words that continue a compound ("world" of "real-world"): per paper that has any, their
    # slots; and per pair of stems, the papers where it starts on one, and how often. A phrase
    # of two or more words counts only where it starts on a word of its own.
    inner: dict[int, tuple[int, ...]] = field(default_factory=dict)
    inner_pairs: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    _outer_pairs: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)

    def add(self, number: int, stems: list[str | None], begins: list[int], ends: list[int], text: str) -> None:
        """One paper's field: its stems and their spans (``stems_and_spans(text)``) and the
        text itself, which says where a compound joins its words."""
        if any(character in text for character in HYPHENS):
            inner = [slot for slot in range(1, len(stems)) if begins[slot] > 0 and text[begins[slot] - 1] in HYPHENS
                     and ends[slot - 1] == begins[slot] - 1 and stems[slot] is not None
                     and stems[slot - 1] not in LINKING_STEMS]
            if inner:
                self.inner[number] = tuple(inner)  # a few: smaller than a set, as quick to search
                starting = Counter((stems[slot], stems[slot + 1]) for slot in inner
                                   if slot + 1 < len(stems) and stems[slot + 1] is not None)
                _post(self.inner_pairs, number, starting)
        joined = _joined(stems)
        self.joined.append(joined)
        sizes = map(len, joined.split(SEPARATOR)[1:-2])
        self.starts.append(_small(list(accumulate(map((1).__add__, sizes), initial=0))))
        self.begins.append(_small(begins))
        self.ends.append(_small(ends))
        words = Counter(stems)
        pairs = Counter(zip(stems, stems[1:]))
        if words.pop(None, 0):  # type: ignore[call-overload]
            for pair in [pair for pair in pairs if None in pair]:
                del pairs[pair]
        self.words.add(number, words)
        self.pairs.add(number, pairs)

    def finish(self) -> None:
        """After the last paper: lay the postings out (see :class:`Postings`)."""
        self.words.laid_out()
        self.pairs.laid_out()

    def positions(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per stem its slots across all papers (ascending), and each paper's first slot."""
        if self._positions is None or self._offsets is None:
            found: dict[str, list[int]] = {}
            offsets, at = [], 0
            for joined in self.joined:
                offsets.append(at)
                slots = joined.split(SEPARATOR)[1:-1]
                for i, stem in enumerate(slots):
                    entry = found.get(stem)
                    if entry is None:
                        found[stem] = [at + i]
                    else:
                        entry.append(at + i)
                at += len(slots) + WINDOW
            # int32 where the slots fit (half the memory; every use gives the same numbers)
            kind = np.int32 if at <= np.iinfo(np.int32).max else np.int64
            self._positions = {stem: np.array(slots, kind) for stem, slots in found.items()}
            self._offsets = np.array(offsets, np.int64)
            self.span = at
        return self._positions, self._offsets

    def counts(self, sequence: tuple[str, ...]) -> Mapping[int, int]:
        """Paper number → occurrences of the stem sequence (shared: do not modify)."""
        if len(sequence) == 1:
            return self.words.get(sequence[0], EMPTY)
        if len(sequence) == 2:
            if sequence not in self.inner_pairs:
                return self.pairs.get(sequence, EMPTY)  # type: ignore[call-overload]
            return self._outer(sequence)  # type: ignore[arg-type]
        postings = [self.pairs.get(pair) for pair in zip(sequence, sequence[1:])]
        if not all(postings):
            return EMPTY
        candidates = set(postings[0]).intersection(*postings[1:])
        needle, joined = joined_needle(sequence), self.joined
        found = {number: count for number in sorted(candidates) if (count := joined[number].count(needle))}
        inside = self.inner_pairs.get(sequence[:2])  # type: ignore[call-overload]
        if not inside:  # the usual case: no paper starts the phrase inside a compound
            return found
        for number in [number for number in found if number in inside]:
            inner, starts = self.inner[number], self.starts[number]
            # every occurrence, overlapping ones too: one that starts inside a compound may
            # hide the next ("Deep-multi-agent multi-agent multi-agent")
            count = sum(bisect_left(starts, at) not in inner for at in finds(joined[number], needle))
            if count:
                found[number] = count
            else:
                del found[number]
        return found

    def _outer(self, pair: tuple[str, str]) -> Mapping[int, int]:
        """The pair's counts less where it starts on a word that continues a compound."""
        found = self._outer_pairs.get(pair)
        if found is None:
            inside = self.inner_pairs[pair]
            found = {number: count - inside.get(number, 0) for number, count in self.pairs[pair].items()
                     if count > inside.get(number, 0)}
            self._outer_pairs[pair] = found
        return found


class _BasesOfWord(dict):
    """Raw word as a paper writes it → the inflection bases of its normalised word(s), each once."""

    def __missing__(self, raw: str) -> tuple[str, ...]:
        if len(self) > 200_000:
            self.clear()
        found = self[raw] = tuple(dict.fromkeys(inflection_base(word) for word in normalise(raw)))
        return found


BASES_OF_WORD = _BasesOfWord()


def word_counts(index: FieldIndex, papers: Sequence[Paper], f: int, stemmed: str) -> dict[str, Counts]:
    """Per inflection base of the words that the stem ``stemmed`` stands for in field ``f``
    (0 title, 1 abstract), the papers writing that word and how often: "adapt" →
    {"adapter": …, "adaptiv": …, "adaptation": …} (kept for the run: as compact
    :class:`Counts`, a tenth of a dict's memory)."""
    found: dict[str, dict[int, int]] = {}
    positions, offsets = index.positions()
    slots = positions.get(stemmed)
    if slots is None:
        return found
    # Every occurrence at once, in paper order then text order (as searching each paper's
    # joined stems finds them): its paper, and its slot in that paper.
    owners = np.searchsorted(offsets, slots, side="right") - 1
    bases_of, begins_of, ends_of = BASES_OF_WORD, index.begins, index.ends
    for number, slot in zip(owners.tolist(), (slots - offsets[owners]).tolist()):
        paper = papers[number]
        text = paper.abstract if f else paper.title
        for base in bases_of[text[begins_of[number][slot]:ends_of[number][slot]]]:
            counts = found.get(base)
            if counts is None:
                found[base] = {number: 1}
            else:
                counts[number] = counts.get(number, 0) + 1
    return {base: _compacted(counts) for base, counts in found.items()}


def _compacted(counts: dict[int, int]) -> Counts:
    """A dict paper → count, papers ascending, as :class:`Counts`."""
    numbers = compact(np.fromiter(counts.keys(), np.int64, len(counts)))
    return Counts(numbers, compact(np.fromiter(counts.values(), np.int64, len(counts))), 0, len(counts))


@dataclass(slots=True)
class Hits:
    """How often one keyword occurs in each paper's title and abstract."""

    title: dict[int, int]  # paper number → occurrences
    abstract: dict[int, int]
    variants: tuple[tuple[str, ...], ...]  # the stem sequences that counted
    # Papers where the field holds the keyword as a phrase or an acronym (scored higher),
    # decided by the text's spelling so "multiagent" and "multi-agent" score alike.
    title_phrase: AbstractSet[int] = NOWHERE
    abstract_phrase: AbstractSet[int] = NOWHERE
    _needles: tuple[str, ...] = ()  # see needles
    # A one-word keyword whose stem folds other words in ("adapters": adapt, as "adaptive"
    # and "adaptation"): the keyword's word without its inflection (see
    # flows.rank.text.inflection_base); its first variant counted only where the paper
    # writes that word. "" for every other keyword.
    base: str = ""
    based: tuple[str, ...] = ()  # the variant counted only where the paper writes that word

    @property
    def needles(self) -> tuple[str, ...]:
        """Per variant, as searched for in FieldIndex.joined: made on first use, for the
        explanations (most levels of most keywords never explain a paper; ≈ 2 MB)."""
        if not self._needles:
            self._needles = tuple(map(joined_needle, self.variants))
        return self._needles


def spellings(
    field: tuple[str, str, array, array, array], needle: str, last_word: int, once: bool
) -> tuple[str, ...]:
    """How a field spells a stem sequence (``needle`` in its joined stems, ``last_word + 1``
    stems long): its first and its last spelling ("Reinforcement Learning" in a title,
    "reinforcement learning" later on), or the first few of a longer phrase.

    ``field`` is the text, its joined stems, and per slot where it is in the joined stems
    and where its word begins and ends in the text (see :class:`FieldIndex`); ``once`` says
    that the field holds the sequence only once.
    """
    text, joined, starts, begins, ends = field
    if last_word > 1:
        slots = [bisect_left(starts, at) for at in finds(joined, needle, MAX_SHOWN)]
        return tuple(dict.fromkeys(text[begins[slot]:ends[slot + last_word]] for slot in slots))
    first = joined.find(needle)
    if first < 0:
        return ()
    slot = bisect_left(starts, first)
    spelled = text[begins[slot]:ends[slot + last_word]]
    last = first if once else joined.rfind(needle)
    if last == first:
        return (spelled,)
    slot = bisect_left(starts, last)
    again = text[begins[slot]:ends[slot + last_word]]
    return (spelled,) if again == spelled else (spelled, again)

def pairs_close_together(index: FieldIndex, units: list[tuple[tuple[str, ...], ...]]) -> dict[int, int]:
    """:func:`close_together` for every paper at once, for two units (their stem sequences):
    the papers where an occurrence of one starts fewer than ``WINDOW`` slots from one of the other."""
    positions, offsets = index.positions()
    first, second = (sequence_starts(positions, variants) for variants in units)
    if not first.size or not second.size:
        return EMPTY
    at = np.searchsorted(second, first)
    after = second[np.minimum(at, second.size - 1)]
    before = second[np.maximum(at - 1, 0)]
    close = (np.abs(after - first) < WINDOW) | (np.abs(first - before) < WINDOW)
    papers = np.unique(np.searchsorted(offsets, first[close], side="right") - 1)
    return dict.fromkeys(papers.tolist(), 1)

_NOWHERE = np.zeros(0, np.int64)


def sequence_starts(positions: dict[str, np.ndarray], variants: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """Where any of the stem sequences starts, in the numbering of ``FieldIndex.positions``."""
    found = []
    for variant in variants:
        starts = positions.get(variant[0], _NOWHERE)
        for offset, stem in enumerate(variant[1:], start=1):
            if not starts.size:
                break
            starts = np.intersect1d(starts, positions.get(stem, _NOWHERE) - offset, assume_unique=True)
        found.append(starts)
    if len(found) == 1:
        return found[0]
    return np.unique(np.concatenate(found)) if found else _NOWHERE

def close_together(index: FieldIndex, number: int, units: list[tuple[str, ...]]) -> bool:
    """Whether the field holds an occurrence of every unit (its needles: stem sequences as
    searched for in the joined stems), all starting within ``WINDOW`` slots of the first."""
    joined, starts = index.joined[number], index.starts[number]
    occurrences: list[tuple[int, int]] = []  # first slot, unit
    for u, needles in enumerate(units):
        for needle in needles:
            occurrences.extend((bisect_left(starts, at), u) for at in finds(joined, needle, 50))
    occurrences.sort()
    wanted = len(units)
    for i, (first, _) in enumerate(occurrences):
        seen: set[int] = set()
        for slot, u in occurrences[i:]:
            if slot - first >= WINDOW:
                break
            seen.add(u)
            if len(seen) == wanted:
                return True
    return False

def _small(values: list[int]) -> array:
    """Offsets within one paper's field (-1 for a clause break): 2 bytes each where they fit."""
    return array("h" if max(values, default=0) < 1 << 15 else "i", values)

def joined_needle(sequence: tuple[str, ...]) -> str:
    return f"{SEPARATOR}{SEPARATOR.join(sequence)}{SEPARATOR}"

def _post(postings: dict, number: int, counts: Counter) -> None:
    for key, count in counts.items():
        entry = postings.get(key)
        if entry is None:
            postings[key] = {number: count}
        else:
            entry[number] = count

def finds(joined: str, needle: str, limit: int = 0) -> list[int]:
    """Where ``needle`` starts in ``joined``, overlaps included (the first ``limit``)."""
    found: list[int] = []
    at = joined.find(needle)
    while at >= 0 and (not limit or len(found) < limit):
        found.append(at)
        at = joined.find(needle, at + 1)
    return found

def _joined(stems: list[str | None]) -> str:
    return f"{SEPARATOR}{SEPARATOR.join([stem or BREAK for stem in stems])}{SEPARATOR}"

def union(postings: list[Mapping[int, int]]) -> AbstractSet[int]:
    """The papers in any of the postings; a single one's keys as they are (most phrases)."""
    if len(postings) <= 1:
        return postings[0].keys() if postings else NOWHERE
    return frozenset().union(*postings)

def merged(counts: list[Mapping[int, int]]) -> Mapping[int, int]:
    """Counts summed over the variants; a single non-empty one is returned as it is."""
    present = sorted((entry for entry in counts if entry), key=len, reverse=True)
    if len(present) <= 1:
        return present[0] if present else EMPTY
    merged = dict(present[0].items())
    for entry in present[1:]:
        for number, count in entry.items():
            merged[number] = merged.get(number, 0) + count
    return merged
