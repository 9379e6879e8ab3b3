"""Ranking on real listing text: relevance, normalisation, acronyms, explanations, trending."""

import gc
import json
import re
from datetime import date
from pathlib import Path

import pytest

from flows.models import Match, Paper
from flows.rank import (
    BUILTIN_ACRONYMS,
    AcronymFileError,
    AcronymTable,
    QueryError,
    build_index,
    learn_acronyms,
    parse_query,
    load_acronyms,
    rank,
    rank_many,
    snippet,
    trending,
)
from flows.rank.acronyms import definitions
from flows.rank.text import inflection_base, spans, stem, stems
from flows.subscribers import Subscriber

SEEDS = Path(__file__).parent / "data" / "rank" / "seed_papers.json"


def seed_papers() -> list[Paper]:
    """Real Hugging Face listing titles and abstracts (see tests/data/rank)."""
    return [
        Paper(id=item["id"], title=item["title"], abstract=item["abstract"], listed=date(2024, 6, 3),
              upvotes=item["upvotes"])
        for item in json.loads(SEEDS.read_text(encoding="utf-8"))
    ]


def paper(paper_id: str, title: str, abstract: str = "", upvotes: int = 0) -> Paper:
    return Paper(id=paper_id, title=title, abstract=abstract, listed=date(2024, 6, 3), upvotes=upvotes)


def subscriber(*keywords: str, exclude=(), popularity: float = 0.0, max_papers: int = 100) -> Subscriber:
    return Subscriber(email="reader@example.org", keywords=list(keywords), exclude=list(exclude),
                      popularity=popularity, max_papers=max_papers)


def ids(ranked) -> list[str]:
    return [item.paper.id for item in ranked]


def mentions(item: Paper, pattern: str) -> bool:
    return re.search(pattern, f"{item.title} {item.abstract}") is not None


@pytest.fixture(scope="module")
def seeds() -> list[Paper]:
    return seed_papers()


@pytest.fixture(scope="module")
def index(seeds):
    return build_index(seeds)


# --- relevance on real text -------------------------------------------------------------

RL = r"(?i)\bRL\b|reinforcement learning"


def test_reinforcement_learning_finds_only_papers_about_rl(index, seeds):
    found = rank(index, subscriber("reinforcement learning"))
    by_id = {item.id: item for item in seeds}
    assert len(found) >= 20
    assert all(mentions(by_id[paper_id], RL) for paper_id in ids(found))
    learning_only = [item.id for item in seeds if mentions(item, r"(?i)learning") and not mentions(item, RL)]
    assert learning_only and not set(learning_only) & set(ids(found))


def test_rl_papers_rank_above_papers_that_only_say_learning(index, seeds):
    found = rank(index, subscriber("learning", "reinforcement learning"))
    about_rl = [item for item in found if mentions(item.paper, r"(?i)reinforcement learning|\bRL\b") and
                re.search(r"(?i)reinforcement learning|\bRL\b", item.paper.title)]
    only_learning = [item for item in found if not mentions(item.paper, RL)]
    assert about_rl and only_learning
    assert min(item.score for item in about_rl) > max(item.score for item in only_learning)


@pytest.mark.parametrize(
    ("keywords", "exclude", "present", "absent"),
    [
        # an acronym is a whole token: "GAN" is not in "organize"/"organization", "RL" not in "world"
        (["GAN"], [], ["seed-077"], ["seed-111", "seed-112"]),
        (["RL"], [], ["seed-153", "seed-131"], ["seed-004", "seed-008", "seed-009", "seed-015"]),
        # acronym ↔ long form both ways, plurals included
        (["reinforcement learning"], [], ["seed-153"], []),  # says only "RL"
        (["MoE"], [], ["seed-163", "seed-174"], []),  # say "Mixture of Experts" in the title
        (["large language models"], [], ["seed-116", "seed-153"], []),  # say "LLMs", "LLM"
        # stems: "reward models" = "Reward Modeling" = "Reward Model"
        (["reward models"], [], ["seed-171", "seed-184", "seed-155"], []),
        # hyphen, space and joined forms
        (["multi-agent"], [], ["seed-086"], []),
        (["multiagent"], [], ["seed-086"], []),
        (["multi agent"], [], ["seed-086"], []),
        # exclusions, written either way
        (["mixture of experts", "-survey"], [], ["seed-165", "seed-174"], ["seed-163"]),
        (["mixture of experts"], ["survey"], ["seed-165", "seed-174"], ["seed-163"]),
        (["large language models"], ["title:survey"], ["seed-116"], ["seed-127", "seed-175"]),
        # field prefix
        (["title:world model"], [], ["seed-009"], []),
        (["abstract:mixture of experts"], [], ["seed-064", "seed-163"], []),
        # a learned definition: "Differentiable Search Index (DSI)" in seed-001
        (["DSI"], [], ["seed-001"], []),
    ],
)
def test_relevance_table(index, keywords, exclude, present, absent):
    found = ids(rank(index, subscriber(*keywords, exclude=exclude)))
    assert set(present) <= set(found), found
    assert not set(absent) & set(found), found


