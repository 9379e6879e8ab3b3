"""The evaluation (``make eval``): its metrics on hand-worked cases, the judged set's
completeness, the FTS5 BM25 baseline on a tiny corpus, and a floor under the product's
default ranker on the project's own judged set."""

import json
import re
from datetime import date
from pathlib import Path

import pytest

from flows.bench.eval import (
    DEFAULT_SET,
    DIGEST_SIZE,
    FORMAT,
    RANKERS,
    JudgedSetError,
    digest_precision,
    digest_recall,
    evaluate,
    load_judged_set,
    main,
    ndcg_at,
    rank_bm25,
    rank_exact,
    rank_new,
)
from flows.models import Paper
from flows.rank import parse_query
from flows.store import FtsPhrase, FullTextIndex
from flows.subscribers import Subscriber

ROOT = Path(__file__).resolve().parents[1]

# Floors for the product's default ranker ("new") on tests/data/eval/judged.json, measured
# 2026-12-04 with graded phrases and related papers (near), after one-word keywords stopped
# matching the other words of their Snowball stem ("adapters" no longer matches "adaptive"
# or "adaptation"): mean nDCG@10 0.896, precision 0.824, recall 0.689, worst profile
# prompting at nDCG@10 0.728, rounded down to two decimals. (Before that change: 0.896,
# 0.780, 0.700; the recall floor came down from 0.69 to 0.68 with it, deliberately: the
# one relevant paper lost, in efficient-finetuning, had matched "adapters" only through
# the word "adaptation", the same accident that put 13 irrelevant papers in that digest.)
# The exact-match ranker: 0.813, 0.851, 0.600, worst scientific-ml at 0.215 (0.816, 0.792,
# 0.610 before that change, which applies to exact matching too).
# Raised 2026-12-04 with the built-in thesaurus (flows/rank/thesaurus.py): 0.913, 0.840,
# 0.752, worst scientific-ml at 0.763. Then a keyword named once in passing needs related
# support (score.PASSING_MIN): 0.913, 0.869, 0.747; the recall floor came down from 0.75
# to 0.74 with it, deliberately: the digests lost 5 papers that matched a keyword once in
# the abstract among unrelated words, 4 of them graded 0 (precision +0.029) and one graded
# 1 (prompting: a survey of LLM reasoning that names in-context learning once).
# Raised 2026-12-04 (evening) when a compound starting with a function word ("in-context")
# became a graded part: 0.916, 0.870, 0.756, worst scientific-ml at 0.763.
# Raised 2026-12-04 (night) when keywords of one concept ("mixture of experts", "MoE")
# count a paper once, as the better of them, not summed: 0.917, 0.880, 0.756. Then a
# phrase stopped starting inside a compound ("world models" in "real-world models"):
# 0.917, 0.887, 0.756.
# Raise them as the ranker improves; never lower them to make a change pass.
FLOOR_MEAN_NDCG10 = 0.915
FLOOR_MEAN_PRECISION = 0.88
FLOOR_MEAN_RECALL = 0.75
FLOOR_WORST_NDCG10 = 0.76


# -- metrics, worked by hand ------------------------------------------------------------------


def test_ndcg_uses_graded_gains_and_the_judged_ideal():
    grades = {"a": 2, "b": 1, "c": 0, "d": 2}
    # DCG of c, a, b = 0/log2(2) + 2/log2(3) + 1/log2(4) = 1.2618595 + 0.5 = 1.7618595
    # ideal: 2, 2, 1, 0 (d is judged relevant though the ranker never returned it)
    #      = 2/1 + 2/log2(3) + 1/log2(4) = 3.7618595
    assert ndcg_at(["c", "a", "b"], grades) == pytest.approx(1.7618595 / 3.7618595)
    assert ndcg_at(["a", "d", "b", "c"], grades) == pytest.approx(1.0)
    assert ndcg_at(["d", "a", "b"], grades) == pytest.approx(1.0)  # ties among 2s do not matter


def test_ndcg_rewards_a_2_above_a_1():
    grades = {"two": 2, "one": 1}
    better, worse = ndcg_at(["two", "one"], grades), ndcg_at(["one", "two"], grades)
    assert better == pytest.approx(1.0)
    # 1/1 + 2/log2(3) = 2.2618595 over the ideal 2/1 + 1/log2(3) = 2.6309298
    assert worse == pytest.approx(2.2618595 / 2.6309298)


