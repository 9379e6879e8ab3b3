"""Postings laid out as arrays (flows.rank.postings.Postings) read as the dict of dicts they replace;
PaperSets sharing one array read as their own papers."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.rank.postings import Counts, Postings

KEYS = st.one_of(st.sampled_from(["learn", "model", "agent", "rl", "x"]),
                 st.tuples(st.sampled_from(["reinforc", "languag"]), st.sampled_from(["learn", "model"])))
PAPER = st.dictionaries(KEYS, st.one_of(st.integers(1, 3), st.integers(1, 70_000)), max_size=6)


def reference(papers: list[tuple[int, dict]]) -> dict:
    """What FieldIndex kept before: key → {paper: count}, papers in the order added."""
    found: dict = {}
    for number, counts in papers:
        for key, count in counts.items():
            found.setdefault(key, {})[number] = count
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40_000), PAPER), max_size=30))
def test_postings_read_as_the_dict_of_dicts(gaps_and_papers):
    papers, number = [], -1
    for gap, counts in gaps_and_papers:  # ascending paper numbers, some past 65,535
        number += gap
        papers.append((number, counts))
    postings = Postings()
    for number, counts in papers:
        postings.add(number, Counter(counts))
    expected = reference(papers)
    assert set(postings) == set(expected) == set(postings.keys())
    assert len(postings) == len(expected)
    for key, row in expected.items():
        assert key in postings
        found = postings[key]
        assert isinstance(found, Counts) and found == row and postings.get(key) == row
        assert list(found) == list(row) and list(found.values()) == list(row.values())
        assert list(found.items()) == list(row.items()) and len(found) == len(row)
        assert set(found.keys()) == row.keys()
        for probe in {*row, 0, *(n + 1 for n in row), *(n - 1 for n in row)}:
            assert (probe in found) == (probe in row)
            assert found.get(probe) == row.get(probe) and found.get(probe, 0) == row.get(probe, 0)
            if probe in row:
                assert found[probe] == row[probe]
            else:
                with pytest.raises(KeyError):
                    found[probe]
    assert postings.get(("no", "such")) is None and ("no", "such") not in postings


def test_postings_take_no_paper_after_the_first_read():
    postings = Postings()
    postings.add(0, Counter({"learn": 2}))
    assert dict(postings["learn"].items()) == {0: 2}
    with pytest.raises(RuntimeError):
        postings.add(1, Counter({"learn": 1}))


def test_empty_postings():
    postings = Postings()
    assert len(postings) == 0 and postings.get("learn", {}) == {} and list(postings) == []


def test_word_counts_are_compact_counts_in_paper_order():
    from datetime import date

    from flows.models import Paper
    from flows.rank import build_index
    from flows.rank.postings import word_counts

    texts = ["Adapters adapt.", "Adaptive adapters and an adapter.", "Nothing here.", "Adaptation, adapters."]
    papers = [Paper(id=f"2406.{n:05d}", title="t", abstract=text, listed=date(2024, 6, 3)) for n, text in enumerate(texts)]
    index = build_index(papers)
    found = word_counts(index.fields[1], index.papers, 1, "adapt")
    assert all(isinstance(counts, Counts) for counts in found.values())
    assert {base: dict(counts.items()) for base, counts in found.items()} == {
        "adapter": {0: 1, 1: 2, 3: 1}, "adapt": {0: 1}, "adaptiv": {1: 1}, "adaptation": {3: 1}}


def test_remembered_functions_answer_as_the_function():
    from flows.rank.text import inflection_base, normalise, stem

    for function in (stem, normalise, inflection_base):
        for word in ("learning", "llms", "optimisation", "adapters", "model's", "studies"):
            assert function(word) == function.__wrapped__(word) == function(word)
    assert stem.__doc__ == stem.__wrapped__.__doc__


def test_expansion_key_is_equal_for_equal_expansions_only():
    import numpy as np

    from flows.rank.index import expansion_key

    units, weights = np.array([3, 7, 9], np.int32), np.array([0.5, 0.25, 0.125])
    assert expansion_key(units, weights) == expansion_key(units.copy(), weights.copy())
    assert len(expansion_key(units, weights)) == 16
    others = [(units[:2].copy(), weights[:2].copy()), (np.array([3, 7, 8], np.int32), weights),
              (units, np.array([0.5, 0.25, 0.5])), (np.array([7, 3, 9], np.int32), weights)]
    assert len({expansion_key(units, weights), *(expansion_key(u, w) for u, w in others)}) == 5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 70_000), max_size=12), min_size=1, max_size=6), st.integers(-2, 70_002))
def test_paper_sets_sharing_one_array_read_as_their_own_slice(groups, probe):
    from array import array

    from flows.rank.postings import PaperSet

    rows, sets, expected = array("i"), [], []
    for group in groups:  # as PaperIndex.graded_many lays them out: each set's papers ascending, end to end
        papers = sorted(set(group))
        sets.append(PaperSet(rows, len(rows), len(rows) + len(papers)))
        rows.extend(papers)
        expected.append(dict.fromkeys(papers, 1))
    for found, wanted in zip(sets, expected):
        assert list(found) == list(wanted) == found.tolist() and len(found) == len(wanted)
        for number in (probe, *wanted, *(n for other in expected for n in other)):
            assert (number in found) == (number in wanted)
            assert found.get(number) == wanted.get(number)
    assert PaperSet(array("i", [1, 4])) == {1: 1, 4: 1}
