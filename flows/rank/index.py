"""The day's papers, tokenised once, with postings per stem and per stem pair.

For each field, postings map each stem, and each pair of adjacent stems, to the
papers that hold it and how often. A keyword is expanded into a few stem sequences
(hyphen, joined and split variants, acronym ↔ long form); a word or a two-word
phrase is then one postings lookup, and a longer phrase is counted only in the
papers that hold all of its adjacent pairs. Nothing scans every paper per keyword.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import add
from typing import Any

from flows.models import Match, Paper
from flows.rank.acronyms import AcronymTable, learn_acronyms, load_acronyms
from flows.rank.query import FIELDS, Term
from flows.rank.text import spans, split_tokens, stem, stems

MAX_VARIANTS = 32  # stem sequences tried per keyword; real keywords need a handful
MAX_SHOWN = 5  # spellings per stem sequence and field reported for highlighting

SEPARATOR, BREAK = "\x1f", "\x1e"  # never inside a stem: stems are letters, digits, apostrophes
EMPTY: dict[int, int] = {}
NOWHERE: frozenset[int] = frozenset()


@dataclass(slots=True)
class FieldIndex:
    """One field (title or abstract) of every paper."""

    words: dict[str, dict[int, int]] = field(default_factory=dict)  # stem → paper → count
    pairs: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # adjacent stems
    stems: list[list[str | None]] = field(default_factory=list)  # per paper; None = clause break
    # Per paper, its stems joined by SEPARATOR (clause breaks as BREAK), to count longer
    # phrases with one substring search.
    joined: list[str] = field(default_factory=list)

    def add(self, number: int, stems: list[str | None]) -> None:
        self.stems.append(stems)
        self.joined.append(_joined(stems))
        words = Counter(stems)
        pairs = Counter(zip(stems, stems[1:]))
        if words.pop(None, 0):  # type: ignore[call-overload]
            for pair in [pair for pair in pairs if None in pair]:
                del pairs[pair]
        _post(self.words, number, words)
        _post(self.pairs, number, pairs)

    def counts(self, sequence: tuple[str, ...]) -> dict[int, int]:
        """Paper number → occurrences of the stem sequence (shared: do not modify)."""
        if len(sequence) == 1:
            return self.words.get(sequence[0], EMPTY)
        if len(sequence) == 2:
            return self.pairs.get(sequence, EMPTY)  # type: ignore[call-overload]
        postings = [self.pairs.get(pair) for pair in zip(sequence, sequence[1:])]
        if not all(postings):
            return EMPTY
        candidates = reduce(lambda found, entry: found & entry.keys(), postings, postings[0].keys())
        needle, joined = f"{SEPARATOR}{SEPARATOR.join(sequence)}{SEPARATOR}", self.joined
        return {number: count for number in sorted(candidates) if (count := joined[number].count(needle))}


@dataclass(slots=True)
class Hits:
    """How often one keyword occurs in each paper's title and abstract."""

    title: dict[int, int]  # paper number → occurrences
    abstract: dict[int, int]
    variants: tuple[tuple[str, ...], ...]  # the stem sequences that counted
    # Papers where the field holds the keyword as a phrase or an acronym (scored higher),
    # decided by the text's spelling so "multiagent" and "multi-agent" score alike.
    title_phrase: frozenset[int] = NOWHERE
    abstract_phrase: frozenset[int] = NOWHERE


