"""The built-in thesaurus (flows.rank.thesaurus): a keyword's neighbours find the papers that
name its subject in other words, for less than the keyword, explained as related; never with
related papers off, never as an exclusion."""

from flows.cards import chip_label
from flows.rank import build_index, parse_keyword, parse_query, rank
from flows.rank.graded import MIN_CREDIT
from flows.rank.index import NEIGHBOUR_CREDIT
from flows.rank.thesaurus import GROUPS, GROUPS_TEXT
from tests.test_rank_graded import by_id, corpus, paper, reader

CONTINUAL = [
    paper("neighbour", "Class-incremental learning without rehearsal",
          "We study class-incremental learning and catastrophic forgetting in image classifiers."),
    paper("keyword", "Continual learning for robots", "A continual learning method for robot arms."),
    paper("other", "Incremental improvements to sorting", "We make quicksort slightly faster."),
]


def labels(keyword: str, index) -> dict[str, float]:
    term = parse_query((keyword,)).terms[0]
    return {part.label: part.credit for part, _ in index.graded(term) if part.kind == "neighbour"}


def test_a_paper_that_names_the_subject_in_other_words_comes_in_as_related():
    found = by_id(rank(build_index(corpus(*CONTINUAL)), reader("continual learning", related="near")))
    assert set(found) == {"neighbour", "keyword"}  # "incremental improvements" is no neighbour
    match = found["neighbour"].matches[0]
    # "class-incremental learning" is a neighbour of its own: "incremental learning" never
    # starts inside the compound (flows.rank.postings.HYPHENS)
    assert match.tier == "related" and match.via == ("Class-incremental learning",)
    text = CONTINUAL[0].title + " " + CONTINUAL[0].abstract
    assert match.terms and all(term in text for term in match.terms)  # highlighted as the paper spells it
    assert chip_label(match) == "related to continual learning: Class-incremental learning"
    assert found["keyword"].matches[0].tier == "exact"


def test_one_subject_written_two_ways_is_named_once():
    # "Time Series" and "time-series" are one name (words, not characters, compared): the
    # explanation said "related to time series forecasting: Time Series, time-series"
    series = paper("series", "Disentangled representations for Time Series",
                   "We learn time-series representations whose factors are disentangled.")
    match = by_id(rank(build_index(corpus(series)), reader("time series forecasting", related="near")))[
        "series"].matches[0]
    assert match.tier == "related" and len(match.via) == 1 and match.via[0].lower().replace("-", " ") == "time series"


def test_names_are_compared_as_whole_words():
    from flows.rank.text import holds_name

    assert holds_name("time series", "Time-series") and holds_name("Reinforcement", "reinforcement learning")
    assert holds_name("incremental learning", "Class-incremental learning")
    assert holds_name("chain of thought", "chain of thoughts")
    # a plain substring test had dropped "RL" after "world model", and "or" after "world"
    assert not holds_name("RL", "world model") and not holds_name("or", "world")


def test_with_related_papers_off_the_neighbours_do_not_count():
    index = build_index(corpus(*CONTINUAL))
    assert set(by_id(rank(index, reader("continual learning", related="off")))) == {"keyword"}
    # the same index and keyword, asked again with neighbours: the caches keep the two apart
    assert set(by_id(rank(index, reader("continual learning", related="near")))) == {"neighbour", "keyword"}
    assert set(by_id(rank(index, reader("continual learning", related="off")))) == {"keyword"}


def test_a_keyword_in_quotes_has_no_neighbours():
    index = build_index(corpus(
        paper("neighbour", "Lifelong learning of skills", "Lifelong learning of skills for agents."),
        paper("keyword", "Continual learning of skills", "Continual learning of skills for agents."),
    ))
    assert "neighbour" in by_id(rank(index, reader("continual learning", related="near"), min_score=0))
    assert set(by_id(rank(index, reader('"continual learning"', related="near"), min_score=0))) == {"keyword"}
    assert labels('"continual learning"', index) == {}


def test_a_neighbour_earns_less_than_the_keyword_itself():
    index = build_index(corpus(
        paper("neighbour", "Lifelong learning of skills", "Lifelong learning of skills for agents."),
        paper("keyword", "Continual learning of skills", "Continual learning of skills for agents."),
    ))
    found = by_id(rank(index, reader("continual learning", related="near"), min_score=0))
    assert found["keyword"].score > found["neighbour"].score > 0
    assert labels("continual learning", index)["lifelong learning"] == NEIGHBOUR_CREDIT < 1


def test_neighbours_leave_out_the_keyword_its_variants_and_what_contains_it():
    index = build_index(corpus(*CONTINUAL))
    assert "reward model" not in labels("reward model", index)
    assert "RLHF" in labels("reward model", index)
    # "offline RL" is "offline reinforcement learning" (built-in acronym): its own group's
    # other phrases, never its own long form
    offline = labels("offline RL", index)
    assert "batch reinforcement learning" in offline and "offline reinforcement learning" not in offline
    # a neighbour that holds the keyword matches only where the keyword does: left out
    assert "process reward model" not in labels("reward model", index)


def test_a_part_that_holds_the_head_brings_its_neighbours_for_less():
    index = build_index(corpus(paper("x", "Deep reinforcement learning", "Policy gradient methods.")))
    term = parse_query(("deep reinforcement learning",)).terms[0]
    parts = {part.label: part.credit for part, _ in index.graded(term) if part.kind == "part"}
    found = labels("deep reinforcement learning", index)
    assert found, "reinforcement learning's neighbours"
    for credit in found.values():
        assert MIN_CREDIT <= credit == round(NEIGHBOUR_CREDIT * parts["reinforcement learning"], 6)


def test_exclusions_stay_exact():
    found = by_id(rank(build_index(corpus(*CONTINUAL)),
                       reader("image classifiers", exclude=["continual learning"], related="near"), min_score=0))
    assert "neighbour" in found and "keyword" not in found


def test_every_phrase_parses_as_a_keyword_and_no_group_repeats_itself():
    assert len(GROUPS) >= 60 and all(len(group) >= 2 for group in GROUPS)
    for group in GROUPS:
        assert len(set(group)) == len(group), group
        for phrase in group:
            term = parse_keyword(phrase)
            assert term.words and not term.negated and term.field is None, phrase
    assert GROUPS_TEXT.count("\n") - 1 == len(GROUPS)  # one group a line, none dropped


def test_a_keyword_of_the_list_is_never_counted_again_as_another_ones_neighbour():
    index = build_index(corpus(
        paper("sml", "Phase transitions in networks", "Notes for scientific machine learning courses."),
        paper("pinn", "A physics-informed neural network for flows", "A physics-informed neural network for flows."),
    ))
    alone = by_id(rank(index, reader("scientific machine learning", related="near"), min_score=0))
    both = by_id(rank(index, reader("scientific machine learning", "surrogate model", related="near"), min_score=0))
    # "scientific machine learning" is a neighbour of "surrogate model", but here it is the
    # subscriber's own keyword: it scores once, as itself
    assert both["sml"].score == alone["sml"].score
    assert [m.keyword for m in both["sml"].matches] == ["scientific machine learning"]
    # a phrase that is no keyword of theirs is a neighbour of both
    assert [m.keyword for m in both["pinn"].matches] == ["scientific machine learning", "surrogate model"]
    assert both["pinn"].score > alone["pinn"].score
    # the other lists sharing these keywords keep their own levels
    assert "scientific machine learning" in labels("surrogate model", index)
