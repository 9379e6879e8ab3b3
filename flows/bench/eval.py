"""Relevance on a judged set: ``python -m flows.bench.eval`` (``make eval``).

    python -m flows.bench.eval [--set tests/data/eval/judged.json] [--out DIR (default: the checkout's bench-results/)]
                               [--rankers bm25,exact,new]

A judged set (format ``paperboy-judged-set/1``, see the README's "Evaluation") holds
papers, researcher profiles (keywords, exclusions, a one-sentence intent) and a grade
0/1/2 for every paper and profile, given by a person who read the paper. Each ranker
ranks the whole set for each profile and returns that profile's digest, at most
:data:`DIGEST_SIZE` papers; the digest is scored against the grades:

- nDCG@10: DCG of the digest's first 10 papers, gain = grade, discount log2(position + 1),
  divided by the DCG of the 10 best-graded papers of the set.
- precision: the share of the digest that is relevant (grade >= 1).
- recall: relevant papers in the digest divided by min(relevant papers in the set,
  DIGEST_SIZE), so a profile with more relevant papers than a digest holds can reach 1.

Edge cases: a profile without relevant papers scores nDCG 1 and recall 1 (nothing to
miss); an empty digest has precision 1 (it holds nothing irrelevant).

The three rankers, one function each so a ranker can be swapped in one place:
:func:`rank_bm25` (plain SQLite FTS5 BM25, the baseline), :func:`rank_exact` (exact
keyword matching as the product ranked before issue 11) and :func:`rank_new` (the
product's default ranking). Prints a table and writes ``eval.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from flows.models import Paper
from flows.rank import QueryError, build_index, learn_related, parse_query, rank
from flows.store import FtsPhrase, FullTextIndex
from flows.subscribers import Subscriber

FORMAT = "paperboy-judged-set/1"
DIGEST_SIZE = 20
NDCG_DEPTH = 10
GRADES = (0, 1, 2)
DEFAULT_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "eval" / "judged.json"
# The checkout's bench-results/ (git-ignored, emptied by `make clean`), wherever the command is run
# from: `make -C`, a shell in tests/ or a CI step elsewhere would otherwise scatter eval.json.
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "bench-results"
EVAL_EMAIL = "eval@example.org"
LEGEND = (
    f"nDCG@{NDCG_DEPTH}: graded gains (gain = grade 0/1/2), ideal DCG from the judged grades. "
    f"P and R: over the digest, the first {DIGEST_SIZE} papers the ranker returns (n = how many); "
    f"relevant = grade >= 1; R = relevant in the digest / min(relevant in the set, {DIGEST_SIZE})."
)


class JudgedSetError(ValueError):
    """A judged-set file is missing, is not valid JSON, or lacks a field or a grade."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One researcher: keywords in the product's keyword language, and what they want."""

    id: str
    intent: str
    keywords: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JudgedSet:
    name: str
    path: Path
    profiles: tuple[Profile, ...]
    papers: tuple[Paper, ...]
    grades: Mapping[str, Mapping[str, int]]  # profile id -> paper id -> grade
    ungraded: int = 0  # (paper, profile) pairs the file left without a grade: counted as 0

    def relevant(self, profile: str) -> int:
        return sum(1 for grade in self.grades[profile].values() if grade >= 1)


# -- loading --------------------------------------------------------------------------------


