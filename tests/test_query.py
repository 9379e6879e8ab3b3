"""The keyword language: what parses to what, and the errors that name the keyword."""

from datetime import date

import pytest

from flows.models import Paper
from flows.rank import MAX_WEIGHT, MIN_WEIGHT, QueryError, build_index, parse_keyword, parse_query, rank
from flows.subscribers import Subscriber


@pytest.mark.parametrize(
    ("keyword", "words", "field", "weight", "negated"),
    [
        ("diffusion", ("diffusion",), None, 1.0, False),
        ("  Diffusion  ", ("diffusion",), None, 1.0, False),
        ("reinforcement learning", ("reinforcement", "learning"), None, 1.0, False),
        ('"reinforcement learning"', ("reinforcement", "learning"), None, 1.0, False),
        ("multi-agent", ("multi", "agent"), None, 1.0, False),
        ("diffusion^2", ("diffusion",), None, 2.0, False),
        ("diffusion^0.1", ("diffusion",), None, 0.1, False),
        ("diffusion^10", ("diffusion",), None, 10.0, False),
        ('"world model"^1.5', ("world", "model"), None, 1.5, False),
        ("title:diffusion", ("diffusion",), "title", 1.0, False),
        ("Title: diffusion", ("diffusion",), "title", 1.0, False),
        ('abstract:"world model"^3', ("world", "model"), "abstract", 3.0, False),
        ("-survey", ("survey",), None, 1.0, True),
        ("-title:survey", ("survey",), "title", 1.0, True),
        ('"title: a study"', ("title", "a", "study"), None, 1.0, False),
        ('"-1 loss"', ("1", "loss"), None, 1.0, False),
        ("ＲＬ", ("rl",), None, 1.0, False),  # full-width letters fold under NFKC
        ("ﬁne-tuning", ("fine", "tuning"), None, 1.0, False),  # so do ligatures
        ("Straße", ("strasse",), None, 1.0, False),  # case folding, not just lowercasing
    ],
)
def test_keywords_parse(keyword, words, field, weight, negated):
    term = parse_keyword(keyword)
    assert (term.words, term.field, term.weight, term.negated) == (words, field, weight, negated)


def test_quotes_ask_for_the_whole_phrase_only():
    quoted, plain = parse_keyword('"graph neural networks"'), parse_keyword("graph neural networks")
    assert quoted.whole and not plain.whole
    assert quoted.words == plain.words and quoted.keyword == plain.keyword
    assert quoted.key != plain.key  # scored apart: one has parts, the other not
    assert parse_keyword('title:"world model"^2').whole
    assert not parse_keyword('-"world model"').whole  # an exclusion is the whole phrase anyway
    assert parse_keyword('-"world model"').key == parse_keyword("-world model").key
    assert parse_keyword('"world model"').without_neighbours() == parse_keyword('"world model"')


def test_the_label_is_the_keyword_without_syntax():
    assert parse_keyword('title:"world   model"^2').keyword == "world model"
    assert parse_keyword("-survey").keyword == "survey"


@pytest.mark.parametrize(
    ("keyword", "problem"),
    [
        ('"reinforcement learning', "unbalanced quote"),
        ('reinforcement "learning', "unbalanced quote"),
        ('""', "empty phrase"),
        ('"   "^2', "empty phrase"),
        ("", "is empty"),
        ("-", "is empty"),
        ("title:", "is empty"),
        ("!!!", "no letters or digits"),
        ("diffusion^20", "outside the allowed 0.1 to 10"),
        ("diffusion^0.05", "outside the allowed 0.1 to 10"),
        ("diffusion^0", "outside the allowed 0.1 to 10"),
        ("diffusion^", "is not a number"),
        ("diffusion^high", "is not a number"),
        ("diffusion^-1", "is not a number"),
        ("diffusion^nan", "is not a number"),
        ("diffusion^inf", "is not a number"),
        ("author:hinton", "unknown field 'author'"),
        ('"world model" robotics', "put each keyword on its own line"),
        ("-survey^2", "no effect on an exclusion"),
    ],
)
def test_invalid_keywords_name_the_keyword_and_the_problem(keyword, problem):
    with pytest.raises(QueryError) as caught:
        parse_keyword(keyword)
    assert caught.value.keyword == keyword
    assert repr(keyword) in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(("keyword", "words"), [
    ("N:M sparsity", ("n", "m", "sparsity")),
    ("RL: exploration", ("rl", "exploration")),
    ("LLM:reasoning", ("llm", "reasoning")),
    ("-N:M sparsity", ("n", "m", "sparsity")),
])
def test_a_short_or_capital_name_before_a_colon_is_words_not_a_field(keyword, words):
    term = parse_keyword(keyword)
    assert (term.words, term.field) == (words, None)
    assert term.negated == keyword.startswith("-")


def test_a_colon_phrase_matches_papers_that_write_it():
    papers = [Paper(id="nm", title="Pruning", abstract="We study N:M sparsity for large models.",
                    listed=date(2026, 12, 1)),
              Paper(id="other", title="Sparse", abstract="N and M are chosen; sparsity follows.",
                    listed=date(2026, 12, 1))]
    found = rank(build_index(papers), Subscriber(email="a@example.com", keywords=["N:M sparsity"]))
    assert [item.paper.id for item in found] == ["nm"]


@pytest.mark.parametrize("keyword", ["author:hinton", "titel:diffusion", "Venue:ICML"])
def test_a_word_that_looks_like_a_field_name_is_still_an_unknown_field(keyword):
    with pytest.raises(QueryError, match="unknown field"):
        parse_keyword(keyword)


def test_query_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_query(["ok", "bad^99"])


def test_parse_query_reports_the_offending_keyword_among_good_ones():
    with pytest.raises(QueryError) as caught:
        parse_query(["diffusion", "world model", '"broken'])
    assert caught.value.keyword == '"broken'


def test_weight_range_is_documented_by_the_constants():
    assert (MIN_WEIGHT, MAX_WEIGHT) == (0.1, 10.0)


def test_exclusions_come_from_minus_keywords_and_the_exclude_list():
    query = parse_query(["diffusion", "-survey"], exclude=["benchmark", "-review"])
    assert [term.words for term in query.terms] == [("diffusion",)]
    assert [term.words for term in query.exclusions] == [("survey",), ("benchmark",), ("review",)]
    assert all(term.negated for term in query.exclusions)


def test_an_exclude_entry_with_a_weight_is_an_error_naming_it():
    with pytest.raises(QueryError, match="'survey\\^2'"):
        parse_query(["diffusion"], exclude=["survey^2"])


def test_duplicate_keywords_count_once():
    query = parse_query(["Diffusion", "diffusion", "diffusion^2", "title:diffusion"])
    found = [(term.keyword, term.field) for term in query.terms]
    assert found == [("Diffusion", None), ("diffusion", "title")]


def test_equal_keyword_lists_share_one_parsed_query():
    assert parse_query(["a", "b"]) is parse_query(("a", "b"))


def test_non_text_keywords_are_a_query_error():
    with pytest.raises(QueryError, match="is not text"):
        parse_query(["diffusion", 42])  # type: ignore[list-item]