def test_title_matches_beat_abstract_matches(index):
    found = rank(index, subscriber("reward model"))
    in_title = [item for item in found if "title" in item.matches[0].fields]
    abstract_only = [item for item in found if item.matches[0].fields == ("abstract",)]
    assert in_title and abstract_only
    assert min(item.score for item in in_title) > max(item.score for item in abstract_only)


def test_a_title_prefix_ignores_abstract_mentions(index):
    found = rank(index, subscriber("title:reward model"))
    assert found and all(re.search(r"(?i)reward", item.paper.title) for item in found)
    assert all(item.matches[0].fields == ("title",) for item in found)


def test_weights_decide_which_interest_comes_first(index):
    rl_first = rank(index, subscriber("mixture of experts", "reinforcement learning^3", max_papers=5))
    moe_first = rank(index, subscriber("mixture of experts^3", "reinforcement learning", max_papers=5))
    assert all(mentions(item.paper, RL) for item in rl_first)
    assert {"seed-163", "seed-165", "seed-174"} <= set(ids(moe_first))


def test_weight_multiplies_the_score(index):
    plain = {item.paper.id: item.score for item in rank(index, subscriber("reward model"))}
    doubled = {item.paper.id: item.score for item in rank(index, subscriber("reward model^2"))}
    assert plain.keys() == doubled.keys()
    assert all(doubled[key] == pytest.approx(2 * plain[key]) for key in plain)


# --- normalisation ---------------------------------------------------------------------

def test_hyphen_space_and_joined_spellings_match_alike():
    papers = [
        paper("a", "Multi-agent coordination"),
        paper("b", "Multi agent coordination"),
        paper("c", "Multiagent coordination"),
        paper("d", "Agent coordination in multi-step tasks"),
    ]
    index = build_index(papers, acronyms=AcronymTable())
    scores = {}
    for keyword in ("multi-agent", "multi agent", "multiagent", '"Multi-Agent"'):
        found = rank(index, subscriber(keyword))
        assert ids(found)[:3] and set(ids(found)) == {"a", "b", "c"}, keyword
        scores[keyword] = {item.paper.id: item.score for item in found}
    assert len({tuple(sorted(value.items())) for value in scores.values()}) == 1


def test_plurals_and_inflections_fold():
    index = build_index([paper("a", "Scaling laws"), paper("b", "The law of scale"), paper("c", "Lawyers")])
    assert set(ids(rank(index, subscriber("scaling law")))) == {"a"}
    assert set(ids(rank(index, subscriber("law")))) == {"a", "b"}


def test_a_one_word_keyword_matches_its_own_word_not_every_word_of_its_stem():
    # Snowball stems "adapters", "adaptive" and "adaptation" alike ("adapt"): a keyword
    # matches the word it names, inflected, never another word of the stem family.
    papers = [
        paper("a", "Adapters for vision transformers", "We insert small adapter layers."),
        paper("b", "Adaptive control of robots", "An adaptive controller."),
        paper("c", "Domain adaptation for speech", "We study adaptation."),
        paper("d", "We adapt models", "Adapting and adapted models."),
        paper("e", "Lightweight modules", "Each layer gets an adapter; the adaptive rate is fixed."),
    ]
    index = build_index(papers, acronyms=AcronymTable())
    assert set(ids(rank(index, subscriber("adapters")))) == {"a", "e"}
    assert set(ids(rank(index, subscriber("adapter")))) == {"a", "e"}
    assert set(ids(rank(index, subscriber("adaptation")))) == {"c"}
    # a word that is its stem but for an inflection still stands for the whole family
    assert set(ids(rank(index, subscriber("adapt")))) == {"a", "b", "c", "d", "e"}
    found = {item.paper.id: item for item in rank(index, subscriber("adapters"))}
    # the explanation and highlights name only the keyword's own word, as the paper writes it
    assert found["e"].matches[0].terms == ("adapter",)
    assert set(found["a"].matches[0].terms) == {"Adapters", "adapter"}
    # exclusions are the same words: "-adapters" keeps the adaptive and adaptation papers
    assert set(ids(rank(index, subscriber("control", "speech", "models", exclude=["adapters"])))) == {"b", "c", "d"}


