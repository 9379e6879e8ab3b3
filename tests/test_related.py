"""Related papers: term associations learned from the stored corpus, the calibrated tier,
its explanations, the subscriber's `related` level, and the model kept in SQLite."""

import json
import pickle
from datetime import date
from functools import cache

import pytest

from flows.corpus import Corpus, related_model
from flows.models import Paper
from flows.rank import RelatedModel, build_index, learn_related, parse_keyword, rank
from flows.rank.related import MIN_PAPERS, units_of
from flows.rank.score import PASSING_MIN
from flows.rank.text import words
from flows.rank.thesaurus import GROUPS
from flows.settings import SAMPLE_SNAPSHOT_DIR, Settings
from flows.store import Store
from flows.subscribers import Subscriber


@cache
def sample() -> tuple[Paper, ...]:
    """The bundled sample listings (186 real titles and abstracts)."""
    papers = []
    for path in sorted(SAMPLE_SNAPSHOT_DIR.glob("*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            found = item["paper"]
            papers.append(Paper(id=found["id"], title=found["title"], abstract=found["summary"],
                                listed=date(2025, 12, 12), upvotes=found.get("upvotes", 0)))
    return tuple(papers)


@cache
def model() -> RelatedModel:
    return learn_related((paper.title, paper.abstract) for paper in sample())


def reader(*keywords, exclude=(), related="near") -> Subscriber:
    return Subscriber(email="r@example.org", keywords=list(keywords), exclude=list(exclude), popularity=0,
                      max_papers=100, related=related)


def test_units_are_content_stems_and_their_adjacent_pairs():
    assert units_of("Policy gradient methods for the agents.") == {
        "polici", "gradient", "polici gradient", "agent"}  # "methods" and "for the" are boilerplate


def test_the_corpus_teaches_what_else_papers_on_a_subject_say():
    learned = model()
    assert learned.documents == len(sample())
    rl = dict(learned.neighbours("reinforc learn"))
    assert {"reward", "polici", "rl"} <= rl.keys()
    assert "reinforc" not in rl and "learn" not in rl  # never itself or a part of itself
    continual = dict(learned.neighbours("continu learn"))
    assert {"forget", "catastroph forget"} & continual.keys()
    for unit in ("reinforc learn", "continu learn", "prefer"):
        weights = [w for _, w in learned.neighbours(unit)]
        assert weights == sorted(weights, reverse=True)
        assert sum(w * w for w in weights) == pytest.approx(1.0, rel=1e-4)  # a unit-length centroid


def test_a_corpus_too_small_relates_nothing_but_still_counts():
    few = learn_related((paper.title, paper.abstract) for paper in sample()[:MIN_PAPERS - 1])
    assert few.documents == MIN_PAPERS - 1 and len(few) > 0
    assert all(not few.neighbours(unit) for unit in few.units)
    assert learn_related([]).documents == 0


def test_the_model_survives_storage_and_pickling():
    learned = model()
    for copy in (RelatedModel.from_bytes(learned.to_bytes()), pickle.loads(pickle.dumps(learned))):
        assert copy.units == learned.units and copy.documents == learned.documents
        assert copy.neighbours("reinforc learn") == learned.neighbours("reinforc learn")
        assert copy.document_frequency("reinforc learn") == learned.document_frequency("reinforc learn")


REASONING = ("LLM reasoning", "RLVR", "math reasoning")


def test_related_papers_enter_above_the_threshold_and_say_why():
    index = build_index(sample(), related=model())
    found = rank(index, reader(*REASONING, related="far"))
    related = [item for item in found if all(m.tier == "related" for m in item.matches)]
    assert related, "the corpus should relate some paper that never says the keywords"
    for item in related:
        assert item.score >= 2.0  # the "far" threshold
        for match in item.matches:
            assert match.keyword in REASONING and match.via
            text = f"{item.paper.title} {item.paper.abstract}"
            assert all(term in text for term in match.via)  # named as the paper spells them
            lowered = [term.lower() for term in match.via]
            assert not any(a != b and a in b for a in lowered for b in lowered)  # one name per idea
            assert match.explain().startswith(f"related to {match.keyword}: ")
    exact = {item.paper.id for item in rank(index, reader(*REASONING), graded=False, related="off")}
    assert exact <= {item.paper.id for item in found}  # nothing direct is lost


def test_a_keyword_named_once_in_passing_needs_related_support():
    soil = Paper(id="soil", title="Cheap sensors for soil moisture in vineyards", listed=date(2025, 12, 12),
                 abstract="We deploy cheap soil moisture sensors across three vineyards and calibrate them "
                          "against lab samples. Unlike reinforcement learning, our irrigation rule is fixed. "
                          "Readings drift with temperature, which a linear correction removes.")
    twice = Paper(id="twice", title="Cheap sensors for soil moisture in orchards", listed=date(2025, 12, 12),
                  abstract="Reinforcement learning schedules irrigation from soil moisture sensors; "
                           "the reinforcement learning agent saves water in three orchards.")
    index = build_index((*sample(), soil, twice), related=model())
    for level in ("near", "far"):
        found = {item.paper.id: item for item in rank(index, reader("reinforcement learning", related=level))}
        assert "soil" not in found  # once, in passing, among unrelated words: 1.5 < PASSING_MIN
        assert "twice" in found and found["twice"].score >= PASSING_MIN
    # without related evidence there is nothing to tell a passing mention by: it stays
    assert "soil" in {item.paper.id for item in rank(index, reader("reinforcement learning", related="off"))}
    assert "soil" in {item.paper.id for item in rank(build_index((*sample(), soil)), reader("reinforcement learning"))}


def test_a_keyword_whose_specific_word_the_corpus_barely_uses_relates_nothing():
    # The sample holds no paper on diffusion models: "diffusion" is too rare to learn from,
    # and relating `diffusion models` through "models" alone (what the whole corpus says)
    # had put a reward-model benchmark and a preference-modeling paper in the digest.
    learned = model()
    assert not learned.document_frequency("diffus") and learned.document_frequency("model")
    index = build_index(sample(), related=learned)
    for level in ("near", "far"):
        found = rank(index, reader("diffusion models", related=level))
        assert not [item for item in found if any(m.tier == "related" for m in item.matches)]
    assert not index.expansion(parse_keyword("diffusion models"))[0]
    # a keyword whose words the corpus knows is related as before
    assert index.expansion(parse_keyword("reinforcement learning"))[0]
    # and a spelling the corpus does not know (an acronym no paper writes) leaves the others
    assert index.expansion(parse_keyword("RLVR"))[0]


def test_the_levels_reach_further_in_order():
    index = build_index(sample(), related=model())
    keywords = ("deep reinforcement learning", "offline RL")
    found = {level: {item.paper.id for item in rank(index, reader(*keywords, related=level))}
             for level in ("off", "near", "far")}
    assert found["off"] <= found["near"] <= found["far"]
    assert len(found["off"]) < len(found["far"])
    off = rank(index, reader(*keywords, related="off"))
    assert all(m.tier != "related" for item in off for m in item.matches)


def test_exclusions_and_the_ledger_apply_to_related_papers():
    index = build_index(sample(), related=model())
    found = rank(index, reader(*REASONING, related="far"))
    related = [item for item in found if item.matches[0].tier == "related"]
    assert len(related) >= 2
    first, second = related[0], related[1]
    again = rank(index, reader(*REASONING, related="far"), exclude_ids={first.paper.id})
    assert first.paper.id not in {item.paper.id for item in again}
    assert second.paper.id in {item.paper.id for item in again}
    word = next(w.strip(":,") for w in second.paper.title.split() if len(w) > 6)
    excluded = rank(index, reader(*REASONING, exclude=[word], related="far"))
    assert second.paper.id not in {item.paper.id for item in excluded}


def test_without_a_model_only_the_thesaurus_relates_papers():
    index = build_index(sample())
    related = [m for item in rank(index, reader(*REASONING, related="far")) for m in item.matches
               if m.tier == "related"]
    assert related, "the sample has papers that name LLM reasoning in the thesaurus's words"
    for name in {name for m in related for name in m.via}:  # each a thesaurus phrase as the paper spells it
        assert set(index.variants(tuple(words(name)))) & set(index.thesaurus), name
    assert len(index.thesaurus) > sum(len(group) for group in GROUPS)  # variants included


def test_the_store_keeps_the_model_until_the_corpus_changes(tmp_path):
    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample()[:120])
    first = related_model(store)
    assert first.documents == 120
    signature, blob = store.related_model()
    assert signature == store.corpus_signature()
    assert related_model(store).units == first.units  # loaded, not learned again
    assert store.related_model()[1] == blob
    store.upsert_papers(sample()[120:])
    assert store.corpus_signature() != signature
    assert related_model(store).documents == len(sample())  # learned again from every paper
    corpus = Corpus.load(store, Settings(db_path=tmp_path / "p.db"), date(2025, 12, 12))
    # It carries the stored bytes, decoded on first use; shipped, the bytes travel
    assert corpus._related is None and corpus._related_blob == store.related_model()[1]
    blob = store.related_model()[1]
    assert RelatedModel.readable(blob) and not RelatedModel.readable(blob[:len(blob) // 2])
    flipped = len(blob) // 2
    assert not RelatedModel.readable(blob[:flipped] + bytes([blob[flipped] ^ 1]) + blob[flipped + 1:])
    assert corpus.related is not None and corpus.related.documents == len(sample())
    assert corpus.index(3).related is corpus.related
    shipped = pickle.loads(pickle.dumps(corpus))
    assert shipped._related is None and shipped.related.units == corpus.related.units


def test_a_change_in_the_same_second_still_changes_the_corpus_signature(tmp_path, monkeypatch):
    """The signature names the latest change to a paper; a change in the same second as the
    one the stored model was learned after must still tell the model is stale."""
    import dataclasses

    monkeypatch.setattr("flows.store._utcnow", lambda: "2026-12-04T08:00:00+00:00")  # one second
    store = Store(tmp_path / "p.db")
    papers = sample()[:60]
    store.upsert_papers(papers)
    signature = store.corpus_signature()
    edited = dataclasses.replace(papers[0], abstract=papers[0].abstract + " Revised: a new result.")
    assert store.upsert_papers([edited]) == 0  # same count of papers
    assert store.corpus_signature() != signature


def test_fetching_the_same_papers_again_keeps_the_stored_model(tmp_path, monkeypatch):
    import dataclasses

    from flows import corpus

    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample()[:60])
    monkeypatch.setattr(corpus, "_learn_elsewhere", lambda path: False)
    related_model(store)
    signature = store.corpus_signature()
    monkeypatch.setattr("flows.store._utcnow", lambda: "2099-01-01T00:00:00+00:00")  # a later run
    assert store.upsert_papers(sample()[:60]) == 0  # a rerun re-fetches the day: nothing changed
    assert store.corpus_signature() == signature
    learned = []
    monkeypatch.setattr(corpus, "learn_related", lambda texts: learned.append(1) or learn_related(texts))
    assert related_model(store).documents == 60 and not learned  # loaded, not learned again
    changed = dataclasses.replace(sample()[0], upvotes=sample()[0].upvotes + 1)
    store.upsert_papers([changed])  # a changed paper is still written
    assert store.paper(changed.id).upvotes == changed.upvotes


def test_an_unreadable_stored_model_is_learned_again(tmp_path):
    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample()[:60])
    store.save_related_model(store.corpus_signature(), b"not a model", papers=60, seconds=0.0)
    assert related_model(store).documents == 60
    assert store.related_model()[1] != b"not a model"


def test_forgetting_the_per_keyword_work_changes_no_ranking(monkeypatch):
    from flows.rank import score

    readers = [reader(*keywords, related=level) for keywords in (REASONING, ("continual learning",),
                                                                 ("deep reinforcement learning", "offline RL"))
               for level in ("near", "far")]
    expected = [rank(build_index(sample(), related=model()), r) for r in readers]
    monkeypatch.setattr(score, "QUERIES_KEPT", 2)  # forget after every second keyword list
    index = build_index(sample(), related=model())
    for _ in range(2):
        assert [rank(index, r) for r in readers] == expected
        assert len(index.queries) <= 2


def test_keeping_fewer_lists_than_keyword_work_changes_no_ranking(monkeypatch):
    from flows.rank import score

    readers = [reader(*keywords, related=level) for keywords in (REASONING, ("continual learning",),
                                                                 ("deep reinforcement learning", "offline RL"))
               for level in ("near", "far")]
    expected = [rank(build_index(sample(), related=model()), r) for r in readers]
    monkeypatch.setattr(score, "LISTS_KEPT", 2)  # the lists' own lookups: the latest two
    index = build_index(sample(), related=model())
    for _ in range(2):
        assert [rank(index, r) for r in readers] == expected
        assert len(index.queries) <= 2
    # three lists (near and far share one's lookups), looked up again in the second round as
    # only the latest two are kept; never forgotten (QUERIES_KEPT not reached)
    assert index.lists_looked_up == 6
    assert any(key.startswith("\x01") for key in index.term_scores)  # the keywords' work stays


def test_learning_runs_in_a_process_of_its_own_and_falls_back_to_this_one(tmp_path, monkeypatch):
    import dataclasses

    from flows import corpus

    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample()[:80])
    assert corpus._learn_elsewhere(store.path)  # a child process learned and stored it
    assert store.related_model()[0] == store.corpus_signature()
    learned = []
    monkeypatch.setattr(corpus, "learn_related", lambda texts: learned.append(1) or learn_related(texts))
    assert related_model(store).documents == 80 and not learned  # stored: loaded, not learned
    store.upsert_papers(sample()[80:100])
    monkeypatch.setattr(corpus, "_learn_elsewhere", lambda path: False)  # no process could start
    assert related_model(store).documents == 100 and learned == [1]


