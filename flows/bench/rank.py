"""Benchmark of the ranking stage: index build and ranking of every subscriber.

    python -m flows.bench.rank [--papers 2000] [--subscribers 10000] [--runs 3]
                               [--only uniform|shared|frequent] [--loop]

Builds a synthetic day from seed text (real Hugging Face listing titles and
abstracts, recombined sentence by sentence), draws subscribers with 3-10 keywords
from that corpus's vocabulary (seeded, so every run ranks the same thing), and
prints the median index-build and ranking times: wall clock, and the CPU time of
this process, which other load on the machine disturbs less. Every run starts
cold: a new index, empty parse caches. Ranking goes through ``rank_many`` as the
daily flow does; ``--loop`` calls ``rank`` once per subscriber instead.

``--mode`` chooses the ranking: ``new`` (graded phrases and related papers, the related
model learned from the same papers as if they were the stored corpus), ``exact`` (the
ranking before issue 11), ``both`` (the default: each, one after the other).

Keyword distributions: ``uniform`` draws every word and two-word phrase seen in at
least 5 papers alike (few subscribers share a keyword: the most distinct work);
``shared`` draws them with Zipf popularity (a community whose topics overlap);
``frequent`` weights them by document frequency (common words that match most
papers: the most postings per subscriber).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import statistics
import time
from collections import Counter
from datetime import date
from itertools import accumulate
from pathlib import Path

from flows.models import Paper
from flows.rank import BUILTIN_ACRONYMS, build_index, learn_related, rank, rank_many
from flows.rank.query import clear_caches
from flows.settings import PROJECT_ROOT
from flows.subscribers import Subscriber

SEEDS_DIR = PROJECT_ROOT.parent / "shared" / "seeds"
FALLBACK_SEEDS = PROJECT_ROOT / "tests" / "data" / "rank" / "seed_papers.json"
DISTRIBUTIONS = ("uniform", "shared", "frequent")
_DATE_LINE = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2}(, \d{4})?( \d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_STOPWORDS = frozenset(
    "a an and are as at be by can for from has have in into is it its of on or our such that the their "
    "these this to we which while with".split()
)


def seed_papers(directory: Path = SEEDS_DIR) -> list[dict]:
    """Title, abstract and upvotes of every paper in the seed listing pages."""
    if not directory.is_dir():
        return json.loads(FALLBACK_SEEDS.read_text(encoding="utf-8"))
    papers = []
    for path in sorted(directory.glob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for i, line in enumerate(lines[1:], start=1):
            if len(line) > 200 and len(lines[i - 1]) <= 200:  # an abstract, after its title
                dates = (m for m in map(_DATE_LINE.fullmatch, lines[i + 1:i + 4]) if m)
                upvotes = next((int(m.group(3) or 0) for m in dates), 0)
                papers.append({"title": lines[i - 1], "abstract": line, "upvotes": upvotes})
    return papers


def synthetic_papers(seeds: list[dict], count: int, rng: random.Random) -> list[Paper]:
    """``count`` papers whose titles and abstracts recombine the seeds' sentences."""
    sentences = [s for seed in seeds for s in _SENTENCE_END.split(seed["abstract"]) if len(s) > 20]
    title_words = [seed["title"].split() for seed in seeds]
    papers = []
    for n in range(count):
        title = rng.choice(title_words)[:] + rng.choice(title_words)[-3:]
        abstract = " ".join(rng.sample(sentences, rng.randint(5, 11)))
        upvotes = int(rng.paretovariate(1.2)) - 1 if rng.random() < 0.7 else 0
        papers.append(Paper(
            id=f"2406.{n:05d}", title=" ".join(title), abstract=abstract, listed=date(2024, 6, 3),
            upvotes=min(upvotes, 900),
        ))
    return papers