def load_judged_set(path: Path | str) -> JudgedSet:
    """Read and check a judged set; raises :class:`JudgedSetError` naming what is wrong."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JudgedSetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgedSetError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise JudgedSetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise JudgedSetError(f"{path}: expected a JSON object with 'profiles' and 'papers'")
    if doc.get("format") != FORMAT:
        raise JudgedSetError(f"{path}: field 'format' is {doc.get('format')!r}; expected {FORMAT!r}")
    profiles = _profiles(path, doc.get("profiles"))
    papers, grades, ungraded = _papers(path, doc.get("papers"), [p.id for p in profiles])
    name = doc.get("name") if isinstance(doc.get("name"), str) else path.stem
    return JudgedSet(name=name, path=path, profiles=profiles, papers=papers, grades=grades, ungraded=ungraded)


def _profiles(path: Path, items: object) -> tuple[Profile, ...]:
    if not isinstance(items, list) or not items:
        raise JudgedSetError(f"{path}: field 'profiles' must be a non-empty list")
    profiles: list[Profile] = []
    for n, item in enumerate(items):
        where = f"{path}: profiles[{n}]"
        if not isinstance(item, dict):
            raise JudgedSetError(f"{where}: expected an object")
        pid, intent = item.get("id"), item.get("intent")
        if not isinstance(pid, str) or not pid.strip():
            raise JudgedSetError(f"{where}: field 'id' must be a non-empty string")
        where = f"{path}: profile {pid!r}"
        if pid in {p.id for p in profiles}:
            raise JudgedSetError(f"{where}: the id is used twice")
        if not isinstance(intent, str) or not intent.strip():
            raise JudgedSetError(f"{where}: field 'intent' must be a sentence saying what the researcher wants")
        keywords = _strings(where, item, "keywords")
        exclude = _strings(where, item, "exclude", required=False)
        try:
            query = parse_query(keywords, exclude)
        except QueryError as exc:
            raise JudgedSetError(f"{where}: {exc}") from None
        if not query.terms:
            raise JudgedSetError(f"{where}: field 'keywords' has no keyword that is not an exclusion")
        profiles.append(Profile(id=pid, intent=intent.strip(), keywords=keywords, exclude=exclude))
    return tuple(profiles)


def _strings(where: str, item: dict, field: str, *, required: bool = True) -> tuple[str, ...]:
    value = item.get(field, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        kind = "a non-empty list of strings" if required else "a list of strings"
        raise JudgedSetError(f"{where}: field {field!r} must be {kind}")
    return tuple(value)


def _papers(path: Path, items: object, profile_ids: list[str]) -> tuple[tuple[Paper, ...], dict, int]:
    """The papers, their grades per profile, and how many (paper, profile) pairs have none:
    those count as 0, not relevant, as unjudged documents do in pooled evaluations (a set
    graded profile by profile may leave papers far from a profile out)."""
    if not isinstance(items, list) or not items:
        raise JudgedSetError(f"{path}: field 'papers' must be a non-empty list")
    papers: list[Paper] = []
    seen: set[str] = set()
    grades: dict[str, dict[str, int]] = {pid: {} for pid in profile_ids}
    ungraded = 0
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise JudgedSetError(f"{path}: papers[{n}]: expected an object")
        paper_id = item.get("id")
        if not isinstance(paper_id, str) or not paper_id.strip():
            raise JudgedSetError(f"{path}: papers[{n}]: field 'id' must be a non-empty string")
        where = f"{path}: paper {paper_id!r}"
        if paper_id in seen:
            raise JudgedSetError(f"{where}: the id is used twice")
        seen.add(paper_id)
        for field in ("title", "abstract"):
            if not isinstance(item.get(field), str):
                raise JudgedSetError(f"{where}: field {field!r} must be a string")
        upvotes = item.get("upvotes", 0)
        if not isinstance(upvotes, int) or isinstance(upvotes, bool) or upvotes < 0:
            raise JudgedSetError(f"{where}: field 'upvotes' must be a whole number >= 0")
        published = item.get("published")
        try:
            published = date.fromisoformat(published) if published is not None else None
        except (TypeError, ValueError):
            raise JudgedSetError(f"{where}: field 'published' must be a date like 2025-06-13 or null") from None
        given = item.get("grades")
        if not isinstance(given, dict):
            raise JudgedSetError(f"{where}: field 'grades' must map profile ids to 0, 1 or 2")
        if unknown := sorted(set(given) - set(profile_ids)):
            raise JudgedSetError(f"{where}: grades name unknown profiles: {', '.join(unknown)}")
        for pid in profile_ids:
            if pid not in given:
                grades[pid][paper_id] = 0
                ungraded += 1
                continue
            grade = given[pid]
            if isinstance(grade, bool) or grade not in GRADES:
                raise JudgedSetError(f"{where}: grade for profile {pid!r} is {grade!r}; use 0, 1 or 2")
            grades[pid][paper_id] = grade
        papers.append(Paper(
            id=paper_id, title=item["title"], abstract=item["abstract"], upvotes=upvotes,
            published=published, listed=published or date(2025, 12, 12), source="eval",
        ))
    return tuple(papers), grades, ungraded


# -- metrics --------------------------------------------------------------------------------


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: gain at position i (from 1) counts gain / log2(i + 1)."""
    return sum(gain / math.log2(position + 2) for position, gain in enumerate(gains))


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, int], k: int = NDCG_DEPTH) -> float:
    """nDCG@k of a ranking, gain = grade; 1.0 when no paper has a grade above 0."""
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal == 0:
        return 1.0
    return dcg([grades.get(paper_id, 0) for paper_id in ranked[:k]]) / ideal