_LEARN_AND_MARK = """
import hashlib, json
from tests.test_related import model, sample, build_index
from flows.rank import Feedback
from flows.rank.feedback import marked_terms
learned = model()
index = build_index(sample(), related=learned)
paper = sample()[3]
print(hashlib.sha256(json.dumps([learned.units, learned.indices.tolist(), learned.weights.tolist(),
                                 marked_terms(index, Feedback(paper.id, "less", paper.title, paper.abstract))])
                     .encode()).hexdigest())
"""


def test_the_model_and_feedback_terms_do_not_depend_on_the_hash_seed():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    digests = {subprocess.run([sys.executable, "-c", _LEARN_AND_MARK], cwd=root, check=True, capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2")}
    assert len(digests) == 1, digests


def test_forgetting_keeps_the_work_of_the_keywords_the_latest_lists_used():
    index = build_index(sample(), related=model())
    old, latest = reader("continual learning"), reader("deep reinforcement learning")

    def kept() -> set[str]:  # term keys with graded or related scores in the index
        return {key[1:] for key in index.term_scores if key[:1] in ("\x00", "\x01")}

    rank(index, old)
    index.forget_rankings()  # "continual learning" was used since the start: kept
    assert kept() == {":continual learning"}
    rank(index, latest)
    index.forget_rankings()  # only "deep reinforcement learning" was used since the last time
    assert kept() == {":deep reinforcement learning"} and set(index._expansions) <= kept()
    assert not index.queries and not index.looked_up
    assert rank(index, old) == rank(build_index(sample(), related=model()), old)
