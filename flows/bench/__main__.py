"""Benchmark the daily flow: ``python -m flows.bench`` (``make bench``).

    python -m flows.bench [--subscribers 10000] [--papers 2000] [--keywords 3-10]
                          [--connections 4] [--render-processes N] [--dkim] [--out bench-results/]
                          [--sink-latency-ms 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.bench.harness import BenchError, Options, run
from flows.bench.report import markdown


def keyword_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        bounds = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 3-10") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= low <= high")
    return bounds


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m flows.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--keywords", type=keyword_range, default=(3, 10), help="per subscriber, e.g. 3-10")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections (pipeline and ceiling)")
    parser.add_argument("--render-processes", type=int,
                        help="PAPERBOY_RENDER_PROCESSES for the flow (default: settings); 0 = none")
    parser.add_argument("--ceiling-runs", type=int, default=3, help="blasts; the ceiling is their median")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, help="subscribers per send-batch task (default: settings)")
    parser.add_argument("--premailer-sample", type=int, default=300, help="emails timed through premailer")
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every digest (a fresh 2048-bit key)")
    parser.add_argument("--workdir", type=Path, help="keep the generated inputs and database here")
    parser.add_argument("--sink-latency-ms", type=float, default=0.0,
                        help="the sink waits this long before answering each final dot, as a remote relay "
                             "does; delivery is then bound by connections / latency")
    args = parser.parse_args(argv)
    return Options(subscribers=args.subscribers, papers=args.papers, keywords=args.keywords,
                   connections=args.connections, out=args.out, seed=args.seed, batch_size=args.batch_size,
                   premailer_sample=args.premailer_sample, workdir=args.workdir,
                   render_processes=args.render_processes, ceiling_runs=args.ceiling_runs,
                   dkim=args.dkim, sink_latency_ms=args.sink_latency_ms)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    try:
        results = run(options)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(markdown(results))
    print(f"written: {options.out / 'bench.json'}, {options.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