@dataclass(slots=True)
class PaperIndex:
    """Papers plus postings; build with :func:`build_index`, once per run.

    Ranking fills its caches (per keyword, per keyword list, per explanation). Threads
    may share one index: a cache only ever gains an entry equal to any it replaces.
    """

    papers: tuple[Paper, ...]
    fields: tuple[FieldIndex, FieldIndex]  # title, abstract
    acronyms: AcronymTable
    numbers: dict[str, int]  # paper id → paper number
    by_popularity: tuple[int, ...]  # paper numbers, most upvoted first, then by id
    tie_rank: tuple[int, ...]  # paper number → its place in by_popularity
    log_upvotes: tuple[float, ...]  # paper number → ln(1 + upvotes)
    max_log_upvotes: float
    # Filled by flows.rank.score: per term key its score per paper; per keyword list
    # (keywords, exclusions) its parsed terms looked up in this index.
    term_scores: dict[str, dict[int, float]] = field(default_factory=dict)
    queries: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = field(default_factory=dict)
    _reverse_acronyms: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    _hits: dict[str, Hits] = field(default_factory=dict)
    _matches: dict[str, dict[int, Match]] = field(default_factory=dict)
    _layouts: dict[int, Layout] = field(default_factory=dict)  # 2 · paper number + field
    _vocabulary: frozenset[str] | None = None
    _splits: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.papers)

    def __repr__(self) -> str:
        return f"<PaperIndex of {len(self.papers)} papers, {len(self.acronyms)} acronyms>"

    def hits(self, term: Term) -> Hits:
        """Where the term occurs (cached: many subscribers share keywords)."""
        found = self._hits.get(term.key)
        if found is None:
            found = self._hits[term.key] = self._find(term)
        return found

    def match(self, term: Term, number: int) -> Match:
        """Why one paper matched one term: the fields, and the words as the paper spells them."""
        explained = self.explained(term)
        found = explained.get(number)
        if found is None:
            found = explained[number] = self.explain(term, self.hits(term), number)
        return found

    def explained(self, term: Term) -> dict[int, Match]:
        """The term's explanations so far (paper number → Match), for callers to fill in."""
        key = f"{term.keyword}\0{term.key}"
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = {}
        return found

    def variants(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """The stem sequences that count as these words, the plain one first."""
        found = _variants(tuple(words), self, expand_acronyms=True)
        # A sequence extending another matches only where the shorter one does.
        return [v for v in found if not any(len(o) < len(v) and v[:len(o)] == o for o in found)]

    def splits(self, word: str) -> tuple[tuple[str, str], ...]:
        """Two-word readings of a word that some paper uses: "multiagent" → multi agent."""
        found = self._splits.get(word)
        if found is None:
            vocabulary, titles, abstracts = self.vocabulary, self.fields[0].pairs, self.fields[1].pairs
            pairs = []
            for cut in range(2, len(word) - 1):
                left = stem(word[:cut])
                if left in vocabulary:
                    pair = (left, stem(word[cut:]))
                    if pair in titles or pair in abstracts:
                        pairs.append(pair)
            found = self._splits[word] = tuple(pairs)
        return found

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every stem in any title or abstract."""
        if self._vocabulary is None:
            self._vocabulary = frozenset(self.fields[0].words.keys() | self.fields[1].words.keys())
        return self._vocabulary

    def _find(self, term: Term) -> Hits:
        variants = tuple(self.variants(term.words))
        phrases = [v for v in variants if len(v) > 1 or v[0] in self.acronyms.long_forms]
        counts, in_phrase = [], []
        for index, name in zip(self.fields, FIELDS):
            wanted = term.field in (None, name)
            counts.append(_merged([index.counts(v) for v in variants]) if wanted else EMPTY)
            found = [index.counts(v) for v in phrases] if wanted else []
            in_phrase.append(frozenset().union(*found) if any(found) else NOWHERE)
        return Hits(counts[0], counts[1], variants, in_phrase[0], in_phrase[1])

    def explain(self, term: Term, hits: Hits, number: int) -> Match:
        """Work out :meth:`match` (uncached), given the term's hits."""
        in_title, in_abstract = number in hits.title, number in hits.abstract
        layouts = self._layouts
        surfaces: list[str] = []
        for f in ((0, 1) if in_abstract else (0,)) if in_title else (1,):
            layout = layouts.get(2 * number + f) or self._layout(number, f)
            for variant in hits.variants:
                if len(variant) == 1:  # the usual case, inline
                    first = layout.first.get(variant[0])
                    if first is not None:
                        surfaces += (first, layout.last[variant[0]])
                else:
                    surfaces += layout.spellings(variant)
        fields = FIELDS if in_title and in_abstract else ("title",) if in_title else ("abstract",)
        return Match(term.keyword, fields, tuple(dict.fromkeys(surfaces)))

    def _layout(self, number: int, f: int) -> Layout:
        paper = self.papers[number]
        text = paper.title if f == 0 else paper.abstract
        index = self.fields[f]
        found = self._layouts[2 * number + f] = Layout.of(text, index.stems[number], index.joined[number])
        return found


@dataclass(slots=True)
class Layout:
    """How one paper's field spells its stems (worked out only for papers being explained).

    Each stem, and each pair of adjacent stems, keeps its first and its last spelling:
    "Reinforcement Learning" in a title and "reinforcement learning" later on.
    """

    stems: list[str | None]
    tokens: list[str]  # per slot, the text of its token ("" for a clause break)
    gaps: list[str]  # per slot, the text between it and the next slot
    joined: str  # the stems joined as in FieldIndex.joined
    first: dict[str | None, str]  # stem → its first spelling
    last: dict[str | None, str]  # stem → its last spelling
    pairs: tuple[dict, dict] | None = None  # the same for pairs of stems, when first asked

    @classmethod
    def of(cls, text: str, stems: list[str | None], joined: str) -> "Layout":
        tokens, gaps = _aligned(text, stems, joined)
        first = dict(zip(reversed(stems), reversed(tokens)))
        return cls(stems, tokens, gaps, joined, first, dict(zip(stems, tokens)))

    def spellings(self, sequence: tuple[str, ...]) -> tuple[str, ...]:
        """How the text spells the stem sequence (its first and last spelling, or a few)."""
        if len(sequence) == 1:
            first, last = self.first.get(sequence[0]), self.last.get(sequence[0])
        elif len(sequence) == 2:
            if self.pairs is None:
                pairs = list(zip(self.stems, self.stems[1:]))
                spelled = list(map(add, map(add, self.tokens, self.gaps), self.tokens[1:]))
                self.pairs = dict(zip(reversed(pairs), reversed(spelled))), dict(zip(pairs, spelled))
            first, last = self.pairs[0].get(sequence), self.pairs[1].get(sequence)
        else:
            return self._phrase_spellings(sequence)
        if first is None or last is None:
            return ()
        return (first,) if first == last else (first, last)

    def _phrase_spellings(self, sequence: tuple[str, ...]) -> tuple[str, ...]:
        found: list[str] = []
        for start in _starts(self.joined, sequence, MAX_SHOWN):
            end = start + len(sequence) - 1
            spelled = "".join(map(add, self.tokens[start:end], self.gaps[start:end])) + self.tokens[end]
            if spelled not in found:
                found.append(spelled)
        return tuple(found)


def _aligned(text: str, stems: list[str | None], joined: str) -> tuple[list[str], list[str]]:
    """Token texts and the gaps after them, one per slot of ``stems``."""
    parts = split_tokens(text)
    tokens, gaps = parts[1::2], parts[2::2]
    breaks = _starts(joined, (BREAK,))
    if len(stems) - len(breaks) == len(tokens):
        for position in breaks:  # ascending, so each insert shifts only what follows
            tokens.insert(position, "")
            gaps.insert(position, "")
        return tokens, gaps
    begins, ends = spans(text)  # some token normalised to several words
    tokens = [text[begin:end] if begin >= 0 else "" for begin, end in zip(begins, ends)]
    gaps = [
        text[end:begin] if end >= 0 and begin >= end else ""
        for end, begin in zip(ends, [*begins[1:], len(text)])
    ]
    return tokens, gaps


def build_index(papers: Sequence[Paper], *, acronyms: AcronymTable | None = None) -> PaperIndex:
    """Tokenise every paper once and learn the acronyms its abstracts define."""
    unique: dict[str, Paper] = {}
    for paper in papers:
        unique.setdefault(paper.id, paper)
    ordered = tuple(unique.values())
    fields = (FieldIndex(), FieldIndex())
    for number, paper in enumerate(ordered):
        for index, text in zip(fields, (paper.title, paper.abstract)):
            index.add(number, stems(text))
    base = acronyms if acronyms is not None else load_acronyms(None)
    # The built-in and operator tables are curated: where they define an acronym, the
    # corpus does not add meanings to it.
    learned = learn_acronyms(paper.abstract for paper in ordered).without(base.long_forms.keys())
    table = base.merged(learned)
    by_popularity = sorted(range(len(ordered)), key=lambda n: (-ordered[n].upvotes, ordered[n].id))
    log_upvotes = tuple(math.log1p(max(paper.upvotes, 0)) for paper in ordered)
    tie_rank = [0] * len(ordered)
    for place, number in enumerate(by_popularity):
        tie_rank[number] = place
    return PaperIndex(
        papers=ordered,
        fields=fields,
        acronyms=table,
        numbers={paper.id: number for number, paper in enumerate(ordered)},
        by_popularity=tuple(by_popularity),
        tie_rank=tuple(tie_rank),
        log_upvotes=log_upvotes,
        max_log_upvotes=max(log_upvotes, default=0.0),
        _reverse_acronyms=table.acronyms_by_long_form(),
    )


def _post(postings: dict, number: int, counts: Counter) -> None:
    for key, count in counts.items():
        entry = postings.get(key)
        if entry is None:
            postings[key] = {number: count}
        else:
            entry[number] = count


def _starts(joined: str, sequence: tuple[str, ...], limit: int = 0) -> list[int]:
    """Positions where the stem sequence starts, in a field's joined stems (the first ``limit``)."""
    needle = f"{SEPARATOR}{SEPARATOR.join(sequence)}{SEPARATOR}"
    found: list[int] = []
    at = joined.find(needle)
    while at >= 0 and (not limit or len(found) < limit):
        found.append(joined.count(SEPARATOR, 0, at))  # separators before it = its position
        at = joined.find(needle, at + 1)
    return found


def _joined(stems: list[str | None]) -> str:
    return f"{SEPARATOR}{SEPARATOR.join([stem or BREAK for stem in stems])}{SEPARATOR}"


def _merged(counts: list[dict[int, int]]) -> dict[int, int]:
    """Counts summed over the variants; a single non-empty one is returned as it is."""
    present = sorted((entry for entry in counts if entry), key=len, reverse=True)
    if len(present) <= 1:
        return present[0] if present else EMPTY
    merged = dict(present[0])
    for entry in present[1:]:
        for number, count in entry.items():
            merged[number] = merged.get(number, 0) + count
    return merged


def _variants(
    words: tuple[str, ...], index: PaperIndex, *, expand_acronyms: bool
) -> list[tuple[str, ...]]:
    """Stem sequences for the words: as written, joined, split, acronym ↔ long form."""
    stems = tuple(stem(word) for word in words)
    tails: list[list[tuple[str, ...]]] = [[] for _ in range(len(words) + 1)]
    tails[len(words)] = [()]
    for i in range(len(words) - 1, -1, -1):
        options: list[tuple[str, ...]] = []
        for head, after in _heads(words, stems, i, index, expand_acronyms):
            options.extend(head + tail for tail in tails[after])
        tails[i] = list(dict.fromkeys(options))[:MAX_VARIANTS]
    return tails[0]


def _heads(words, stems, i, index: PaperIndex, expand_acronyms: bool):
    """The ways to read words[i:...]: (stems it contributes, index of the next word)."""
    yield (stems[i],), i + 1
    if i + 1 < len(words):
        joined = stem(words[i] + words[i + 1])  # "multi agent" → "multiagent"
        if joined in index.vocabulary:
            yield (joined,), i + 2
    for pair in index.splits(words[i]):
        yield pair, i + 1
    if not expand_acronyms:
        return
    long_forms = index.acronyms.long_forms.get(stems[i])
    for long_words in sorted(long_forms) if long_forms else ():
        for sequence in _variants(long_words, index, expand_acronyms=False):
            yield sequence, i + 1
    for end in range(i + 2, len(words) + 1):
        acronyms = index._reverse_acronyms.get(stems[i:end])
        for acronym in sorted(acronyms) if acronyms else ():
            yield (acronym,), end
