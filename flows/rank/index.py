"""The day's papers as the ranking looks them up: per keyword its hits, graded levels,
related terms and explanations, cached for every subscriber who shares the keyword.

Takes the day's papers (and the related model learned from the stored corpus) and builds
a :class:`PaperIndex` once per run: the postings of each field (``flows.rank.postings``)
plus the acronyms the abstracts define. A keyword is expanded into a few stem sequences
(hyphen, joined and split variants, acronym ↔ long form); a word or a two-word phrase is
then one postings lookup, and a longer phrase is counted only in the papers that hold all
of its adjacent pairs. Nothing scans every paper per keyword. Related terms and the
papers' vectors come from ``flows.rank.expansion``; scoring is ``flows.rank.keyword_scores``' (per
keyword) and ``flows.rank.score``'s (per subscriber).
"""

from __future__ import annotations

import hashlib
import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import chain
from typing import Any

import numpy as np

from flows.models import Match, Paper
from flows.rank.acronyms import AcronymTable, learn_acronyms, load_acronyms
from flows.rank.bulk import close_pairs, pack, unpack
from flows.rank.excerpt import Excerpts
from flows.rank.expansion import Expansion, build_paper_norms, build_unit_postings, expand
from flows.rank.graded import MIN_CREDIT, WINDOW, Part, graded_parts, head_unit, keyword_units
from flows.rank.postings import (
    BASES_OF_WORD,
    EMPTY,
    MAX_SHOWN,
    FieldIndex,
    Hits,
    PaperSet,
    close_together,
    finds,
    merged,
    joined_needle,
    pairs_close_together,
    sequence_starts,
    spellings,
    union,
    word_counts,
)
from flows.rank.query import FIELDS, Term
from flows.rank.related import RelatedModel, stop_stems
from flows.rank.text import holds_name, inflection_base, stem, stems_and_spans, words
from flows.rank.thesaurus import GROUPS as THESAURUS_GROUPS

NEIGHBOUR_CREDIT = 0.5  # a thesaurus neighbour's share of the credit of the keyword (or part) it neighbours
MAX_VARIANTS = 32  # stem sequences tried per keyword; real keywords need a handful
_ONLY = (("title",), ("abstract",))  # Match.fields of a match in one field
_NO_PAPERS = np.zeros(0, np.intp)
_NONE: frozenset = frozenset()
_NO_WEIGHTS = np.zeros(0)
_NO_PAPERS.flags.writeable = _NO_WEIGHTS.flags.writeable = False