def test_ndcg_counts_only_the_first_k_positions():
    grades = {f"p{n}": 0 for n in range(12)} | {"late": 2}
    ranked = [f"p{n}" for n in range(10)] + ["late"]
    assert ndcg_at(ranked, grades, k=10) == 0.0
    # position 11 is discounted by log2(12) = 3.5849625; the ideal is 2 at position 1
    assert ndcg_at(ranked, grades, k=11) == pytest.approx((2 / 3.5849625) / 2)


def test_ndcg_edge_cases():
    assert ndcg_at([], {"a": 0, "b": 0}) == 1.0  # nothing relevant: nothing to miss
    assert ndcg_at(["a"], {"a": 0, "b": 0}) == 1.0
    assert ndcg_at([], {"a": 1}) == 0.0  # relevant papers exist, none returned
    assert ndcg_at(["unjudged", "a"], {"a": 2}) == pytest.approx(2 / 1.5849625 / 2)  # unjudged counts 0


def test_precision_is_the_relevant_share_of_the_digest():
    grades = {"a": 2, "b": 1, "c": 0, "d": 2, "e": 0}
    assert digest_precision(["a", "b", "c", "d"], grades) == 0.75  # a grade of 1 is relevant
    assert digest_precision(["c", "e"], grades) == 0.0
    assert digest_precision(["a"], grades) == 1.0  # fewer than 20 returned: over what was returned
    assert digest_precision([], grades) == 1.0  # an empty digest holds nothing irrelevant


def test_recall_over_the_relevant_papers_a_digest_can_hold():
    grades = {f"r{n}": 1 for n in range(5)} | {"x": 0}
    assert digest_recall(["r0", "x", "r1", "r2"], grades) == pytest.approx(3 / 5)
    assert digest_recall([], grades) == 0.0
    many = {f"r{n}": 2 for n in range(30)}
    digest = [f"r{n}" for n in range(DIGEST_SIZE)]
    assert digest_recall(digest, many) == 1.0  # 30 relevant, a 20-paper digest full of them
    assert digest_recall(digest[:10], many) == 0.5  # fewer than 20 returned
    assert digest_recall(digest + ["r25"], many) == 1.0  # only the first 20 count
    assert digest_recall(["x"], {"x": 0}) == 1.0  # nothing relevant: nothing to miss


# -- the judged set ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw():
    return json.loads(DEFAULT_SET.read_text(encoding="utf-8"))


def test_judged_set_is_in_the_repository_and_says_how_it_was_made(raw):
    assert DEFAULT_SET == ROOT / "tests" / "data" / "eval" / "judged.json"
    assert raw["format"] == FORMAT
    assert date.fromisoformat(raw["created"])
    assert "seeds" in raw["method"]["pool"] and "intent" in raw["method"]["grading"]
    assert raw["method"]["relevant"] == "grade >= 1"


def test_every_paper_is_graded_for_every_profile(raw):
    profiles = [p["id"] for p in raw["profiles"]]
    assert len(profiles) == len(set(profiles)) >= 8
    assert 180 <= len(raw["papers"]) <= 260
    for paper in raw["papers"]:
        assert paper["title"].strip() and len(paper["abstract"]) > 200, paper["id"]
        assert sorted(paper["grades"]) == sorted(profiles), paper["id"]
        assert all(type(g) is int and g in (0, 1, 2) for g in paper["grades"].values()), paper["id"]
    titles = [" ".join(p["title"].split()).casefold() for p in raw["papers"]]
    assert len(set(titles)) == len(titles)
    assert len({p["id"] for p in raw["papers"]}) == len(raw["papers"])


def test_profiles_read_like_researchers_keywords(raw):
    for profile in raw["profiles"]:
        keywords = [k for k in profile["keywords"] if not k.startswith("-")]
        assert 2 <= len(keywords) <= 5, profile["id"]
        assert len(profile["intent"].split()) >= 8 and profile["intent"].endswith("."), profile["id"]
        # the product's own validation: every keyword parses in the ranking language
        Subscriber(email="eval@example.org", keywords=profile["keywords"], exclude=profile["exclude"])
    with_exclusions = [p for p in raw["profiles"]
                       if p["exclude"] or any(k.startswith("-") for k in p["keywords"])]
    with_acronyms = [p for p in raw["profiles"] if any(re.search(r"\b[A-Z]{2,}", k) for k in p["keywords"])]
    assert len(with_exclusions) >= 2 and len(with_acronyms) >= 3


