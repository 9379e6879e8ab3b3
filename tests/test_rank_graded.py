"""Graded phrase matching: parts of a multi-word keyword earn partial credit, never more than
the whole phrase, and say which part matched; exclusions stay exact."""

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.models import Paper
from flows.rank import build_index, parse_keyword, rank
from flows.rank.graded import graded_parts, keyword_units, head_unit
from flows.rank.keyword_scores import ABSTRACT_WEIGHT, PHRASE_BOOST, TITLE_WEIGHT, graded_scores, level_scores, saturate
from flows.subscribers import Subscriber

FILLER = [
    ("Graph neural networks for molecules", "We study message passing on molecular graphs and node features."),
    ("A benchmark for question answering", "We collect questions and answers from many domains for evaluation."),
    ("Diffusion models for images", "Denoising diffusion generates images from noise with a learned score."),
    ("Speech recognition at scale", "Automatic speech recognition with large acoustic encoders and decoders."),
    ("Federated training on phones", "Clients train locally and share updates without sharing their data."),
    ("Protein structure prediction", "We predict protein folds from sequences with attention."),
    ("Machine translation for rare languages", "Translation between low-resource languages with back-translation."),
    ("Code generation with language models", "Large language models write programs from descriptions."),
]


def paper(paper_id: str, title: str, abstract: str = "") -> Paper:
    return Paper(id=paper_id, title=title, abstract=abstract, listed=date(2025, 6, 13))


def corpus(*papers: Paper) -> list[Paper]:
    """The given papers among enough others (36 filler papers) for document frequencies to count."""
    filler = [paper(f"f{n}-{i}", t, a) for n in range(5) for i, (t, a) in enumerate(FILLER)]
    return [*papers, *filler]


def reader(*keywords: str, exclude=(), related="off") -> Subscriber:
    return Subscriber(email="r@example.org", keywords=list(keywords), exclude=list(exclude), popularity=0,
                      max_papers=50, related=related)


def by_id(found) -> dict:
    return {item.paper.id: item for item in found}


def test_a_paper_saying_only_part_of_the_phrase_ranks_below_the_whole_phrase():
    index = build_index(corpus(
        paper("full", "Deep reinforcement learning for robot control", "A deep reinforcement learning agent."),
        paper("part", "Reinforcement learning for robot control", "A reinforcement learning agent learns."),
        paper("acronym", "Offline RL for robot control", "We train an RL agent from logged data."),
    ))
    found = by_id(rank(index, reader("deep reinforcement learning")))
    assert {"full", "part", "acronym"} <= found.keys()
    assert found["full"].score > found["part"].score > 0
    assert found["full"].matches[0].tier == "exact" and not found["full"].matches[0].via
    match = found["part"].matches[0]
    assert match.tier == "partial" and match.via == ("reinforcement learning",)
    assert "Reinforcement learning" in match.terms  # highlighted as the paper spells it
    assert found["acronym"].matches[0].via == ("reinforcement learning",)  # "RL" is its acronym
    assert "partly: reinforcement learning" in match.explain()
    assert "deep reinforcement learning" not in {m.keyword for m in rank(
        index, reader("deep reinforcement learning"), graded=False)[0].matches} or found["full"]
    assert [item.paper.id for item in rank(index, reader("deep reinforcement learning"), graded=False)] == ["full"]


def test_a_keyword_in_quotes_matches_the_whole_phrase_only():
    index = build_index(corpus(
        paper("full", "Deep reinforcement learning for robot control", "A deep reinforcement learning agent."),
        paper("part", "Reinforcement learning for robot control", "A reinforcement learning agent learns."),
        paper("acronym", "Offline RL for robot control", "We train an RL agent from logged data."),
        paper("joined", "Deep-reinforcement-learning agents", "Agents."),
    ))
    assert {"full", "part", "acronym", "joined"} <= set(by_id(rank(index, reader("deep reinforcement learning"))))
    found = by_id(rank(index, reader('"deep reinforcement learning"')))
    assert set(found) == {"full", "joined"}  # its spellings, never its parts
    assert found["full"].matches[0].tier == "exact" and found["full"].matches[0].keyword == "deep reinforcement learning"
    # the same keyword asked for both ways in one index: the caches keep them apart
    assert "part" in by_id(rank(index, reader("deep reinforcement learning")))