def digest_precision(digest: Sequence[str], grades: Mapping[str, int]) -> float:
    """The share of the digest that is relevant (grade >= 1); 1.0 for an empty digest."""
    if not digest:
        return 1.0
    return sum(1 for paper_id in digest if grades.get(paper_id, 0) >= 1) / len(digest)


def digest_recall(digest: Sequence[str], grades: Mapping[str, int], size: int = DIGEST_SIZE) -> float:
    """Relevant papers in the first ``size`` of the digest, over min(relevant, size); 1.0 if none."""
    reachable = min(sum(1 for grade in grades.values() if grade >= 1), size)
    if reachable == 0:
        return 1.0
    return sum(1 for paper_id in digest[:size] if grades.get(paper_id, 0) >= 1) / reachable


# -- rankers: papers and profiles in, each profile's digest (paper ids, best first) out -------

Ranker = Callable[[Sequence[Paper], Sequence[Profile]], dict[str, list[str]]]


def rank_bm25(papers: Sequence[Paper], profiles: Sequence[Profile]) -> dict[str, list[str]]:
    """Plain SQLite FTS5 BM25: the keywords ORed (each a phrase, ``title:``/``abstract:``
    kept), exclusions as NOT; no acronyms, variants or weights; the first DIGEST_SIZE."""
    with FullTextIndex(papers) as index:
        digests = {}
        for profile in profiles:
            query = parse_query(profile.keywords, profile.exclude)
            digests[profile.id] = index.search(
                [FtsPhrase(" ".join(term.words), term.field) for term in query.terms],
                [FtsPhrase(" ".join(term.words), term.field) for term in query.exclusions],
                limit=DIGEST_SIZE,
            )
        return digests


def _product_digests(papers: Sequence[Paper], profiles: Sequence[Profile], **options) -> dict[str, list[str]]:
    """What the product mails: ``flows.rank`` with default settings, a subscriber with these
    keywords and default preferences (max_papers 20, popularity 1, related near), nothing
    delivered before. The set's papers are the stored corpus: the related-terms model is
    learned from them, as a daily run learns it from every stored paper."""
    related = learn_related((paper.title, paper.abstract) for paper in papers)
    index = build_index(papers, related=related)
    digests = {}
    for profile in profiles:
        reader = Subscriber(email=EVAL_EMAIL, keywords=list(profile.keywords), exclude=list(profile.exclude),
                            max_papers=DIGEST_SIZE)
        digests[profile.id] = [ranked.paper.id for ranked in rank(index, reader, **options)]
    return digests


def rank_exact(papers: Sequence[Paper], profiles: Sequence[Profile]) -> dict[str, list[str]]:
    """Exact keyword matching, the ranking before issue 11: no graded phrases, no related papers."""
    return _product_digests(papers, profiles, graded=False, related="off")


def rank_new(papers: Sequence[Paper], profiles: Sequence[Profile]) -> dict[str, list[str]]:
    """The product's default ranking: graded phrases and related papers (near)."""
    return _product_digests(papers, profiles)


RANKERS: dict[str, Ranker] = {"bm25": rank_bm25, "exact": rank_exact, "new": rank_new}


# -- the evaluation -------------------------------------------------------------------------


def score_digest(digest: Sequence[str], grades: Mapping[str, int]) -> dict:
    return {
        "ndcg10": ndcg_at(digest, grades),
        "precision": digest_precision(digest, grades),
        "recall": digest_recall(digest, grades),
        "returned": len(digest),
    }