def test_each_profile_has_a_realistic_number_of_relevant_papers(raw):
    for profile in raw["profiles"]:
        relevant = sum(1 for p in raw["papers"] if p["grades"][profile["id"]] >= 1)
        clearly = sum(1 for p in raw["papers"] if p["grades"][profile["id"]] == 2)
        assert 4 <= relevant <= 35, (profile["id"], relevant)
        assert clearly >= 3, profile["id"]


def test_the_loader_reads_the_set(raw):
    judged = load_judged_set(DEFAULT_SET)
    assert [p.id for p in judged.profiles] == [p["id"] for p in raw["profiles"]]
    assert len(judged.papers) == len(raw["papers"])
    first = raw["papers"][0]
    assert judged.grades[raw["profiles"][0]["id"]][first["id"]] == first["grades"][raw["profiles"][0]["id"]]
    assert judged.papers[0].upvotes == first["upvotes"]


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "set.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def tiny_set() -> dict:
    return {
        "format": FORMAT, "name": "tiny",
        "profiles": [
            {"id": "wm", "intent": "World models for control.", "keywords": ["world model", "MBRL"],
             "exclude": ["survey"]},
            {"id": "moe", "intent": "Mixture-of-experts layers.", "keywords": ["title:experts"], "exclude": []},
        ],
        "papers": [
            {"id": "p1", "title": "Learning world models for robot control",
             "abstract": "We learn a world model of the dynamics and plan with it.", "upvotes": 3,
             "grades": {"wm": 2, "moe": 0}},
            {"id": "p2", "title": "A survey of world models", "abstract": "We survey world models.",
             "grades": {"wm": 1, "moe": 0}},
            {"id": "p3", "title": "Sparse experts at scale", "abstract": "Routing tokens to experts in a world.",
             "grades": {"wm": 0, "moe": 2}},
            {"id": "p4", "title": "Model-based reinforcement learning without a world",
             "abstract": "Planning with a learned dynamics model.", "published": "2025-06-01",
             "grades": {"wm": 2, "moe": 0}},
        ],
    }


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.update(format="v0"), "format"),
    (lambda d: d["papers"][0]["grades"].update(moe=3), "paper 'p1': grade for profile 'moe' is 3"),
    (lambda d: d["papers"][0]["grades"].update(moe=True), "grade for profile 'moe' is True"),
    (lambda d: d["papers"][0]["grades"].update(other=1), "unknown profiles: other"),
    (lambda d: d["papers"][2].update(id="p1"), "paper 'p1': the id is used twice"),
    (lambda d: d["papers"][2].update(published="yesterday"), "paper 'p3': field 'published'"),
    (lambda d: d["papers"][2].update(upvotes=-1), "field 'upvotes'"),
    (lambda d: d["papers"][2].pop("abstract"), "paper 'p3': field 'abstract'"),
    (lambda d: d["profiles"][0].update(keywords=['"world model']), "profile 'wm': keyword"),
    (lambda d: d["profiles"][0].update(keywords=["-survey"]), "no keyword that is not an exclusion"),
    (lambda d: d["profiles"][1].update(id="wm"), "profile 'wm': the id is used twice"),
    (lambda d: d["profiles"][1].pop("intent"), "profile 'moe': field 'intent'"),
    (lambda d: d.update(papers=[]), "field 'papers'"),
])
def test_a_broken_set_is_a_clear_error(tmp_path, breakage, message):
    doc = tiny_set()
    breakage(doc)
    with pytest.raises(JudgedSetError, match=re.escape(message)):
        load_judged_set(_write(tmp_path, doc))


