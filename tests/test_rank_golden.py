"""The ranking's output, pinned: optimising the ranker must not change a single digest.

``tests/data/rank/golden.json`` holds what the default ranking (graded phrases, related
papers, feedback) returned when it was recorded:

- on the judged set (tests/data/eval/judged.json, its papers as the stored corpus), every
  profile's full ranking at the levels ``near``, ``far`` and ``off`` and with feedback:
  ids, scores, explanations and a hash of each snippet;
- on a seeded bench-like day (1,500 papers recombined from the judged set's sentences,
  450 subscribers drawn as ``flows.bench.rank`` draws them, with related levels, delivered
  papers and feedback), every digest through ``rank_many``: paper numbers, scores, and a
  hash of the explanations and snippets.

A change meant to change rankings (a relevance improvement) records it again, and says so
in its commit: ``.venv/bin/python -m tests.test_rank_golden --write``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from functools import cache
from pathlib import Path

import pytest

from flows.bench.eval import DEFAULT_SET, load_judged_set
from flows.bench.rank import keyword_pool, synthetic_papers, synthetic_subscribers
from flows.rank import Feedback, build_index, learn_related, rank, rank_many
from flows.subscribers import Subscriber

GOLDEN = Path(__file__).resolve().parent / "data" / "rank" / "golden.json"
DAY_PAPERS = 1500
PER_DISTRIBUTION = 150
SEED = 7
SCORE_TOLERANCE = 1e-6  # scores are reported rounded to 6 decimals


def _hash(text) -> str:
    return hashlib.sha256(json.dumps(text, ensure_ascii=False).encode()).hexdigest()[:16]


def _matches(found) -> list:
    return [[m.keyword, list(m.fields), list(m.terms), m.tier, list(m.via)] for m in found.matches]


def _feedback(papers, ranked_ids: list[str]) -> tuple[Feedback, ...]:
    """Liked the profile's best paper, disliked its fifth (when it has them)."""
    by_id = {paper.id: paper for paper in papers}
    items = []
    for position, verdict in ((0, "more"), (4, "less")):
        if len(ranked_ids) > position:
            paper = by_id[ranked_ids[position]]
            items.append(Feedback(paper.id, verdict, paper.title, paper.abstract))
    return tuple(items)


def judged_rankings() -> dict:
    judged = load_judged_set(DEFAULT_SET)
    papers = judged.papers
    index = build_index(papers, related=learn_related((p.title, p.abstract) for p in papers))
    found: dict = {}
    for profile in judged.profiles:
        reader = Subscriber(email="golden@example.org", keywords=list(profile.keywords),
                            exclude=list(profile.exclude), max_papers=100)
        runs = {level: rank(index, reader, limit=len(papers), related=level) for level in ("near", "far", "off")}
        feedback = _feedback(papers, [item.paper.id for item in runs["off"]])
        runs["near+feedback"] = rank(index, reader, limit=len(papers), feedback=feedback)
        found[profile.id] = {name: [[item.paper.id, item.score, _matches(item), _hash(item.snippet)]
                                    for item in ranked] for name, ranked in runs.items()}
    return found


@cache
def day():
    seeds = [{"title": p.title, "abstract": p.abstract, "upvotes": p.upvotes}
             for p in load_judged_set(DEFAULT_SET).papers]
    return synthetic_papers(seeds, DAY_PAPERS, random.Random(SEED))


def day_subscribers(papers) -> tuple[list[Subscriber], dict, dict]:
    rng = random.Random(SEED)
    readers, delivered, feedback = [], {}, {}
    for distribution in ("uniform", "shared", "frequent"):
        pool, weights = keyword_pool(papers, distribution, random.Random(SEED))
        for reader in synthetic_subscribers(pool, weights, PER_DISTRIBUTION, random.Random(SEED)):
            email = f"{distribution}-{reader.email}"
            level = rng.choice(("near", "near", "near", "far", "off"))
            readers.append(reader.model_copy(update={"email": email, "related": level}))
            if rng.random() < 0.2:
                delivered[email] = {paper.id for paper in rng.sample(papers, 30)}
            if rng.random() < 0.15:
                marked = rng.sample(papers, rng.randint(1, 3))
                feedback[email] = tuple(Feedback(p.id, rng.choice(("more", "less")), p.title, p.abstract)
                                        for p in marked)
    return readers, delivered, feedback


def day_digests() -> dict:
    papers = day()
    numbers = {paper.id: n for n, paper in enumerate(papers)}
    index = build_index(papers, related=learn_related((p.title, p.abstract) for p in papers))
    readers, delivered, feedback = day_subscribers(papers)
    found = {}
    for email, ranked in rank_many(index, readers, delivered=delivered, feedback=feedback).items():
        found[email] = [[numbers[item.paper.id] for item in ranked], [item.score for item in ranked],
                        _hash([[_matches(item), item.snippet] for item in ranked])]
    return found


def record() -> dict:
    return {"judged": judged_rankings(), "day": day_digests()}


@cache
def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_judged_set_ranks_as_recorded():
    expected, got = golden()["judged"], judged_rankings()
    assert got.keys() == expected.keys()
    for profile, runs in expected.items():
        for name, ranked in runs.items():
            mine = got[profile][name]
            where = f"{profile} ({name})"
            assert [row[0] for row in mine] == [row[0] for row in ranked], where
            assert [row[1] for row in mine] == pytest.approx([row[1] for row in ranked], abs=SCORE_TOLERANCE), where
            assert [row[2:] for row in mine] == [row[2:] for row in ranked], where


def test_a_seeded_day_ranks_every_digest_as_recorded():
    expected, got = golden()["day"], day_digests()
    assert got.keys() == expected.keys()
    differ = [email for email in expected if got[email][0] != expected[email][0]
              or got[email][1] != pytest.approx(expected[email][1], abs=SCORE_TOLERANCE)
              or got[email][2] != expected[email][2]]
    assert not differ, f"{len(differ)} of {len(expected)} digests changed, e.g. {differ[:5]}"


def test_forgetting_the_per_keyword_work_changes_no_digest(monkeypatch):
    from flows.rank import score

    monkeypatch.setattr(score, "QUERIES_KEPT", 60)  # the day's 450 lists forget it 8 times or more
    expected, got = golden()["day"], day_digests()
    differ = [email for email in expected if got[email][0] != expected[email][0]
              or got[email][1] != pytest.approx(expected[email][1], abs=SCORE_TOLERANCE)
              or got[email][2] != expected[email][2]]
    assert not differ, f"{len(differ)} of {len(expected)} digests changed, e.g. {differ[:5]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_rank_golden --write   (records the current rankings)")
    GOLDEN.write_text(json.dumps(record(), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size // 1024} KB)")