def evaluate(judged: JudgedSet, rankers: Mapping[str, Ranker] = RANKERS) -> dict:
    """Every ranker's digests for every profile, scored; the means and the worst profile."""
    results: dict = {}
    for name, ranker in rankers.items():
        digests = ranker(judged.papers, judged.profiles)
        profiles = {
            profile.id: {**score_digest(digests[profile.id][:DIGEST_SIZE], judged.grades[profile.id]),
                         "digest": digests[profile.id][:DIGEST_SIZE]}
            for profile in judged.profiles
        }
        mean = {metric: sum(p[metric] for p in profiles.values()) / len(profiles)
                for metric in ("ndcg10", "precision", "recall")}
        worst = min(profiles, key=lambda pid: (profiles[pid]["ndcg10"], profiles[pid]["recall"], pid))
        results[name] = {"profiles": profiles, "mean": mean, "worst": worst}
    return results


def report(judged: JudgedSet, results: Mapping[str, dict]) -> dict:
    """The JSON written to ``eval.json``."""
    return {
        "set": {"path": str(judged.path), "name": judged.name, "papers": len(judged.papers),
                "ungraded": judged.ungraded,
                "profiles": {p.id: {"relevant": judged.relevant(p.id), "keywords": list(p.keywords),
                                    "exclude": list(p.exclude), "intent": p.intent} for p in judged.profiles}},
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "legend": LEGEND,
        "digest_size": DIGEST_SIZE,
        "rankers": results,
    }


def table(judged: JudgedSet, results: Mapping[str, dict]) -> str:
    """Profiles as rows; per ranker nDCG@10, P, R and n side by side; means; worst profile."""
    names = list(results)
    width = max(len("profile"), *(len(p.id) for p in judged.profiles))
    group = "  {:>6} {:>5} {:>5} {:>3}"
    head = f"{'profile':<{width}} {'rel':>4} |" + "|".join(f" {name:^24}" for name in names)
    sub = f"{'':<{width}} {'':>4} |" + "|".join(group.format("nDCG10", "P", "R", "n") for _ in names)
    lines = [f"Judged set {judged.name} ({judged.path}): {len(judged.papers)} papers, "
             f"{len(judged.profiles)} profiles", LEGEND, "", head, sub, "-" * len(sub)]
    for profile in judged.profiles:
        cells = []
        for name in names:
            s = results[name]["profiles"][profile.id]
            cells.append(group.format(f"{s['ndcg10']:.3f}", f"{s['precision']:.2f}", f"{s['recall']:.2f}",
                                      s["returned"]))
        lines.append(f"{profile.id:<{width}} {judged.relevant(profile.id):>4} |" + "|".join(cells))
    lines.append("-" * len(sub))
    means = [group.format(f"{results[n]['mean']['ndcg10']:.3f}", f"{results[n]['mean']['precision']:.2f}",
                          f"{results[n]['mean']['recall']:.2f}", "") for n in names]
    lines.append(f"{'mean':<{width}} {'':>4} |" + "|".join(means))
    lines.append("")
    for name in names:
        worst = results[name]["worst"]
        s = results[name]["profiles"][worst]
        lines.append(f"worst profile, {name}: {worst} (nDCG@10 {s['ndcg10']:.3f}, "
                     f"P {s['precision']:.2f}, R {s['recall']:.2f})")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flows.bench.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help=f"judged set (default {DEFAULT_SET})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where eval.json goes (default {DEFAULT_OUT})")
    parser.add_argument("--rankers", default=",".join(RANKERS), help=f"comma-separated, of {', '.join(RANKERS)}")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.rankers.split(",") if name.strip()]
    if not chosen or any(name not in RANKERS for name in chosen):
        parser.error(f"--rankers: choose from {', '.join(RANKERS)}")
    args.rankers = chosen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        judged = load_judged_set(args.set)
    except JudgedSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if judged.ungraded:
        print(f"note: {judged.ungraded} of {len(judged.papers) * len(judged.profiles)} (paper, profile) pairs "
              f"have no grade in {judged.path}: counted as 0 (not relevant)")
    results = evaluate(judged, {name: RANKERS[name] for name in args.rankers})
    print(table(judged, results))
    out = args.out / "eval.json"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report(judged, results), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"error: --out {args.out}: cannot write eval.json ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