@pytest.mark.parametrize("one, other, same", [
    ("adapters", "adapter", True), ("adapter's", "adapter", True), ("studies", "study", True),
    ("studied", "studying", True), ("planned", "plan", True), ("modelling", "modeled", True),
    ("optimizing", "optimized", True), ("processes", "process", True),
    ("adapters", "adaptive", False), ("adapter", "adaptation", False), ("transformers", "transformation", False),
    ("generalization", "general", False), ("federated", "federal", False),
])
def test_inflection_base_tells_an_inflected_word_from_another_word_of_its_stem(one, other, same):
    assert (inflection_base(one) == inflection_base(other)) is same
    assert stem(one) == stem(other) or not same


def test_a_word_snowball_only_uninflects_still_matches_every_inflection():
    papers = [paper("a", "Learning to rank"), paper("b", "Learned rankers"), paper("c", "What a model learns"),
              paper("d", "Studies of ranking"), paper("e", "A study"), paper("f", "Studying it")]
    index = build_index(papers, acronyms=AcronymTable())
    assert set(ids(rank(index, subscriber("learning")))) == {"a", "b", "c"}
    assert set(ids(rank(index, subscriber("studies")))) == {"d", "e", "f"}


def test_acronyms_keep_their_long_forms_whatever_the_stem():
    papers = [paper("a", "Low-rank adaptation of language models"), paper("b", "Adaptive LoRA ranks")]
    index = build_index(papers)
    assert set(ids(rank(index, subscriber("LoRA")))) == {"a", "b"}


@pytest.mark.parametrize("short, long", [
    ("PINNs", "physics-informed neural networks"), ("GRPO", "group relative policy optimization"),
    ("MCTS", "Monte Carlo tree search"), ("MTL", "multi-task learning"), ("SGD", "stochastic gradient descent"),
])
def test_settled_acronyms_find_papers_that_never_define_them(short, long):
    """A paper that writes only the acronym (or only the long form) is found either way,
    though no abstract of the day defines it."""
    papers = [paper("a", f"Scaling {short} further"), paper("b", f"A study of {long}"), paper("c", "Unrelated")]
    index = build_index(papers)
    assert set(ids(rank(index, subscriber(short)))) == {"a", "b"}
    assert set(ids(rank(index, subscriber(long)))) == {"a", "b"}


def test_an_acronym_that_is_also_a_lowercase_word_is_not_built_in():
    """"KG" is a knowledge graph in ML writing and a kilogram everywhere: only an abstract
    that defines it makes it an acronym."""
    papers = [paper("a", "Legged robots", "A 12 kg robot walks."), paper("b", "Knowledge graphs for QA")]
    assert ids(rank(build_index(papers), subscriber("knowledge graph"))) == ["b"]


def test_acronym_plurals_fold_to_the_singular():
    index = build_index([paper("a", "Small LLMs reason"), paper("b", "One SSM to rule them")])
    assert ids(rank(index, subscriber("LLM"))) == ["a"]
    assert ids(rank(index, subscriber("SSMs"))) == ["b"]


def test_a_phrase_never_spans_a_clause_break():
    index = build_index([
        paper("a", "x", "We study reinforcement. Learning follows."),
        paper("b", "x", "We study reinforcement (learning follows)."),
        paper("c", "x", "We study reinforcement-learning."),
    ], acronyms=AcronymTable())
    assert ids(rank(index, subscriber("reinforcement learning"))) == ["c"]


def test_unicode_is_normalised_on_both_sides():
    index = build_index([paper("a", "ﬁne-tuning with ＬＯＲＡ"), paper("b", "Straße planning")])
    assert ids(rank(index, subscriber("fine-tuning"))) == ["a"]
    assert ids(rank(index, subscriber("lora"))) == ["a"]
    assert ids(rank(index, subscriber("STRASSE"))) == ["b"]