def test_a_paper_left_ungraded_for_a_profile_counts_as_not_relevant_and_is_said(tmp_path, capsys):
    doc = tiny_set()
    doc["papers"][1]["grades"].pop("moe")  # graded profile by profile: p2 never judged for moe
    doc["papers"][3]["grades"] = {}
    path = _write(tmp_path, doc)
    judged = load_judged_set(path)
    assert judged.ungraded == 3
    assert judged.grades["moe"]["p2"] == 0 and judged.grades["wm"]["p4"] == 0
    assert judged.relevant("wm") == 2  # p1 and p2; p4 (graded 2 before) no longer counts
    assert main(["--set", str(path), "--out", str(tmp_path / "out"), "--rankers", "exact"]) == 0
    out = capsys.readouterr().out
    assert f"note: 3 of 8 (paper, profile) pairs have no grade in {path}: counted as 0 (not relevant)" in out
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["set"]["ungraded"] == 3
    judged = load_judged_set(_write(tmp_path, tiny_set()))
    assert judged.ungraded == 0


def test_a_missing_or_garbled_file_is_a_clear_error(tmp_path):
    with pytest.raises(JudgedSetError, match="no such file"):
        load_judged_set(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(JudgedSetError, match="bad.json: not valid JSON"):
        load_judged_set(bad)
    bad.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(JudgedSetError, match="bad.json"):
        load_judged_set(bad)


# -- the FTS5 BM25 baseline -------------------------------------------------------------------


def paper(pid: str, title: str, abstract: str = "") -> Paper:
    return Paper(id=pid, title=title, abstract=abstract, listed=date(2025, 6, 13))


CORPUS = [
    paper("a", "World models for control", "We learn world models and plan in them."),
    paper("b", "A survey of world models", "A survey."),
    paper("c", "Models of the world economy", "The world and its models."),  # words, never the phrase
    paper("d", "Multi-task learning at scale", "Sharing experts."),
    paper("e", "Experts everywhere", 'Quoted "world model" text and a mixture of experts.'),
]


def test_fts_phrases_are_adjacent_words_with_stemming():
    with FullTextIndex(CORPUS) as index:
        assert set(index.search([FtsPhrase("world model")])) == {"a", "b", "e"}  # "models" stems to "model"
        assert index.search([FtsPhrase("multi task learning")]) == ["d"]  # the hyphen splits words
        assert index.search([FtsPhrase("economy")]) == ["c"]


def test_fts_ors_keywords_nots_exclusions_and_keeps_fields():
    with FullTextIndex(CORPUS) as index:
        assert set(index.search([FtsPhrase("world model"), FtsPhrase("multi task")])) == {"a", "b", "d", "e"}
        assert set(index.search([FtsPhrase("world model")], [FtsPhrase("survey")])) == {"a", "e"}
        assert index.search([FtsPhrase("experts", "title")]) == ["e"]
        assert set(index.search([FtsPhrase("experts", "abstract")])) == {"d", "e"}
        with pytest.raises(ValueError, match="unknown field 'authors'"):
            index.search([FtsPhrase("x", "authors")])


def test_fts_orders_by_bm25_and_limits():
    with FullTextIndex(CORPUS) as index:
        ranked = index.search([FtsPhrase("world model")])
        assert ranked[0] == "a"  # the phrase twice in a short paper
        assert index.search([FtsPhrase("world model")], limit=1) == ["a"]


def test_fts_text_is_never_query_syntax():
    with FullTextIndex(CORPUS) as index:
        assert index.search([FtsPhrase('world" OR "economy')]) == []  # quotes stay text
        assert index.search([FtsPhrase("NOT")]) == []
        assert index.search([FtsPhrase("--- !!")]) == []  # no word: left out, nothing to find
        assert index.search([]) == []
        assert set(index.search([FtsPhrase("world model")], [FtsPhrase("...")])) == {"a", "b", "e"}


def test_bm25_ranker_reads_the_keyword_language(tmp_path):
    judged = load_judged_set(_write(tmp_path, tiny_set()))
    digests = rank_bm25(judged.papers, judged.profiles)
    assert set(digests["wm"]) == {"p1"}  # "survey" excluded; the plain baseline knows no MBRL
    assert digests["moe"] == ["p3"]  # title:experts, not the abstract's "experts"


def test_product_rankers_give_the_digest_the_product_would_send(tmp_path):
    judged = load_judged_set(_write(tmp_path, tiny_set()))
    for ranker in (rank_exact, rank_new):
        digests = ranker(judged.papers, judged.profiles)
        assert set(digests["wm"]) == {"p1", "p4"}  # MBRL's long form; the survey excluded
        assert digests["moe"] == ["p3"]


# -- the evaluation on the project's set ------------------------------------------------------


@pytest.fixture(scope="module")
def results():
    return evaluate(load_judged_set(DEFAULT_SET))


def test_three_rankers_side_by_side(results):
    judged = load_judged_set(DEFAULT_SET)
    assert list(results) == list(RANKERS) == ["bm25", "exact", "new"]
    for name, result in results.items():
        assert set(result["profiles"]) == {p.id for p in judged.profiles}
        for profile in judged.profiles:
            scored = result["profiles"][profile.id]
            assert len(scored["digest"]) == scored["returned"] <= DIGEST_SIZE
            assert 0 <= scored["ndcg10"] <= 1 and 0 <= scored["precision"] <= 1 and 0 <= scored["recall"] <= 1
        worst = result["profiles"][result["worst"]]["ndcg10"]
        assert worst == min(p["ndcg10"] for p in result["profiles"].values())


def test_digests_keep_the_exclusions(results):
    judged = load_judged_set(DEFAULT_SET)
    by_id = {p.id: p for p in judged.papers}
    for name in ("bm25", "exact", "new"):
        for pid in results[name]["profiles"]["rlhf-reward-models"]["digest"]:
            assert "survey" not in (by_id[pid].title + " " + by_id[pid].abstract).lower(), (name, pid)


def test_new_ranker_stays_at_or_above_its_floors(results):
    new = results["new"]
    assert new["mean"]["ndcg10"] >= FLOOR_MEAN_NDCG10
    assert new["mean"]["precision"] >= FLOOR_MEAN_PRECISION
    assert new["mean"]["recall"] >= FLOOR_MEAN_RECALL
    assert new["profiles"][new["worst"]]["ndcg10"] >= FLOOR_WORST_NDCG10


def test_the_exact_ranker_is_the_ranking_before_issue_11(results):
    # graded phrases off, related papers off: measured before they existed (0.816, 0.792, 0.610),
    # and again since one-word keywords match only their own word, not every word of their stem
    # (0.813, 0.851, 0.600), and since a phrase never starts inside a compound ("world models"
    # is not in "real-world models": model-based-rl precision 0.71 -> 0.83)
    exact = results["exact"]
    assert round(exact["mean"]["ndcg10"], 3) == 0.813
    assert round(exact["mean"]["precision"], 3) == 0.861
    assert round(exact["mean"]["recall"], 3) == 0.600
    assert exact["worst"] == "scientific-ml"


def test_command_prints_the_table_and_writes_json(tmp_path, capsys):
    assert main(["--set", str(_write(tmp_path, tiny_set())), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    for text in ("bm25", "exact", "new", "nDCG10", "mean", "worst profile, new:", "relevant = grade >= 1"):
        assert text in printed
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert written["set"]["profiles"]["wm"]["relevant"] == 3
    assert written["rankers"]["new"]["profiles"]["wm"]["recall"] == pytest.approx(2 / 3)
    assert set(written["rankers"]) == {"bm25", "exact", "new"}


def test_command_rejects_a_bad_set_or_ranker(tmp_path, capsys):
    assert main(["--set", str(tmp_path / "absent.json"), "--out", str(tmp_path)]) == 2
    assert "absent.json: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rankers", "bm25,magic"])
    assert main(["--set", str(_write(tmp_path, tiny_set())), "--out", str(tmp_path), "--rankers", "bm25"]) == 0
    assert set(json.loads((tmp_path / "eval.json").read_text())["rankers"]) == {"bm25"}


def test_make_eval_runs_the_module_and_takes_a_set():
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^eval: \$\(STAMP\)\n\t(.+)$", makefile, re.M)
    assert target and "-m flows.bench.eval" in target[1] and "--set" in target[1] and "EVAL_SET" in target[1]


def test_parse_query_is_what_the_baseline_translates():
    # the baseline reuses the product's parser, so quoting and exclusions mean the same to both
    query = parse_query(['title:"world model"^2', "-survey"], ["LLM"])
    assert [(t.words, t.field) for t in query.terms] == [(("world", "model"), "title")]
    assert [t.words for t in query.exclusions] == [("survey",), ("llm",)]