def test_a_joined_compound_followed_by_another_word_earns_credit():
    index = build_index(corpus(
        paper("joined", "Multitask pretraining of speech models",  # not the thesaurus's "multitask training"
              "One multitask model serves many tasks: multitask pretraining, multitask data, one encoder."),
        paper("phrase", "Multi-task learning in practice", "Multi-task learning shares parameters."),
    ))
    found = by_id(rank(index, reader("multi-task learning")))
    assert found["phrase"].matches[0].tier == "exact"
    assert found["joined"].matches[0].tier == "partial"
    assert found["joined"].matches[0].via == ("multi-task",)
    assert "Multitask" in found["joined"].matches[0].terms
    assert found["phrase"].score > found["joined"].score


def test_the_words_apart_count_less_than_the_phrase():
    index = build_index(corpus(
        paper("apart", "Model-based offline reinforcement learning", "A model-based offline method."),
        paper("whole", "Model-based reinforcement learning", "Model-based reinforcement learning again."),
    ))
    found = by_id(rank(index, reader("model-based reinforcement learning")))
    assert found["whole"].score > found["apart"].score
    assert found["apart"].matches[0].tier == "partial"


def test_a_plain_modifier_or_a_common_head_alone_earns_nothing():
    index = build_index(corpus(
        paper("deep", "Deep networks for vision", "A deep convolutional network classifies images."),
        paper("learning", "Learning to rank", "We study learning of ranking functions."),
    ))
    found = by_id(rank(index, reader("deep reinforcement learning")))
    assert "deep" not in found and "learning" not in found
    labels = [part.label for part in graded_parts("deep reinforcement learning", lambda words: 1, 1000)]
    assert "deep" not in labels and "reinforcement learning" in labels


def test_the_head_is_last_or_before_a_linking_word():
    assert head_unit(keyword_units("deep reinforcement learning")) == 2
    assert head_unit(keyword_units("mixture of experts")) == 0
    assert [chunk for chunk, _ in keyword_units("multi-task  learning")] == ["multi-task", "learning"]
    # the head of an idiom with a linking word does not stand alone: "mixture" is not MoE
    assert not any(part.kind == "part" and part.label == "mixture"
                   for part in graded_parts("mixture of experts", lambda words: 1, 1000))


def test_a_compound_that_starts_with_a_function_word_is_a_part():
    """ "in-context" is one word of its own: a part of `in-context learning` (it was skipped
    as if it were a lone "in"); a lone linking word is still never a part's edge."""
    common = {("learning",): 500}  # a head too common to count alone
    labels = {part.label: part.kind
              for part in graded_parts("in-context learning", lambda words: common.get(words, 1), 1000)}
    assert labels == {"in-context": "part", "in-context learning": "words"}
    labels = {part.label for part in graded_parts("out-of-distribution detection", lambda words: 1, 1000)}
    assert "out-of-distribution" in labels
    labels = {part.label for part in graded_parts("mixture of experts", lambda words: 1, 1000)}
    assert not {"of experts", "mixture of"} & labels
    index = build_index(corpus(
        paper("mistakes", "Language models learn from mistakes in-context",
              "Given in-context examples of wrong answers, a model corrects itself in-context."),
        paper("whole", "In-context learning in transformers", "In-context learning emerges with scale."),
    ))
    found = by_id(rank(index, reader("in-context learning")))
    assert found["whole"].matches[0].tier == "exact"
    assert found["mistakes"].matches[0].tier == "partial"
    assert found["mistakes"].matches[0].via == ("in-context",)
    assert found["whole"].score > found["mistakes"].score


def test_a_part_never_cuts_what_a_linking_word_links():
    labels = {part.label for part in graded_parts("reinforcement learning from human feedback", lambda words: 1, 1000)}
    assert {"learning from human feedback", "reinforcement learning", "human feedback"} <= labels
    assert not {"learning from human", "reinforcement learning from human"} & labels
    labels = {part.label for part in graded_parts("mixture of experts in vision", lambda words: 1, 1000)}
    assert "mixture of experts" in labels  # ends just before the next linking word


