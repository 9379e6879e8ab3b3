"""Benchmark of learning the related-terms model from a stored corpus.

    python -m flows.bench.related [--papers 50000] [--db PATH]

Stores ``--papers`` seeded papers (sentences of the bundled sample recombined, as
``make bench`` makes them) in a SQLite file, then learns the related-terms model from
every stored paper as a daily run does when the corpus has changed (read, learn, store:
``flows.corpus.learn_into``, here in this process so that its peak memory is the
learning's; a daily run does it in a short-lived process of its own), and prints how
long it took, the model's size and the peak memory. A daily run's call with the corpus
unchanged only loads the stored model (``flows.corpus.related_model``); that time is
printed too.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from dataclasses import replace
from datetime import date, timedelta

from flows.bench.corpus import api_items, load_seeds
from flows.corpus import learn_into, related_model
from flows.sources.huggingface import parse_item
from flows.store import Store


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        path = args.db or Path(scratch) / "related.db"
        store = Store(path)
        if store.paper_count() < args.papers:
            seeds, rng = load_seeds(), random.Random(args.seed)
            for day in range(0, args.papers, 2000):  # a listing day of up to 2,000 papers at a time
                listed = date(2025, 1, 1) + timedelta(days=day // 2000)
                items = api_items(seeds, min(2000, args.papers - day), listed, rng)
                store.upsert_papers([replace(parse_item(item, listed), id=f"{listed:%y%m%d}.{n:05d}")
                                     for n, item in enumerate(items)])
        before = peak_rss_mb()
        started = time.perf_counter()
        model = learn_into(store)
        learned = time.perf_counter() - started
        after = peak_rss_mb()
        started = time.perf_counter()
        again = related_model(store)
        loaded = time.perf_counter() - started
        size = len(store.related_model()[1])
        entries = len(model.indices)
        print(f"{store.paper_count()} stored papers: learned in {learned:.1f} s "
              f"(of which learning proper {model.seconds:.1f} s, the rest reading and storing); "
              f"{len(model)} units, {entries} associations, {size / 1e6:.1f} MB stored; "
              f"loaded again in {loaded:.2f} s ({len(again)} units); "
              f"peak RSS {before:.0f} MB before learning, {after:.0f} MB after")
        store.close()


if __name__ == "__main__":
    main()