def keyword_pool(papers: list[Paper], distribution: str, rng: random.Random) -> tuple[list[str], list[float]]:
    """Keywords a subscriber might write (words and two-word phrases), with sampling weights."""
    frequency: Counter[str] = Counter()
    for paper in papers:
        tokens = re.findall(r"[A-Za-z][A-Za-z-]+", f"{paper.title} {paper.abstract}".lower())
        seen = {t for t in tokens if len(t) > 3 and t not in _STOPWORDS}
        seen |= {f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if not {a, b} & _STOPWORDS}
        frequency.update(seen)
    pool = sorted(k for k, df in frequency.items() if df >= 5) + [acronym for acronym, _ in BUILTIN_ACRONYMS]
    if distribution == "frequent":
        return pool, [float(frequency.get(k.lower(), 5)) for k in pool]
    if distribution == "shared":
        rng.shuffle(pool)
        return pool, [1 / rank for rank in range(1, len(pool) + 1)]
    return pool, [1.0] * len(pool)


def synthetic_subscribers(
    pool: list[str], weights: list[float], count: int, rng: random.Random
) -> list[Subscriber]:
    subscribers = []
    cumulative = list(accumulate(weights))  # what choices() sums on every call: the same draws, once
    for n in range(count):
        keywords = list(dict.fromkeys(rng.choices(pool, cum_weights=cumulative, k=rng.randint(3, 10))))
        keywords = [f"{k}^2" if rng.random() < 0.1 else k for k in keywords]
        exclude = rng.choices(pool, cum_weights=cumulative, k=1) if rng.random() < 0.2 else []
        subscribers.append(Subscriber.model_construct(  # the values are valid by construction
            email=f"s{n}@example.org", keywords=keywords, exclude=exclude, max_papers=20,
            popularity=rng.choice((0.0, 1.0, 1.0, 2.0)), include_trending=False,
        ))
    return subscribers


def run(papers: list[Paper], subscribers: list[Subscriber], runs: int, *, loop: bool,
        mode: str = "new") -> dict[str, float]:
    """``mode``: "new" (graded phrases, related papers learned from these papers as the
    stored corpus, each subscriber's level: near by default) or "exact" (before issue 11)."""
    builds, rankings, cpu, included, learned = [], [], [], 0, []
    options = {"graded": False, "related": "off"} if mode == "exact" else {}
    related = None
    if mode != "exact":
        related = learn_related((paper.title, paper.abstract) for paper in papers)
        learned.append(related.seconds)
    for _ in range(runs):
        clear_caches()
        index = None
        gc.collect()  # the previous run's index and caches, outside the timings
        start = time.perf_counter()
        index = build_index(papers, related=related)
        builds.append(time.perf_counter() - start)
        start, started_cpu = time.perf_counter(), time.process_time()
        if loop:
            included = sum(len(rank(index, subscriber, **options)) for subscriber in subscribers)
        else:
            included = sum(map(len, rank_many(index, subscribers, **options).values()))
        rankings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - started_cpu)
    return {
        "build": statistics.median(builds),
        "rank": statistics.median(rankings),
        "fastest": min(rankings),
        "cpu": statistics.median(cpu),
        "per_digest": included / len(subscribers),
        "learn": learned[0] if learned else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=DISTRIBUTIONS, help="run one keyword distribution")
    parser.add_argument("--loop", action="store_true", help="call rank() per subscriber, not rank_many()")
    parser.add_argument("--mode", choices=("new", "exact", "both"), default="both",
                        help="new: graded phrases + related papers (the default ranking); exact: before issue 11")
    args = parser.parse_args()
    papers = synthetic_papers(seed_papers(), args.papers, random.Random(args.seed))
    for distribution in [args.only] if args.only else DISTRIBUTIONS:
        pool, weights = keyword_pool(papers, distribution, random.Random(args.seed))
        subscribers = synthetic_subscribers(pool, weights, args.subscribers, random.Random(args.seed))
        distinct = len({k for s in subscribers for k in s.keywords})
        for mode in ("exact", "new") if args.mode == "both" else (args.mode,):
            result = run(papers, subscribers, args.runs, loop=args.loop, mode=mode)
            learned = f", related model learned in {result['learn']:.2f} s" if mode == "new" else ""
            print(
                f"{distribution:8s} {mode:5s} {args.papers} papers, {args.subscribers} subscribers "
                f"({distinct} distinct keywords): index build {result['build']:.2f} s, "
                f"ranking {result['rank']:.2f} s (CPU {result['cpu']:.2f} s, fastest {result['fastest']:.2f} s; "
                f"medians of {args.runs}), {result['per_digest']:.1f} papers per digest{learned}"
            )


if __name__ == "__main__":
    main()