@pytest.mark.parametrize(
    "text",
    [
        "Model-based reinforcement learning (MBRL) is a sample. GPT-3.5 and e.g. this, that",
        "ﬁne-tuning ＲＬ x² ½ cost",
        "(leading) and trailing (",
        "",
        "naïve   spaces\n\nand\ttabs; done",
    ],
)
def test_spans_line_up_with_stems(text):
    found, (begins, ends) = stems(text), spans(text)
    assert len(found) == len(begins) == len(ends)
    for stemmed, begin, end in zip(found, begins, ends):
        assert (stemmed is None) == (begin == -1)
        if stemmed is not None:
            assert text[begin:end].strip() and begin < end


# --- acronyms --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sentence", "pair"),
    [
        ("Model-based reinforcement learning (MBRL) is a sample efficient technique",
         ("MBRL", "Model-based reinforcement learning")),
        ("optimization algorithms, such as Proximal Policy Optimization (PPO)",
         ("PPO", "Proximal Policy Optimization")),
        ("the most successful paradigms for self-supervised learning (SSL)",
         ("SSL", "self-supervised learning")),
        ("Augmenting large language models (LLMs) with external tools", ("LLMs", "large language models")),
        ("a new paradigm called Differentiable Search Index (DSI) has been proposed",
         ("DSI", "Differentiable Search Index")),
        ("A Survey on Mixture of Experts (MoE) models", ("MoE", "Mixture of Experts")),
        ("we improve DSI (Differentiable Search Index) models", ("DSI", "Differentiable Search Index")),
    ],
)
def test_schwartz_hearst_finds_definitions(sentence, pair):
    assert pair in definitions(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "as shown before (see Section 3) we",
        "two questions: (1) how to assign and (2) how to learn",
        "based on i) infant-inspired expectations",
        "as reported (Smith et al., 2023)",
        "we train the model (TM) jointly",  # a long form may not start with a stopword
        "results (e.g. accuracy) improve",
    ],
)
def test_schwartz_hearst_ignores_what_is_not_a_definition(sentence):
    assert definitions(sentence) == []


def test_learned_acronyms_need_a_settled_meaning():
    table = learn_acronyms([
        "continual learning (CL) is hard", "continual learning (CL) again", "contrastive learning (CL) too",
        "Direct Preference Optimization (DPO) and", "contrastive learning (CRL) here",
        "self-paced learning (SPL)", "speech processing layers (SPL)",
    ])
    assert table.long_forms["cl"] == {("continual", "learning")}
    assert "spl" not in table.long_forms  # two meanings, equally often


def test_rl_is_learned_from_the_corpus_when_no_table_defines_it(seeds):
    learned = build_index(seeds, acronyms=AcronymTable())
    assert "seed-153" in ids(rank(learned, subscriber("reinforcement learning")))  # says only "RL"
    alone = build_index([item for item in seeds if item.id == "seed-153"], acronyms=AcronymTable())
    assert rank(alone, subscriber("reinforcement learning")) == []


def test_the_builtin_table_wins_over_a_learned_meaning():
    index = build_index([
        paper("a", "x", "We tune PPO here."),
        paper("b", "x", "Our preference proxy objective (PPO) is new."),
    ])
    assert ids(rank(index, subscriber("preference proxy objective"))) == ["b"]  # not "a": PPO stays PPO


def test_load_acronyms_without_a_file_is_the_builtin_table():
    table = load_acronyms(None)
    assert len(table) == len(BUILTIN_ACRONYMS)
    assert table.long_forms["rl"] == {("reinforcement", "learning")}
    assert table.long_forms["marl"] == {("multi", "agent", "reinforcement", "learning")}