def test_a_phrase_with_a_function_word_is_not_counted_as_held_by_no_paper():
    """The related model keeps no unit holding a function word; such a phrase's corpus
    frequency is the index's own share of papers holding it, scaled to the corpus (it was
    0: as rare as can be, which made every part of it look far less specific)."""
    from flows.rank import learn_related

    papers = corpus(*(paper(f"icl{i}", f"In-context learning study {i}", "In-context examples help.")
                      for i in range(6)))
    index = build_index(papers, related=learn_related((p.title, p.abstract) for p in papers))
    assert index.related is not None and index.related.documents == len(papers)
    assert index.corpus_frequency(("in", "context")) == index.document_frequency(("in", "context")) == 6
    assert index.corpus_frequency(("in", "context", "learning")) == 6
    assert index.corpus_frequency(("in", "context", "learning")) <= index.corpus_frequency(("in", "context"))
    assert index.corpus_frequency(("examples",)) == index.related.document_frequency("exampl") == 6


def test_too_few_papers_to_tell_a_common_word_credit_no_plain_word():
    labels = {part.label for part in graded_parts("curriculum learning", lambda words: 1, 5)}
    assert labels == {"curriculum learning"}  # only its words close together


def test_exclusions_stay_exact():
    index = build_index(corpus(
        paper("part", "Reinforcement learning for robots", "A reinforcement learning agent."),
        paper("full", "Deep reinforcement learning for robots", "A deep reinforcement learning agent."),
    ))
    found = by_id(rank(index, reader("robots", exclude=["deep reinforcement learning"])))
    assert "part" in found and "full" not in found


TEXT_WORDS = ["deep", "reinforcement", "learning", "RL", "multi-task", "multitask", "model-based", "agent",
              "world", "models", "language", "large", "offline", "policy"]
texts = st.lists(st.sampled_from(TEXT_WORDS), min_size=1, max_size=30).map(" ".join)
KEYWORDS = ["deep reinforcement learning", "multi-task learning", "model-based reinforcement learning",
            "large language models", "offline RL", "world models", "policy"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(titles=st.lists(texts, min_size=1, max_size=5), abstracts=st.lists(texts, min_size=1, max_size=5),
       keyword=st.sampled_from(KEYWORDS))
def test_partial_credit_never_exceeds_the_whole_phrase(titles, abstracts, keyword):
    papers = corpus(*(paper(f"p{n}", t, a) for n, (t, a) in enumerate(zip(titles, abstracts))))
    index = build_index(papers)
    term = parse_keyword(keyword)
    assert all(0 < part.credit < 1 for part, _ in index.graded(term))
    numbers, values, _ = graded_scores(index, term)
    for number, value in zip(numbers.tolist(), values.tolist()):
        assert value <= TITLE_WEIGHT * PHRASE_BOOST * 2.2 + ABSTRACT_WEIGHT * PHRASE_BOOST * 2.2
        for name, score, part, hits in level_scores(index, term, number):
            counts = hits.title if name == "title" else hits.abstract
            weight = TITLE_WEIGHT if name == "title" else ABSTRACT_WEIGHT
            # no level scores more than the whole phrase would with as many mentions
            assert score <= weight * PHRASE_BOOST * saturate(counts[number]) + 1e-12
            if part is not None:
                assert score < weight * PHRASE_BOOST * saturate(counts[number])


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_graded_matching_finds_everything_exact_matching_does(keyword):
    index = build_index(corpus(
        paper("a", "Deep reinforcement learning with world models", "Offline RL with a policy."),
        paper("b", "Large language models as multi-task learners", "Multitask model-based reinforcement learning."),
    ))
    exact = {item.paper.id for item in rank(index, reader(keyword), graded=False, min_score=0)}
    graded = {item.paper.id for item in rank(index, reader(keyword), min_score=0)}
    assert exact <= graded
