"""Seeded benchmark inputs: a day of listings shaped like the bundled sample, and subscribers.

Papers recombine the bundled Hugging Face sample (``flows/sample_data/huggingface``):
titles are spliced from two sample titles, abstracts are 5-11 sentences drawn from the
sample abstracts, author counts follow the sample's. The sample's upvotes come from
search pages of mostly old papers (nearly all 0), so upvotes are drawn instead from a
heavy tail like a real Daily Papers day: a handful for most papers, hundreds for a few.

Subscribers get 3-10 keywords drawn from the corpus's own vocabulary (words and two-word
phrases found in at least `MIN_DF` papers), written as YAML files like the shipped ones.
The same seed always gives the same files.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.settings import SAMPLE_SNAPSHOT_DIR

MIN_DF = 5  # a keyword must occur in this many papers, so most subscribers have matches
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z]+(?:-[A-Za-z]+)*")
_STOPWORDS = frozenset(
    "about after also among an and are as at based been being between both but by can could do does "
    "each either for from further has have here how however in into is it its more most much new not "
    "of on one only or other our over such than that the their them then there these they this those "
    "through to two under up upon using via was we were what when where which while who will with "
    "within without would yet".split()
)
# Plain YAML scalars that a YAML 1.1 reader, or any reader, would not take for a string.
_YAML_SPECIAL = frozenset("true false yes no on off y n null ~".split())

FIRST_NAMES = ("Ada", "Alan", "Grace", "Zoë", "José", "Mei", "Ravi", "Ingrid", "Kwame", "Olga",
               "Hiroshi", "Fatima", "Łukasz", "Chloé", "Arjun", "Sven", "Amara", "Jiří", "Lena", "Tomás")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Müller", "García", "Chen", "Patel", "Johansson",
              "Mensah", "Ivanova", "Tanaka", "Haddad", "Nowak", "Dubois", "Iyer", "Larsen",
              "Okafor", "Dvořák", "Schmidt", "Silva")


@dataclass(frozen=True)
class Seeds:
    """What generated papers are made of, from the bundled sample listings."""

    titles: list[str]
    sentences: list[str]
    author_counts: list[int]
    with_code: float  # share of papers with a GitHub repository
    with_project: float


def load_seeds(directory: Path = SAMPLE_SNAPSHOT_DIR) -> Seeds:
    items = [item for path in sorted(directory.glob("*.json"))
             for item in json.loads(path.read_text(encoding="utf-8"))]
    papers = [item["paper"] for item in items]
    sentences = [s.strip() for p in papers for s in _SENTENCE_END.split(p["summary"]) if len(s) > 30]
    return Seeds(
        titles=[p["title"] for p in papers],
        sentences=sentences,
        author_counts=[len(p.get("authors") or []) for p in papers],
        with_code=sum(bool(p.get("githubRepo")) for p in papers) / len(papers),
        with_project=max(0.1, sum(bool(p.get("projectPage")) for p in papers) / len(papers)),
    )


def upvotes(rng: random.Random) -> int:
    """A Daily Papers day: 15% unvoted, median about 5, a long tail into the hundreds."""
    if rng.random() < 0.15:
        return 0
    return min(900, int(math.exp(rng.gauss(1.6, 1.2))))


def _title(seeds: Seeds, rng: random.Random) -> str:
    first, second = rng.sample(seeds.titles, 2)
    if ":" in first and ":" in second:
        return f"{first.split(':', 1)[0]}:{second.split(':', 1)[1]}"
    head, tail = first.split(), second.split()
    return " ".join(head[: max(2, len(head) // 2)] + tail[len(tail) // 2:])


def _authors(seeds: Seeds, rng: random.Random) -> list[str]:
    count = rng.choice(seeds.author_counts) or rng.randint(1, 4)
    return [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(count)]


def api_items(seeds: Seeds, count: int, listed: date, rng: random.Random) -> list[dict]:
    """``count`` items exactly as /api/daily_papers returns them, all listed on ``listed``."""
    stamp = f"{listed.isoformat()}T00:00:00.000Z"
    items = []
    for n in range(count):
        paper_id = f"{listed:%y%m}.{n:05d}"
        slug = f"lab{n % 397}/paper-{n}"
        paper = {
            "id": paper_id,
            "title": _title(seeds, rng),
            "summary": " ".join(rng.sample(seeds.sentences, rng.randint(5, 11))),
            "authors": [{"_id": f"a{n}-{i}", "name": name, "hidden": False}
                        for i, name in enumerate(_authors(seeds, rng))],
            "publishedAt": stamp,
            "upvotes": upvotes(rng),
            "ai_keywords": [],
            "githubRepo": f"https://github.com/{slug}" if rng.random() < seeds.with_code else None,
            "projectPage": (f"https://{slug.replace('/', '.')}.github.io/"
                            if rng.random() < seeds.with_project else None),
        }
        items.append({"paper": paper, "publishedAt": stamp, "title": paper["title"],
                      "numComments": rng.choice((0, 0, 0, 0, 1, 1, 2, 3, 5)),
                      "isAuthorParticipating": False})
    return items


def write_snapshot(directory: Path, listed: date, items: list[dict]) -> Path:
    """A snapshot directory holding one listing day, read by the real snapshot source."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{listed.isoformat()}.json").write_text(json.dumps(items), encoding="utf-8")
    return directory


def vocabulary(items: list[dict], min_df: int = MIN_DF) -> list[str]:
    """Words and two-word phrases in at least ``min_df`` papers, as a subscriber would write
    them (acronyms keep their capitals, other words are lower-cased)."""
    frequency: Counter[str] = Counter()
    surface: dict[str, Counter[str]] = {}
    for item in items:
        words = _WORD.findall(f"{item['paper']['title']} {item['paper']['summary']}")
        lowered = [w.lower() for w in words]
        terms = {w for w in lowered if len(w) > 3 and w not in _STOPWORDS}
        terms |= {f"{a} {b}" for a, b in zip(lowered, lowered[1:])
                  if a not in _STOPWORDS and b not in _STOPWORDS}
        frequency.update(terms)
        for word, low in zip(words, lowered):
            surface.setdefault(low, Counter())[word] += 1
    pool = []
    for term, df in sorted(frequency.items()):
        if df < min_df or term in _YAML_SPECIAL:
            continue
        shown = [_acronym_or_lower(surface[w]) for w in term.split()]
        pool.append(" ".join(shown))
    return pool


def _acronym_or_lower(forms: Counter[str]) -> str:
    common = forms.most_common(1)[0][0]
    acronym = sum(c.isupper() for c in common) >= 2 and sum(c.islower() for c in common) <= 1
    return common if acronym else common.lower()


def subscriber_yaml(n: int, keywords: list[str], rng: random.Random) -> str:
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    lines = [f"email: reader{n:05d}@example.org", f"name: {name}", "keywords:"]
    lines += [f"  - {k}" for k in keywords]
    if rng.random() < 0.25:
        lines.append("include_trending: true")
    lines.append("active: true")
    return "\n".join(lines) + "\n"


def write_subscribers(directory: Path, pool: list[str], count: int, keywords: tuple[int, int],
                      rng: random.Random) -> Path:
    """``count`` subscriber files with ``keywords`` (low, high) keywords each, from ``pool``."""
    directory.mkdir(parents=True, exist_ok=True)
    low, high = keywords
    for n in range(count):
        chosen = list(dict.fromkeys(rng.sample(pool, rng.randint(low, high))))
        (directory / f"reader{n:05d}.yaml").write_text(subscriber_yaml(n, chosen, rng), encoding="utf-8")
    return directory
