"""Properties of ranking that must hold for any keywords, exclusions and texts."""

import json
import random
from datetime import date
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.models import Paper
from flows.rank import QueryError, build_index, parse_keyword, parse_query, rank, snippet
from flows.rank.text import spans, stems
from flows.subscribers import Subscriber

SEEDS = Path(__file__).parent / "data" / "rank" / "seed_papers.json"
# Words and phrases from the seed papers, plus spellings that exercise the language.
VOCABULARY = [
    "learning", "reinforcement learning", "RL", "LLM", "large language models", "reward model", "MoE",
    "mixture of experts", "multi-agent", "multiagent", "diffusion", "world model", "survey", "benchmark",
    "alignment", "preference", "GAN", "contrastive", "continual learning", "transformer", "reasoning",
    "Bayesian optimization", "tool", "memory", "video", "graph", "privacy", "federated", "DSI", "policy",
]
keywords = st.lists(
    st.builds(
        lambda word, field, weight: f"{field}{word}{weight}",
        st.sampled_from(VOCABULARY),
        st.sampled_from(["", "", "title:", "abstract:"]),
        st.sampled_from(["", "", "^2", "^0.5", "^10"]),
    ),
    min_size=1, max_size=6,
)
exclusions = st.lists(st.sampled_from(VOCABULARY), max_size=3)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def papers() -> tuple[Paper, ...]:
    return tuple(
        Paper(id=item["id"], title=item["title"], abstract=item["abstract"], listed=date(2024, 6, 3),
              upvotes=item["upvotes"])
        for item in json.loads(SEEDS.read_text(encoding="utf-8"))
    )


@cache
def index():
    return build_index(papers())


def reader(words, exclude=(), popularity=1.0) -> Subscriber:
    return Subscriber(email="reader@example.org", keywords=list(words), exclude=list(exclude),
                      popularity=popularity, max_papers=100)


def scores(found) -> dict[str, float]:
    return {item.paper.id: item.score for item in found}


@settings(FAST, max_examples=20)
@given(words=keywords, exclude=exclusions, seed=st.integers(0, 2**32 - 1))
def test_ranking_is_deterministic_whatever_the_order_of_the_papers(words, exclude, seed):
    shuffled = list(papers())
    random.Random(seed).shuffle(shuffled)
    first = rank(index(), reader(words, exclude))
    assert rank(index(), reader(words, exclude)) == first
    assert rank(build_index(shuffled), reader(words, exclude)) == first


@FAST
@given(words=keywords, extra=st.sampled_from(VOCABULARY), popularity=st.sampled_from([0.0, 1.0, 5.0]))
def test_adding_a_keyword_never_lowers_a_score(words, extra, popularity):
    before = scores(rank(index(), reader(words, popularity=popularity), min_score=0))
    after = scores(rank(index(), reader([*words, extra], popularity=popularity), min_score=0))
    assert before.keys() <= after.keys()
    assert all(after[key] >= before[key] - 1e-9 for key in before)


@FAST
@given(words=keywords, exclude=exclusions, delivered=st.sets(st.sampled_from([p.id for p in papers()])))
def test_an_excluded_paper_never_appears(words, exclude, delivered):
    found = {item.paper.id for item in rank(index(), reader(words, exclude), exclude_ids=delivered)}
    assert not found & delivered
    for word in exclude:
        matching = {item.paper.id for item in rank(index(), reader([word]), min_score=0)}
        assert not found & matching, word


@FAST
@given(words=keywords, popularity=st.sampled_from([0.0, 1.0, 10.0]))
def test_results_are_ordered_matched_and_above_the_minimum(words, popularity):
    found = rank(index(), reader(words, popularity=popularity))
    order = [(-item.score, -item.paper.upvotes, item.paper.id) for item in found]
    assert order == sorted(order)
    assert all(item.score >= 0.5 and item.matches for item in found)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_keyword_parses_or_raises_query_error(text):
    try:
        term = parse_keyword(text)
    except QueryError as exc:
        assert exc.keyword == text and repr(text) in str(exc)
    else:
        assert term.words and 0.1 <= term.weight <= 10


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='"^-: .,0123456789titleabsRLé\u00a0ﬁ', max_size=12), max_size=4))
def test_any_keyword_list_in_the_syntax_alphabet_parses_or_raises_query_error(texts):
    try:
        parse_query(texts)
    except QueryError as exc:
        assert exc.keyword in texts


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_spans_line_up_with_stems_for_any_text(text):
    found, (begins, ends) = stems(text), spans(text)
    assert len(found) == len(begins) == len(ends)
    assert all((stemmed is None) == (begin < 0) for stemmed, begin in zip(found, begins))


@settings(max_examples=200, deadline=None)
@given(text=st.text(), terms=st.lists(st.text(max_size=10), max_size=3), width=st.integers(10, 400))
def test_a_snippet_never_exceeds_its_width(text, terms, width):
    assert len(snippet(text, terms, width)) <= max(width, 0)


sentences = st.lists(
    st.tuples(
        st.sampled_from(["Deep", "reinforcement", "learning", "LLMs", "multi-agent", "world", "GPT-3.5"]),
        st.sampled_from([" ", " ", "-", ", ", ". ", " (", ") ", "; ", "/"]),
    ),
    min_size=2, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(sentences)
def test_adjacent_words_as_a_keyword_find_the_paper_and_highlight_its_spelling(parts):
    text = "".join(word + gap for word, gap in parts).strip()
    index = build_index([Paper(id="p", title="t", abstract=text, listed=date(2024, 6, 3))])
    for (first, gap), (second, _) in zip(parts, parts[1:]):
        if gap.strip() not in ("", "-", "/"):
            continue  # punctuation between them: not a phrase
        found = rank(index, reader([f'"{first} {second}"']), min_score=0)
        assert [item.paper.id for item in found] == ["p"], (first, second)
        for term in found[0].matches[0].terms:
            assert term in text