def test_the_operator_file_extends_the_table(tmp_path):
    path = tmp_path / "acronyms.csv"
    path.write_text(
        "# acronym,long form\n\nGFN,generative flow network\n"
        'KV,"key, value"\nRL , robot learning\n',
        encoding="utf-8",
    )
    table = load_acronyms(path)
    assert table.long_forms["gfn"] == {("generative", "flow", "network")}
    assert table.long_forms["kv"] == {("key", "value")}
    assert table.long_forms["rl"] == {("reinforcement", "learning"), ("robot", "learning")}
    index = build_index([paper("a", "Generative flow networks at scale"), paper("b", "GFNs")],
                        acronyms=table)
    assert set(ids(rank(index, subscriber("GFN")))) == {"a", "b"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("RL,reinforcement learning\nGRPO\n", "line 2: expected 'acronym,long form', got 1 fields"),
        ("RL,reinforcement learning,extra\n", "line 1: expected 'acronym,long form', got 3 fields"),
        ("multi agent,MA\n", "line 1: acronym 'multi agent' must be one word"),
        ("RL,RL\n", "line 1: long form 'RL' must have words other than the acronym"),
        ("RL,\n", "line 1: long form '' must have words"),
    ],
)
def test_a_bad_acronym_line_names_file_and_line(tmp_path, content, problem):
    path = tmp_path / "acronyms.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AcronymFileError) as caught:
        load_acronyms(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_a_missing_acronym_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(AcronymFileError, match="missing.csv"):
        load_acronyms(tmp_path / "missing.csv")


# --- explanations ----------------------------------------------------------------------

def test_matches_say_which_keywords_matched_where_and_how_the_paper_spells_them(index):
    found = {item.paper.id: item for item in rank(index, subscriber("reinforcement learning", "LLM", "GAN"))}
    assert found["seed-153"].matches == (
        Match("reinforcement learning", ("title", "abstract"), ("RL",)),
        Match("LLM", ("title", "abstract"), ("LLM", "LLMs")),
    )
    moe = rank(index, subscriber("MoE"))[0]
    assert moe.paper.id == "seed-163"
    assert moe.matches[0].fields == ("title", "abstract")
    assert {"Mixture of Experts", "MoE", "Mixture-of-Experts"} <= set(moe.matches[0].terms)


def test_every_highlight_term_is_in_the_paper_as_written(index):
    for item in rank(index, subscriber("learning", "reward model", "LLM", "multi-agent", "MoE")):
        for match in item.matches:
            assert match.terms
            for term in match.terms:
                assert any(term in text for text in (item.paper.title, item.paper.abstract)), term


# --- ranking mechanics -----------------------------------------------------------------

def test_delivered_papers_and_the_limit_are_respected(index):
    everything = ids(rank(index, subscriber("learning")))
    assert len(everything) > 10
    assert ids(rank(index, subscriber("learning"), limit=3)) == everything[:3]
    assert ids(rank(index, subscriber("learning", max_papers=4))) == everything[:4]
    delivered = set(everything[:5])
    assert ids(rank(index, subscriber("learning"), exclude_ids=delivered)) == everything[5:]


def test_popularity_alone_never_includes_a_paper():
    index = build_index([paper("hot", "Unrelated topic", upvotes=900), paper("on", "Diffusion", upvotes=0)])
    assert ids(rank(index, subscriber("diffusion", popularity=10))) == ["on"]


def test_popularity_reorders_equally_relevant_papers_and_zero_ignores_it():
    index = build_index([paper("a", "Diffusion", upvotes=0), paper("b", "Diffusion", upvotes=50),
                         paper("c", "Diffusion models for diffusion", upvotes=0)])
    assert ids(rank(index, subscriber("diffusion", popularity=0))) == ["c", "b", "a"]
    assert ids(rank(index, subscriber("diffusion", popularity=10)))[0] == "b"
    scores = {item.paper.id: item.score for item in rank(index, subscriber("diffusion", popularity=1))}
    assert scores["b"] - scores["a"] == pytest.approx(0.25 * 3.9318256, rel=1e-6)  # 0.25·ln(51)


def test_ties_break_by_upvotes_then_id():
    index = build_index([paper("b", "Diffusion", upvotes=1), paper("a", "Diffusion", upvotes=1),
                         paper("c", "Diffusion", upvotes=7)])
    assert ids(rank(index, subscriber("diffusion"))) == ["c", "a", "b"]


def test_the_minimum_score_drops_weak_matches():
    index = build_index([paper("a", "x", "diffusion appears once"), paper("b", "Diffusion")])
    assert ids(rank(index, subscriber("diffusion^0.3"))) == ["b"]  # 0.3 < 0.5; 0.9 ≥ 0.5
    assert ids(rank(index, subscriber("diffusion^0.3"), min_score=0.1)) == ["b", "a"]


def test_saturation_keeps_a_repetitive_abstract_below_a_title_mention():
    index = build_index([paper("spam", "x", "diffusion " * 200), paper("title", "Diffusion")])
    found = rank(index, subscriber("diffusion"))
    assert ids(found) == ["title", "spam"]
    assert found[1].score < 2.2


def test_no_keywords_no_papers(index):
    assert rank(index, Subscriber(email="t@example.org", include_trending=True)) == []


def test_rank_many_ranks_a_batch_like_rank_and_leaves_the_collector_as_it_was(index):
    readers = [
        Subscriber(email="a@example.org", keywords=["reward model"], popularity=0),
        Subscriber(email="b@example.org", keywords=["MoE", "-survey"], max_papers=2),
        Subscriber(email="c@example.org", keywords=["reward model"], popularity=0),
    ]
    delivered = {"c@example.org": {"seed-184", "seed-138"}}
    assert gc.isenabled()
    batch = rank_many(index, readers, delivered=delivered)
    assert gc.isenabled()
    assert list(batch) == ["a@example.org", "b@example.org", "c@example.org"]
    for reader in readers:
        expected = rank(index, reader, exclude_ids=delivered.get(reader.email, ()))
        assert batch[reader.email] == expected
    assert len(batch["b@example.org"]) == 2
    assert {"seed-184", "seed-138"} <= set(ids(batch["a@example.org"]))
    assert not {"seed-184", "seed-138"} & set(ids(batch["c@example.org"]))


def test_a_bad_keyword_raises_a_query_error_naming_it(index):
    # Subscriber validation rejects it first; rank still refuses one built without checks.
    reader = Subscriber.model_construct(email="t@example.org", keywords=["diffusion", "world model^99"],
                                        exclude=[], max_papers=20, popularity=1.0)
    with pytest.raises(QueryError, match="world model\\^99"):
        rank(index, reader)


def test_duplicate_paper_ids_are_indexed_once():
    index = build_index([paper("a", "Diffusion"), paper("a", "Diffusion again")])
    assert len(index) == 1 and ids(rank(index, subscriber("diffusion"))) == ["a"]


# --- trending --------------------------------------------------------------------------

def test_trending_is_the_most_upvoted_not_already_listed():
    index = build_index([paper("a", "A", upvotes=5), paper("b", "B", upvotes=9), paper("c", "C", upvotes=5),
                         paper("d", "D", upvotes=0), paper("e", "E", upvotes=2)])
    assert [p.id for p in trending(index, exclude_ids=set(), n=3)] == ["b", "a", "c"]
    assert [p.id for p in trending(index, exclude_ids={"b"}, n=3)] == ["a", "c", "e"]
    # a paper without upvotes never trends
    assert [p.id for p in trending(index, exclude_ids=set(), n=10)] == ["b", "a", "c", "e"]
    assert trending(index, exclude_ids=set(), n=0) == []


# --- snippet ---------------------------------------------------------------------------

ABSTRACT = (
    "Deep neural networks perform well on classification tasks where data streams are i.i.d. and labeled "
    "data is abundant. Challenges emerge with non-stationary training data streams such as continual "
    "learning. One powerful approach that has addressed this challenge involves pre-training of large "
    "encoders on volumes of readily available data, followed by task-specific tuning. Given a new task, "
    "however, updating the weights of these encoders is challenging as a large number of weights needs to "
    "be fine-tuned, and as a result, they forget information about the previous tasks. In the present "
    "work, we propose a model architecture to address this issue, building upon a discrete bottleneck "
    "containing pairs of separate and learnable key-value codes."
)


def test_a_short_text_is_returned_whole_with_whitespace_collapsed():
    assert snippet("A  short\n abstract.", ["short"]) == "A short abstract."


def test_the_snippet_is_centred_on_the_match_and_cut_at_words():
    text = snippet(ABSTRACT, ["key-value"], width=120)
    assert len(text) <= 120
    assert "key-value" in text and text.startswith("…") and not text.endswith("…")
    middle = snippet(ABSTRACT, ["pre-training"], width=100)
    assert middle.startswith("…") and middle.endswith("…") and "pre-training" in middle
    assert abs(middle.index("pre-training") - len(middle) / 2) < 30
    for word in middle.strip("…").split():
        assert word in ABSTRACT.split() or word.rstrip(".,") in ABSTRACT


def test_the_snippet_prefers_the_window_with_the_most_different_terms():
    text = snippet(ABSTRACT, ["data", "encoders", "weights"], width=160)
    assert "encoders" in text and "weights" in text


def test_without_a_match_the_snippet_is_the_beginning():
    text = snippet(ABSTRACT, ["quantum"], width=80)
    assert text.startswith("Deep neural networks") and text.endswith("…") and len(text) <= 80


def test_a_term_longer_than_the_snippet_still_gives_a_snippet():
    text = snippet(ABSTRACT, ["pairs of separate and learnable key-value codes"], width=20)
    assert 0 < len(text) <= 20


def test_snippet_terms_match_whole_words_only():
    text = snippet(ABSTRACT, ["data"], width=60)
    assert re.search(r"\bdata\b", text)


def test_an_acronym_and_its_long_form_in_one_list_count_a_mention_once():
    """A list naming one concept twice ("mixture of experts" and "MoE", as researchers
    write them) counts a paper that writes it, in either form, once: as the better of the
    two keywords. Summed, a single passing "mixture of experts (MoE)" scored twice and
    outranked papers that other keywords of the list match."""
    index = build_index([
        paper("passing", "A benchmark of coding questions",
              "We route questions with a mixture of experts (MoE) of three solvers and report accuracy."),
        paper("other", "Tree experts for model weights", "Gated experts read the weights of trained networks."),
        *(paper(f"f{n}", f"Filler paper {n}", "Nothing about the keywords here.") for n in range(8)),
    ])
    both = {item.paper.id: item for item in rank(index, subscriber("mixture of experts", "MoE", "title:experts"))}
    once = {item.paper.id: item for item in rank(index, subscriber("mixture of experts", "title:experts"))}
    assert both["passing"].score == once["passing"].score
    assert [m.keyword for m in both["passing"].matches] == ["mixture of experts", "MoE"]  # both still named
    assert ids(rank(index, subscriber("mixture of experts", "MoE", "title:experts")))[0] == "other"
    # the same keyword restricted to another field is another concept: its score adds
    title_too = {item.paper.id: item for item in rank(index, subscriber("experts", "title:experts"))}
    assert title_too["other"].score > {item.paper.id: item for item in rank(
        index, subscriber("experts"))}["other"].score
    # weights: the concept counts as its best-weighted keyword
    weighted = {item.paper.id: item for item in rank(index, subscriber("mixture of experts", "MoE^2"))}
    alone = {item.paper.id: item for item in rank(index, subscriber("MoE^2"))}
    assert weighted["passing"].score == alone["passing"].score


def test_a_phrase_never_starts_inside_a_compound():
    """ "world models" is not in "real-world models", "agent reinforcement learning" not in
    "multi-agent reinforcement learning", "language models" not in "vision–language models"
    (en dash): a phrase counts where it starts on a word of its own, or after a linking word
    ("text-to-image generation" is image generation). The compound itself, hyphenated or
    not, still matches, and a one-word keyword still finds its word in one."""
    index = build_index([
        paper("real", "Most real-world models are fine-tuned", "Public real-world models share ancestors."),
        paper("world", "World models for planning", "We learn world models; real-world models differ."),
        paper("marl", "Multi-agent reinforcement learning at scale", "Multi-agent reinforcement learning agents."),
        paper("vlm", "Vision–language models", "Vision–language models see and read."),
        paper("spaced", "Real world models", "A real world model of traffic."),
        paper("t2i", "Text-to-image generation with diffusion", "Text-to-image generation from prompts."),
        *(paper(f"f{n}", f"Filler paper {n}", "Nothing about the keywords here.") for n in range(6)),
    ])
    assert set(ids(rank(index, subscriber("world models")))) == {"world", "spaced"}  # words of their own there
    counts = index.hits(parse_query(["world models"]).terms[0])
    assert counts.title[1] == 1 and counts.abstract[1] == 1  # its "real-world models" is not counted
    assert 0 not in counts.title and 0 not in counts.abstract
    assert set(ids(rank(index, subscriber("real-world models")))) == {"real", "world", "spaced"}
    exact = {"graded": False, "related": "off"}  # the whole keyword only (no parts of it)
    assert ids(rank(index, subscriber("agent reinforcement learning"), **exact)) == []
    assert ids(rank(index, subscriber("multi-agent reinforcement learning"), **exact)) == ["marl"]
    assert ids(rank(index, subscriber("language models"), **exact)) == []
    assert "vlm" in ids(rank(index, subscriber("vision-language models")))
    assert "real" in ids(rank(index, subscriber("world")))  # one word: its word, wherever it is
    # after a linking word the compound's next word starts a phrase: text-to-image generation
    # is image generation
    assert ids(rank(index, subscriber("image generation"), **exact)) == ["t2i"]