@dataclass(slots=True)
class PaperIndex:
    """Papers plus postings; build with :func:`build_index`, once per run.

    Ranking fills its caches (per keyword, per keyword list, per explanation, per
    snippet). Threads may share one index: a cache only ever gains an entry equal to any
    it replaces.
    """

    papers: tuple[Paper, ...]
    fields: tuple[FieldIndex, FieldIndex]  # title, abstract
    acronyms: AcronymTable
    numbers: dict[str, int]  # paper id → paper number
    by_popularity: tuple[int, ...]  # paper numbers, most upvoted first, then by id
    tie_rank: tuple[int, ...]  # paper number → its place in by_popularity
    log_upvotes: tuple[float, ...]  # paper number → ln(1 + upvotes)
    max_log_upvotes: float
    # Filled by flows.rank.keyword_scores: per term key the papers it matches and its score
    # in each (aligned arrays, packed: see flows.rank.bulk.pack); per keyword as written
    # (label, term key, weight) what ranking needs of it; per keyword list (keywords,
    # exclusions) its parsed terms looked up here.
    term_scores: dict[str, bytes | str] = field(default_factory=dict)
    looked_up: dict[tuple[str, str, float], Any] = field(default_factory=dict)
    queries: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = field(default_factory=dict)
    lists_looked_up: int = 0  # keyword lists looked up since forget_rankings last ran
    _reverse_acronyms: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    _hits: dict[str, Hits] = field(default_factory=dict)
    _matches: dict[tuple[str, str], dict[int, Match]] = field(default_factory=dict)
    _interned: dict[tuple, Match] = field(default_factory=dict)
    _scaled_logs: dict[float, np.ndarray] = field(default_factory=dict)
    _excerpts: Excerpts | None = None
    _vocabulary: frozenset[str] | None = None
    _splits: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _readings: dict[tuple[str, bool], tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    related: RelatedModel | None = None  # learned from the stored corpus, if there is one
    _graded: dict[str, tuple[tuple[Part, Hits], ...]] = field(default_factory=dict)
    _df: dict[tuple[str, ...], int] = field(default_factory=dict)
    _expansions: dict[str, bytes] = field(default_factory=dict)  # packed (see expansion_ids)
    _unit_postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _paper_norms: np.ndarray | None = None
    # Per paper id a subscriber marked: today's papers like it and how much (flows.rank.feedback).
    feedback_scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _unit_stems: list[tuple[str, ...]] | None = None
    _variant_lists: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    expansion_scores: dict[bytes, bytes] = field(default_factory=dict)  # packed, by expansion_key
    # Per field and stem, the words it stands for in the papers (see word_counts), for the
    # one-word keywords whose stem folds in other words.
    _words_of_stem: dict[tuple[int, str], dict[str, Mapping[int, int]]] = field(default_factory=dict)
    # The keywords (term keys) of the keyword lists looked up since forget_rankings last ran.
    _used: set[str] = field(default_factory=set)
    _thesaurus: dict[tuple[str, ...], tuple[int, ...]] | None = None
    _neighbour_variants: dict[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)
    _parts_pending: dict[str, tuple[Part, ...]] = field(default_factory=dict)
    _numbers: tuple[int, ...] | None = None

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

    @property
    def paper_numbers(self) -> tuple[int, ...]:
        """0 … len(papers) - 1, one int object each: caches keyed by paper number take their
        keys from here rather than keep a fresh int per entry (numpy's ``tolist()`` makes
        one per element; 150,000 explanations kept ≈ 4.7 MB of them)."""
        if self._numbers is None:
            self._numbers = tuple(range(len(self.papers)))
        return self._numbers

    def mark_used(self, keys: Iterable[str]) -> None:
        """Note keywords (term keys) a keyword list looks up: :meth:`forget_rankings` keeps
        their per-keyword work."""
        self._used.update(keys)

    def forget_rankings(self) -> None:
        """Forget every keyword list's lookups, and the per-keyword scores of graded phrases
        and related papers of the keywords that no list looked up since the last time (see
        ``flows.rank.score.QUERIES_KEPT``); the postings, the matches and the explanations
        stay."""
        used, self._used = self._used, set()
        self.lists_looked_up = 0
        self.queries.clear()
        self.looked_up.clear()
        self._expansions = {key: found for key, found in self._expansions.items() if key in used}
        shared = (packed_expansion_key(packed) for packed in self._expansions.values())
        self.expansion_scores = {key: self.expansion_scores[key] for key in shared if key in self.expansion_scores}
        for key in [key for key in self.term_scores if key[:1] in ("\x00", "\x01") and key[1:] not in used]:
            del self.term_scores[key]

    def graded(self, term: Term) -> tuple[tuple[Part, Hits], ...]:
        """The keyword's partial matches (see :mod:`flows.rank.graded`) with where each occurs."""
        found = self._graded.get(term.key)
        if found is None:
            found = self.graded_many([term])[0]
        return found

    def graded_many(self, terms: Sequence[Term]) -> list[tuple[tuple[Part, Hits], ...]]:
        """:meth:`graded` of several keywords; where two units' words stand close together
        is worked out for all of them at once (see :func:`flows.rank.bulk.close_pairs`)."""
        found: list = []
        close: list[tuple[int, Term, Part, list[tuple[tuple[str, ...], ...]]]] = []
        for term in terms:
            cached = self._graded.get(term.key)
            if cached is not None:
                found.append(cached)
                continue
            parts = self._parts_pending.pop(term.key, None) or self.parts(term)
            levels: list = []
            for part in parts:
                if part.kind == "words" and len(part.units) == 2:
                    close.append((len(found), term, part, [tuple(self.variants(unit)) for unit in part.units]))
                    levels.append(None)  # filled below
                else:
                    levels.append((part, self._part_hits(term, part)))
            found.append(levels)
        if close:
            papers: list[list[np.ndarray]] = []
            for f, name in enumerate(FIELDS):
                index = self.fields[f]
                wanted = [k for k, (_, term, _, _) in enumerate(close) if term.field in (None, name)]
                positions, offsets = index.positions()
                # A frequent unit ("model") recurs in many keywords: its slots are worked out
                # once, and close_pairs meets the same array again (it searches it once).
                starts: dict[tuple[tuple[str, ...], ...], np.ndarray] = {}
                firsts = [_starts_of(starts, positions, close[k][3][0]) for k in wanted]
                seconds = [_starts_of(starts, positions, close[k][3][1]) for k in wanted]
                near = close_pairs(firsts, seconds, offsets, WINDOW, index.span)
                # every pair's papers end to end in one array, kept for the run: one PaperSet
                # per pair reads its slice (not an array object per pair and field)
                rows, bounds = array("i"), [(0, 0)] * len(close)
                for k, numbers in zip(wanted, near):
                    start = len(rows)
                    rows.frombytes(numbers.astype(np.int32, copy=False).tobytes())
                    bounds[k] = (start, len(rows))
                papers.append([PaperSet(rows, start, end) for start, end in bounds])
            for k, (n, term, part, units) in enumerate(close):
                variants = tuple(dict.fromkeys(variant for unit in units for variant in unit))
                hits = Hits(papers[0][k], papers[1][k], variants)
                levels = found[n]
                levels[levels.index(None)] = (part, hits)
        for n, term in enumerate(terms):
            if isinstance(found[n], list):
                found[n] = self._graded[term.key] = tuple(found[n])
        return found

    def neighbours(self, term: Term, parts: tuple[Part, ...]) -> tuple[Part, ...]:
        """The thesaurus's neighbours of a keyword (see :mod:`flows.rank.thesaurus`): the
        other phrases of every group the keyword, or a part of it that holds its head,
        belongs to; each credited NEIGHBOUR_CREDIT times that part's credit (1 for the
        keyword itself). None that the keyword or its parts already match."""
        table = self.thesaurus
        own = set(self.variants(term.words))
        heads = [(own, 1.0)]
        runs = [(part, set(self.variants(part.words))) for part in parts if part.kind == "part"]
        if table.keys().isdisjoint(own) and all(table.keys().isdisjoint(variants) for _, variants in runs):
            return ()  # most keywords: neither they nor any part in a group (no need for the head)
        if runs:
            head = _head_words(term.keyword)
            heads += [(variants, part.credit) for part, variants in runs if _contains(part.words, head)]
        heads = [(variants, credit) for variants, credit in heads if any(v in table for v in variants)]
        if not heads:  # most keywords: in no group
            return ()
        known = own.union(*(variants for _, variants in runs),
                          *(self.variants(words) for words in term.besides))
        found: dict[str, Part] = {}
        for variants, credit in heads:
            for group in {g for variant in variants for g in table.get(variant, ())}:
                for label in THESAURUS_GROUPS[group]:
                    member_words = tuple(words(label))
                    member = set(self.variants(member_words))
                    if member & known or any(_contains(m, k) for m in member for k in own):
                        continue
                    share = round(NEIGHBOUR_CREDIT * credit, 6)
                    if share >= MIN_CREDIT and (label not in found or found[label].credit < share):
                        found[label] = Part(label, member_words, share, "neighbour")
        return tuple(sorted(found.values(), key=lambda part: -part.credit))

    def parts(self, term: Term) -> tuple[Part, ...]:
        """The keyword's graded parts and, unless the term says otherwise, its neighbours
        (without where they occur: :meth:`graded` adds that); none for a keyword written in
        quotes (the whole phrase only)."""
        if term.whole:
            return ()
        if self.related is not None and self.related.documents:
            parts = graded_parts(term.keyword, self.corpus_frequency, self.related.documents)
        else:
            parts = graded_parts(term.keyword, self.document_frequency, len(self.papers))
        if term.neighbours:
            parts += self.neighbours(term, parts)
        return parts

    def neighbour_variants(self, term: Term) -> frozenset[tuple[str, ...]]:
        """The stem sequences of the keyword's neighbours (empty for most keywords)."""
        found = self._neighbour_variants.get(term.key)
        if found is None:
            parts = self.parts(term)
            if term.key not in self._graded:  # graded_many takes them from here
                self._parts_pending[term.key] = parts
            found = frozenset(variant for part in parts if part.kind == "neighbour"
                              for variant in self.variants(part.words))
            self._neighbour_variants[term.key] = found or _NONE
        return found

    @property
    def thesaurus(self) -> dict[tuple[str, ...], tuple[int, ...]]:
        """Stem sequence (any variant of a member) → the thesaurus groups holding it."""
        if self._thesaurus is None:
            table: dict[tuple[str, ...], list[int]] = {}
            for g, group in enumerate(THESAURUS_GROUPS):
                for label in group:
                    for variant in self.variants(tuple(words(label))):
                        table.setdefault(variant, []).append(g)
            self._thesaurus = {variant: tuple(dict.fromkeys(gs)) for variant, gs in table.items()}
        return self._thesaurus

    def corpus_frequency(self, words: tuple[str, ...]) -> int:
        """How many stored papers hold these words (a word, a pair, or every pair of a longer
        sequence at least), from the related model's statistics. The model keeps no unit
        with a function word ("in-context", "model-based", "mixture of experts"): for
        those the index's own share of papers holding the words stands in, scaled to the
        stored corpus (before, they counted as held by no paper: as rare as can be)."""
        assert self.related is not None
        stems = [stem(word) for word in words]
        if not stop_stems().isdisjoint(stems):
            share = self.document_frequency(words) / max(1, len(self.papers))
            return round(share * self.related.documents)
        pairs = [f"{a} {b}" for a, b in zip(stems, stems[1:])] if len(stems) > 1 else stems
        return min((self.related.document_frequency(unit) or 0 for unit in pairs), default=0)

    def expansion(self, term: Term) -> tuple[tuple[str, ...], np.ndarray]:
        """The keyword's related units and their weights (a unit-length vector), strongest
        first: its units' associations in the related model, mixed by each unit's idf, less
        any unit that shares a stem with a spelling of the keyword."""
        ids, weights = self.expansion_ids(term)
        units = self.related.units if self.related is not None else ()
        return tuple(units[number] for number in ids.tolist()), weights

    def expansion_ids(self, term: Term) -> Expansion:
        """:meth:`expansion` with the units as the model's unit numbers (int32): compact,
        thousands of keywords keep theirs for the whole run (packed in one bytes object,
        see flows.rank.bulk.pack: the units as its numbers, the weights as its values)."""
        return unpack(self.packed_expansion(term))

    def packed_expansion(self, term: Term) -> bytes:
        """:meth:`expansion_ids` packed (cached): the weights as the values, the units as the
        numbers; empty without related units."""
        found = self._expansions.get(term.key)
        if found is None:
            found = self._expansions[term.key] = pack(*self._expand(term))
        return found

    def _expand(self, term: Term) -> Expansion:
        return expand(self.related, self.variants(term.words), lambda: self.unit_stems)

    @property
    def unit_stems(self) -> list[tuple[str, ...]]:
        """Per unit of the related model, its stems (to keep a keyword's own words out)."""
        if self._unit_stems is None:
            assert self.related is not None
            self._unit_stems = [tuple(unit.split(" ")) for unit in self.related.units]
        return self._unit_stems

    def unit_papers(self, unit: str) -> tuple[np.ndarray, np.ndarray]:
        """The papers holding a unit (a stem or "stem stem") and its weight in each paper's
        vector (idf, more in the title, over the paper's length; see flows.rank.related)."""
        assert self.related is not None
        indptr, papers, weights = self.unit_postings
        number = self.related.ids.get(unit)
        if number is None:
            return _NO_PAPERS, _NO_WEIGHTS
        start, end = indptr[number], indptr[number + 1]
        return papers[start:end], weights[start:end]

    @property
    def unit_postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per unit of the related model (CSR by unit number): the papers holding it,
        ascending, and its weight in each paper's vector (see :meth:`unit_papers`)."""
        if self._unit_postings is None:
            assert self.related is not None
            self._unit_postings = build_unit_postings(self.related, self.fields, self.paper_norms)
        return self._unit_postings

    @property
    def paper_norms(self) -> np.ndarray:
        """Per paper, the length of its vector over the related model's units."""
        if self._paper_norms is None:
            assert self.related is not None
            self._paper_norms = build_paper_norms(self.related, self.fields, len(self.papers))
        return self._paper_norms

    def spell(self, number: int, unit: str) -> str | None:
        """How the paper writes a unit (title first), or None."""
        needle = joined_needle(tuple(unit.split(" ")))
        for f, text in enumerate((self.papers[number].title, self.papers[number].abstract)):
            index = self.fields[f]
            where = (text, index.joined[number], index.starts[number], index.begins[number], index.ends[number])
            found = spellings(where, needle, unit.count(" "), True)
            if found:
                return found[0]
        return None

    def document_frequency(self, words: tuple[str, ...]) -> int:
        """How many papers hold these words (any variant) in the title or the abstract."""
        found = self._df.get(words)
        if found is None:
            hits = self.hits(Term(" ".join(words), words))
            found = self._df[words] = len(hits.title.keys() | hits.abstract.keys())
        return found

    def _part_hits(self, term: Term, part: Part) -> Hits:
        if part.kind in ("part", "neighbour"):
            return self.hits(Term(part.label, part.words, term.field))
        # The words apart need only where each unit starts: no counts of the units themselves.
        units = [tuple(self.variants(unit)) for unit in part.units]
        counts: list[dict[int, int]] = []
        for f, name in enumerate(FIELDS):
            if term.field not in (None, name):
                counts.append(EMPTY)
                continue
            index = self.fields[f]
            if len(units) == 2:
                counts.append(pairs_close_together(index, units))
                continue
            positions, offsets = index.positions()
            papers = [set((np.searchsorted(offsets, sequence_starts(positions, variants), side="right") - 1).tolist())
                      for variants in units]
            candidates = reduce(set.intersection, papers[1:], papers[0])
            needles = [tuple(map(joined_needle, variants)) for variants in units]
            counts.append({number: 1 for number in sorted(candidates)
                           if close_together(index, number, needles)})
        variants = tuple(dict.fromkeys(variant for unit in units for variant in unit))
        return Hits(counts[0], counts[1], variants)

    def match(self, term: Term, number: int) -> Match:
        """Why one paper matched one term: the fields, and the words as the paper spells them."""
        explained = self.explained(term)
        found = explained.get(number)
        if found is None:
            found = explained[self.paper_numbers[number]] = self.explain(term, self.hits(term), number)
        return found

    def explained(self, term: Term, *, graded: bool | None = False) -> dict[int, Match]:
        """The term's explanations so far (paper number → Match), for callers to fill in
        (``graded=None``: its related-terms explanations)."""
        key = (term.keyword, term.key if graded is False else f"\x00{term.key}" if graded else f"\x01{term.key}")
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = {}
        return found

    def explain_levels(self, term: Term, levels: list[tuple[str, float, Any, Hits]], number: int) -> Match:
        """Why one paper matched a keyword with graded phrases, given the level that scored
        each field (see ``flows.rank.keyword_scores.level_scores``)."""
        fields = tuple(name for name, _, _, _ in levels)
        spelled: list[str] = []
        scored: list[Part | None] = []
        for name, _, part, hits in levels:
            f = FIELDS.index(name)
            count = (hits.abstract if f else hits.title)[number]
            spelled.extend(self._spelled(number, f, hits, count))
            scored.append(part)
        return self._level_match(term, fields, spelled, scored)

    def explain_won(self, term: Term, hits: Hits, title: int, abstract: int, number: int) -> Match:
        """:meth:`explain_levels` given the level that scored each field as ranking records
        it: -1 none, 0 the keyword itself (``hits``), i the i-th of :meth:`graded`."""
        spelled: list[str] = []
        scored: list[Part | None] = []
        if title >= 0:
            part, level_hits = self.graded(term)[title - 1] if title else (None, hits)
            spelled.extend(self._spelled(number, 0, level_hits, level_hits.title[number]))
            scored.append(part)
        if abstract >= 0:
            part, level_hits = self.graded(term)[abstract - 1] if abstract else (None, hits)
            spelled.extend(self._spelled(number, 1, level_hits, level_hits.abstract[number]))
            scored.append(part)
        fields = FIELDS if len(scored) == 2 else _ONLY[0] if title >= 0 else _ONLY[1]
        return self._level_match(term, fields, spelled, scored)

    def _level_match(self, term: Term, fields: tuple[str, ...], spelled: list[str],
                     scored: list[Part | None]) -> Match:
        """The (interned) Match of the levels that scored each field (None: the keyword
        itself): ``exact`` if the keyword scored a field; ``related`` if only thesaurus
        neighbours did, named as the paper spells them (as related terms are), one name per
        idea; else ``partial``, naming the parts."""
        if scored.count(None) == len(scored):  # the keyword itself in every field: the usual case
            key = (term.keyword, fields, tuple(dict.fromkeys(spelled)), "exact", ())
            found = self._interned.get(key)
            if found is None:
                found = self._interned[key] = Match(*key)
            return found
        named = [_label(part) for part in scored if part is not None and part.kind != "neighbour"]
        neighbours = [part.label for part in scored if part is not None and part.kind == "neighbour"]
        if neighbours and len(neighbours) == len(scored):
            tier, via = "related", _one_name_each(spelled) or neighbours
        else:
            tier = "partial" if named and len(named) + len(neighbours) == len(scored) else "exact"
            via = named
        key = (term.keyword, fields, tuple(dict.fromkeys(spelled)), tier, tuple(dict.fromkeys(via)))
        found = self._interned.get(key)
        if found is None:
            found = self._interned[key] = Match(*key)
        return found

    @property
    def excerpts(self) -> Excerpts:
        """Abstract snippets by paper number, shared by every subscriber."""
        if self._excerpts is None:
            self._excerpts = Excerpts([paper.abstract for paper in self.papers])
        return self._excerpts

    def scaled_log_upvotes(self, scale: float) -> np.ndarray:
        """Paper number → scale · ln(1 + upvotes); subscribers share a few popularity settings."""
        found = self._scaled_logs.get(scale)
        if found is None:  # each product rounded as the same product of Python floats
            found = scale * np.array(self.log_upvotes, dtype=np.float64)
            found.flags.writeable = False  # shared by every subscriber with this setting
            self._scaled_logs[scale] = found
        return found

    def variants(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """The stem sequences that count as these words, the plain one first."""
        key = tuple(words)
        cached = self._variant_lists.get(key)
        if cached is not None:
            return list(cached)
        found = _variants(key, self, expand_acronyms=True)
        if len(found) > 1:
            # A sequence extending another matches only where the shorter one does.
            found = [v for v in found if not any(len(o) < len(v) and v[:len(o)] == o for o in found)]
        self._variant_lists[key] = tuple(found)
        return found

    def readings(self, word: str, expand_acronyms: bool) -> tuple[tuple[str, ...], ...]:
        """Other stem sequences one word stands for: its splits, and its acronym's long forms."""
        found = self._readings.get((word, expand_acronyms))
        if found is None:
            found = self.splits(word)
            long_forms = self.acronyms.long_forms.get(stem(word)) if expand_acronyms else None
            for long_words in sorted(long_forms) if long_forms else ():
                found += tuple(_variants(long_words, self, expand_acronyms=False))
            self._readings[word, expand_acronyms] = found
        return found

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
        base, plain = self._base(term), (stem(term.words[0]),) if len(term.words) == 1 else None
        counts, in_phrase = [], []
        for f, (index, name) in enumerate(zip(self.fields, FIELDS)):
            each = [index.counts(v) for v in variants] if term.field in (None, name) else []
            if base and each:
                each = [self._word_counts(f, v[0]).get(base, EMPTY) if v == plain and entry else entry
                        for v, entry in zip(variants, each)]
            counts.append(merged(each))
            found = [entry for variant, entry in zip(variants, each) if entry and variant in phrases]
            in_phrase.append(union(found))
        return Hits(counts[0], counts[1], variants, in_phrase[0], in_phrase[1], base=base,
                    based=plain if base and plain else ())

    def _word_counts(self, f: int, stemmed: str) -> dict[str, Mapping[int, int]]:
        found = self._words_of_stem.get((f, stemmed))
        if found is None:
            found = self._words_of_stem[f, stemmed] = word_counts(self.fields[f], self.papers, f, stemmed)
        return found

    def _base(self, term: Term) -> str:
        """For a one-word keyword whose stem is shorter than the word less its inflection
        ("adapters": adapter, stem adapt), that base: such a stem also holds other words
        ("adaptive", "adaptation") that are not the keyword. "" otherwise (and for an
        acronym, a number, or a word Snowball only uninflects: "learning", "studies")."""
        if len(term.words) != 1 or not term.words[0].isalpha():
            return ""
        word = term.words[0]
        stemmed = stem(word)
        if stemmed in self.acronyms.long_forms:
            return ""
        base = inflection_base(word)
        return base if base != inflection_base(stemmed) else ""

    def explain(self, term: Term, hits: Hits, number: int) -> Match:
        """Work out :meth:`match` (uncached), given the term's hits."""
        in_title, in_abstract = hits.title.get(number, 0), hits.abstract.get(number, 0)
        if in_title and in_abstract:
            both = self._spelled(number, 0, hits, in_title) + self._spelled(number, 1, hits, in_abstract)
            key = (term.keyword, FIELDS, tuple(dict.fromkeys(both)))
        elif in_title:
            key = (term.keyword, _ONLY[0], self._spelled(number, 0, hits, in_title))
        else:
            key = (term.keyword, _ONLY[1], self._spelled(number, 1, hits, in_abstract))
        # Papers mostly spell a keyword alike: share the (immutable) Match instead of a copy.
        found = self._interned.get(key)
        if found is None:
            found = self._interned[key] = Match(*key)
        return found

    def _spelled(self, number: int, f: int, hits: Hits, count: int) -> tuple[str, ...]:
        """How one field of the paper, holding the term's variants ``count`` times, spells them."""
        paper, index = self.papers[number], self.fields[f]
        where = (paper.abstract if f else paper.title, index.joined[number], index.starts[number],
                 index.begins[number], index.ends[number])
        if hits.base:  # the keyword's own word only (not "adaptive" for "adapters"), as spellings picks them
            found: list[str] = []
            for needle, variant in zip(hits.needles, hits.variants):
                last = len(variant) - 1
                slots = [bisect_left(where[2], at) for at in finds(where[1], needle)]
                spelled = [where[0][where[3][slot]:where[4][slot + last]] for slot in slots]
                if variant == hits.based:
                    spelled = [word for word in spelled if hits.base in BASES_OF_WORD[word]]
                found.extend(spelled[:MAX_SHOWN] if last > 1 else spelled[:1] + spelled[-1:])
            return tuple(dict.fromkeys(found))
        if len(hits.needles) == 1:
            return spellings(where, hits.needles[0], len(hits.variants[0]) - 1, count == 1)
        found = chain.from_iterable(
            spellings(where, needle, len(variant) - 1, False)
            for needle, variant in zip(hits.needles, hits.variants)
        )
        return tuple(dict.fromkeys(found))


def _starts_of(known: dict, positions: dict[str, np.ndarray], variants: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """``sequence_starts(positions, variants)``, remembered in ``known`` (one batch's units)."""
    found = known.get(variants)
    if found is None:
        found = known[variants] = sequence_starts(positions, variants)
    return found


def expansion_key(units: np.ndarray, weights: np.ndarray) -> bytes:
    """What ``PaperIndex.expansion_scores`` keys a keyword's related scores by, so keywords
    with the same related units and weights ("RL", "reinforcement learning") share them: a
    128-bit BLAKE2b digest of both arrays (equal expansions, equal keys; two different
    ones meet with probability 2⁻¹²⁸). Their bytes as the key held ≈ 450 bytes a keyword,
    ≈ 4 MB in a render process."""
    return packed_expansion_key(pack(units, weights))


def packed_expansion_key(packed: bytes) -> bytes:
    """:func:`expansion_key` of an expansion as ``PaperIndex.packed_expansion`` keeps it
    (as many float64 weights as int32 units: the lengths are unambiguous)."""
    return hashlib.blake2b(packed, digest_size=16).digest()


def _label(part: Part) -> str:
    """How an explanation names a partial match: the part, or its words apart."""
    return part.label if part.kind == "part" else " … ".join(" ".join(unit) for unit in part.units)


def build_index(papers: Sequence[Paper], *, acronyms: AcronymTable | None = None,
                related: RelatedModel | None = None) -> PaperIndex:
    """Tokenise every paper once and learn the acronyms its abstracts define; ``related``
    is the model learned from the stored corpus (:func:`flows.rank.related.learn_related`)."""
    unique: dict[str, Paper] = {}
    for paper in papers:
        unique.setdefault(paper.id, paper)
    ordered = tuple(unique.values())
    fields = (FieldIndex(), FieldIndex())
    for number, paper in enumerate(ordered):
        for index, text in zip(fields, (paper.title, paper.abstract)):
            index.add(number, *stems_and_spans(text), text)
    for index in fields:
        index.finish()
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
        related=related,
    )

def _variants(
    words: tuple[str, ...], index: PaperIndex, *, expand_acronyms: bool
) -> list[tuple[str, ...]]:
    """Stem sequences for the words: as written, joined, split, acronym ↔ long form."""
    stems = tuple(map(stem, words))
    tails: list[list[tuple[str, ...]]] = [[] for _ in words] + [[()]]
    for i in range(len(words) - 1, -1, -1):
        options: list[tuple[str, ...]] = []
        for head, after in _heads(words, stems, i, index, expand_acronyms):
            options.extend([head + tail for tail in tails[after]])
        tails[i] = list(dict.fromkeys(options))[:MAX_VARIANTS]
    return tails[0]


def _heads(
    words: tuple[str, ...], stems: tuple[str, ...], i: int, index: PaperIndex, expand_acronyms: bool
) -> list[tuple[tuple[str, ...], int]]:
    """The ways to read words[i:...]: (stems it contributes, index of the next word)."""
    heads = [((stems[i],), i + 1)]
    if i + 1 < len(words):
        joined = stem(words[i] + words[i + 1])  # "multi agent" → "multiagent"
        if joined in index.vocabulary:
            heads.append(((joined,), i + 2))
    heads.extend([(reading, i + 1) for reading in index.readings(words[i], expand_acronyms)])
    if expand_acronyms and i + 1 < len(words):
        for end in range(i + 2, len(words) + 1):
            acronyms = index._reverse_acronyms.get(stems[i:end])
            heads.extend([((acronym,), end) for acronym in sorted(acronyms)] if acronyms else ())
    return heads


def _head_words(keyword: str) -> tuple[str, ...]:
    """The words of the keyword's head unit: a part holding them ("reinforcement learning" of
    "deep reinforcement learning") names a broader subject that contains the keyword's."""
    units = keyword_units(keyword)
    return units[head_unit(units)][1] if units else ()


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    n = len(shorter)
    return 0 < n <= len(longer) and any(longer[i:i + n] == shorter for i in range(len(longer) - n + 1))


def _one_name_each(spelled: list[str]) -> list[str]:
    """Spellings without repeats (any case) and without any that another holds ("incremental
    learning" inside "Class-incremental learning")."""
    found: list[str] = []
    for name in dict.fromkeys(spelled):
        if any(holds_name(name, kept) for kept in found):
            continue
        found = [kept for kept in found if not holds_name(kept, name)] + [name]
    return found
