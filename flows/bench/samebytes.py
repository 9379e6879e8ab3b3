"""Render a fixed sample of digests and write every byte of them, to compare two versions of
the renderer: ``python -m flows.bench.samebytes --out DIR [--workspace BENCH_WORKDIR]``.

The sample: the test suite's digests (hostile, non-ASCII, empty, hidden papers, odd links)
and, with ``--workspace`` (a ``make bench BENCH_ARGS="--workdir …"`` directory), an even
spread of the bench's subscribers ranked on its day, each mailed with and without a web
view. For each: the message as SMTP sends it (`render_bytes`), the message the email
package builds (`render_message`), the web view page and the context's plain values. What
varies per run is pinned: the link tokens' timestamp, the MIME boundary and the Date.

    python -m flows.bench.samebytes --out /tmp/a          # in one checkout
    python -m flows.bench.samebytes --out /tmp/b          # in the other
    python -m flows.bench.samebytes --compare /tmp/a /tmp/b
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import secrets
import sys
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

NOW = datetime(2025, 12, 12, 6, 30, tzinfo=timezone.utc)
STAMP = 1765520000  # the link tokens' signing time


def _pin_randomness() -> None:
    import itsdangerous.timed

    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: STAMP  # type: ignore[method-assign]
    counter = itertools.count()
    secrets.token_hex = lambda n=None: f"{next(counter):0{2 * (n or 32)}x}"  # type: ignore[assignment]


def _fixture_cases():
    """(name, digest, subscriber, links) from the tests' own digests."""
    import flows
    from flows.subscribers import Subscriber

    sys.path.insert(0, str(Path(flows.__file__).resolve().parents[1]))  # the checkout under test
    from tests import test_digest_layout as layout
    from tests import test_render as render

    people = [
        Subscriber(email="ada@example.com", name="Ada Lovelace", keywords=["reinforcement learning", "RL", "preference"]),
        Subscriber(email="ada@example.com", name="Zoë Müller-Lüdenscheidt, PhD", keywords=["RL"], frequency="weekly"),
    ]
    digests = [*render.sample_digests(), render.hostile_digest()]
    for n, digest in enumerate(digests):
        for m, person in enumerate(people):
            for k, links in enumerate((render.LINKS, layout.LINKS)):
                yield f"fixture-{n}-{m}-{k}", digest, person, links
    # the layout tests' papers: GitHub stars, TL;DRs, long titles, many papers (hidden ones)
    layout_digest = layout.Digest(subscriber="ada@example.com", digest_date=layout.DAY, papers=[
        layout.ranked(layout.paper(n, ai_summary=("We find that reward models " * (n % 3 + 1)) if n % 2 else None))
        for n in range(40)], trending=[layout.paper(90 + n) for n in range(5)])
    for m, person in enumerate(people):
        yield f"layout-{m}", layout_digest, person, layout.LINKS
        yield f"layout-period-{m}", replace(layout_digest, period="catch-up", since=date(2026, 3, 1)), person, layout.LINKS


def _bench_cases(workspace: Path, count: int):
    from flows.bench.harness import DAY, paperboy_env
    from flows.compose import compose
    from flows.corpus import Corpus
    from flows.links import digest_links
    from flows.settings import Settings
    from flows.store import Store
    from flows.subscribers import load_all

    env = {k.removeprefix("PAPERBOY_").lower(): v for k, v in paperboy_env(
        _Options(), _Space(workspace), 2525).items() if k.startswith("PAPERBOY_")}
    settings = Settings(**env)
    subscribers, _ = load_all(settings.subscribers_dir)
    subscribers = sorted(subscribers, key=lambda s: s.email)
    step = max(1, len(subscribers) // count)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, DAY)
    key = settings.secret_key.get_secret_value()
    for subscriber in subscribers[::step][:count]:
        digest = compose(subscriber, corpus, set())
        yield f"bench-{subscriber.email}", digest, subscriber, digest_links(settings, key, subscriber.email, DAY)
        yield f"bench-noview-{subscriber.email}", digest, subscriber, digest_links(settings, key, subscriber.email)
    yield "settings", settings


class _Options:
    batch_size = None
    render_processes = None
    dkim = False
    connections = 4


class _Space:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db, self.subscribers, self.snapshot = root / "paperboy.db", root / "subscribers", root / "snapshot"


def _plain(context: dict) -> str:
    """The context's values as the web view and preview see them (cards as dicts)."""
    return json.dumps(context, default=lambda o: dict(o) if isinstance(o, dict) else repr(o),
                      sort_keys=True, ensure_ascii=False)


def write(out: Path, workspace: Path | None, count: int) -> int:
    _pin_randomness()
    from flows.cards import digest_context
    from flows.render import Renderer
    from flows.settings import PROJECT_ROOT, Settings

    out.mkdir(parents=True, exist_ok=True)
    cases = list(_fixture_cases())
    settings = Settings(mail_from="Paperboy <paperboy@news.example.org>", list_id="daily.paperboy.example.org",
                        public_base_url="https://paperboy.example.org")
    if workspace is not None:
        *bench, (_, settings_b) = list(_bench_cases(workspace, count))
    renderers = [(Renderer(PROJECT_ROOT / "templates", settings=settings), cases)]
    if workspace is not None:
        renderers.append((Renderer(PROJECT_ROOT / "templates", settings=settings_b), bench))
    written = 0
    with (out / "all.bin").open("wb") as handle:
        for renderer, group in renderers:
            for name, digest, subscriber, links in group:
                parts = {
                    "bytes": renderer.render_bytes(digest, subscriber, links, now=NOW),
                    "message": renderer.render_message(digest, subscriber, links, now=NOW).as_bytes(),
                    "web": renderer.render_web(digest, subscriber, links).encode("utf-8"),
                    "text": renderer.render_text(digest, subscriber, links).encode("utf-8"),
                    "context": _plain(digest_context(digest, subscriber, links)).encode("utf-8"),
                }
                for part, data in parts.items():
                    handle.write(f"\n=== {name} {part} {len(data)}\n".encode("utf-8") + data)
                written += 1
    print(f"{written} digests, 5 renderings each, in {out / 'all.bin'} "
          f"(sha256 {hashlib.sha256((out / 'all.bin').read_bytes()).hexdigest()[:16]})")
    return written


def compare(a: Path, b: Path) -> bool:
    left, right = (a / "all.bin").read_bytes(), (b / "all.bin").read_bytes()
    if left == right:
        print(f"identical: {len(left):,} bytes")
        return True
    sections_a, sections_b = left.split(b"\n=== "), right.split(b"\n=== ")
    differ = [x.split(b"\n", 1)[0].decode() for x, y in zip(sections_a, sections_b) if x != y]
    print(f"DIFFERENT: {len(differ)} of {len(sections_a)} renderings, first: {differ[:5]}"
          + ("" if len(sections_a) == len(sections_b) else f"; {len(sections_a)} vs {len(sections_b)} sections"))
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        return 0 if compare(*args.compare) else 1
    write(args.out, args.workspace, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
