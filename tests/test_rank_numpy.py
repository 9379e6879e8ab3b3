"""The vectorised ranking (numpy relevance vector, cut, exact tie-break) against the reference.

The reference in test_rank_properties scores every paper for every keyword from the
documented formula and sorts them all; here hundreds of random subscribers, with weights,
exclusions, delivered ids, every popularity and limits from 0 to beyond the matches, must
get exactly its papers, scores, matches and snippets.
"""

import math
import random
from datetime import date

import numpy as np
import pytest

from flows.models import Paper
from flows.rank import build_index, rank, rank_many
from flows.rank.score import _relevance
from flows.bench.rank import synthetic_papers
from flows.subscribers import Subscriber
from tests.test_rank_properties import MODES, corpus_vocabulary, index, papers, random_reader, reference_rank

POPULARITIES = (0.0, 0.0, 0.5, 1.0, 2.0, 10.0)
LIMITS = (0, 1, 2, 5, None, 10_000)  # None: the subscriber's max_papers


def shown(found) -> list[tuple]:
    return [(item.paper.id, item.score, item.matches, item.snippet) for item in found]


def draw(rng: random.Random, vocabulary: list[str], ids: list[str], n: int):
    reader = random_reader(rng, vocabulary).model_copy(
        update={"email": f"r{n}@example.org", "popularity": rng.choice(POPULARITIES)}
    )
    delivered = rng.sample(ids, rng.choice([0, 0, 1, 5, 40])) + ["9999.99999"] * rng.choice([0, 1])
    return reader, (set if rng.random() < 0.5 else list)(delivered), rng.choice(LIMITS)


def check(index, rng: random.Random, count: int, graded: bool = False, neighbours: bool = False) -> int:
    ids, vocabulary, compared = [paper.id for paper in index.papers], corpus_vocabulary(), 0
    readers, histories = [], {}
    mode = {"graded": graded, "related": "near" if neighbours else "off"}  # no related model: neighbours only
    graded = {"graded": graded, "neighbours": neighbours}
    for n in range(count):
        reader, delivered, limit = draw(rng, vocabulary, ids, n)
        for min_score in (0.5, 0.0):
            expected = reference_rank(index, reader, delivered, limit=limit, min_score=min_score, **graded)
            got = rank(index, reader, exclude_ids=delivered, limit=limit, min_score=min_score, **mode)
            assert shown(got) == shown(expected), (reader.keywords, reader.exclude, limit)
            assert got == expected
            compared += len(expected)
        readers.append(reader)
        histories[reader.email] = delivered
    batch = rank_many(index, readers, delivered=histories, **mode)
    for reader in readers:
        assert shown(batch[reader.email]) == shown(
            reference_rank(index, reader, histories[reader.email], **graded))
    return compared


@MODES
def test_rank_equals_the_reference_for_random_subscribers_on_the_seed_papers(graded, neighbours):
    assert check(index(), random.Random(1), 300, graded, neighbours) > 1000  # enough papers compared to mean something


@MODES
def test_rank_equals_the_reference_where_ties_and_upvotes_crowd_the_cut(graded, neighbours):
    seeds = [{"title": p.title, "abstract": p.abstract, "upvotes": p.upvotes} for p in papers()]
    index = build_index(synthetic_papers(seeds, 300, random.Random(3)))
    assert check(index, random.Random(2), 60, graded, neighbours) > 500


def test_limits_at_the_edges():
    reader = Subscriber(email="a@example.org", keywords=["learning", "LLM"], popularity=1.0, max_papers=3)
    everything = reference_rank(index(), reader, limit=10_000)
    assert len(everything) > 3
    assert rank(index(), reader, limit=0) == []
    assert rank(index(), reader, limit=1) == everything[:1]
    assert rank(index(), reader) == everything[:3]
    assert rank(index(), reader, limit=10_000) == everything


def test_a_long_delivered_history_is_excluded_like_a_short_one():
    reader = Subscriber(email="a@example.org", keywords=["learning"], max_papers=100)
    matched = [item.paper.id for item in rank(index(), reader)]
    old = [f"2301.{n:05d}" for n in range(5000)]  # more ids than matched papers
    for history in (matched[::2], [*old, *matched[::2]], set(old) | set(matched[::2])):
        found = [item.paper.id for item in rank(index(), reader, exclude_ids=history)]
        assert found == matched[1::2]


def test_upvotes_never_include_an_unmatched_paper():
    listed = [Paper(id=f"p{n}", title=f"Paper {n}", abstract="Nothing to see.", listed=date(2024, 6, 3),
                    upvotes=500) for n in range(5)]
    listed.append(Paper(id="hit", title="Diffusion", abstract="x", listed=date(2024, 6, 3), upvotes=0))
    reader = Subscriber(email="a@example.org", keywords=["diffusion"], popularity=10.0)
    found = rank(build_index(listed), reader, min_score=0.0)
    assert [item.paper.id for item in found] == ["hit"]
    assert found[0].score == 3.0


@pytest.mark.parametrize("keywords", [["x"], ["x", "y z"]])
def test_an_empty_day_ranks_nothing(keywords):
    reader = Subscriber(email="a@example.org", keywords=keywords, exclude=["w"], popularity=2.0)
    assert rank(build_index([]), reader, exclude_ids={"2406.00001"}) == []


def test_relevance_sums_terms_in_query_order_bit_for_bit():
    rng = np.random.default_rng(5)
    terms = []
    for _ in range(8):
        numbers = rng.choice(50, size=int(rng.integers(0, 30)), replace=False).astype(np.intp)
        terms.append((numbers, rng.uniform(0.1, 7.0, numbers.size) * rng.choice([0.1, 1.0, 3.0])))
    expected = [0.0] * 50
    for numbers, scores in terms:
        for number, score in zip(numbers.tolist(), scores.tolist()):
            expected[number] += score  # left to right, as the reference adds
    found = _relevance(50, tuple((*term, None, None, None, None) for term in terms))
    assert found.tolist() == expected
    assert _relevance(50, ((*terms[1], None, None, None, None),)).tolist() == [
        dict(zip(terms[1][0].tolist(), terms[1][1].tolist())).get(n, 0.0) for n in range(50)]


@pytest.mark.parametrize("popularity", [0.0, 1.0, 10.0])
def test_scores_are_the_documented_sum_rounded(popularity):
    reader = Subscriber(email="a@example.org", keywords=["reinforcement learning^2", "LLM", "title:agent"],
                        popularity=popularity, max_papers=50)
    found = rank(index(), reader)
    assert found
    for item in found:
        bonus = popularity * 0.25 * math.log1p(item.paper.upvotes)
        assert item.score >= 0.5 and item.score == round(item.score, 6)
        assert item.score - bonus > 0  # a keyword matched: upvotes alone never include a paper
