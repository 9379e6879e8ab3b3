"""`make digest-check`: what a digest weighs and how it lays out, measured on the bundled sample.

Renders digests of the bundled sample's real titles and abstracts, given arXiv-shaped ids
and a TL;DR on every third paper (a typical day; tests/test_digest_browser.py uses the same
papers), for a subscriber with five broad keywords: 20 papers and 100 papers. Prints the
HTML part's bytes, the highlights, the papers the mail lists and, where headless Chromium
and playwright are installed, card heights at 375 and 1200 px. Writes the HTML (for
`make email-lint`, with the confirmation and welcome mails) and screenshots to --out.

    python -m flows.bench.digest [--out var/digest-check] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

from flows.bench.corpus import FIRST_NAMES, LAST_NAMES
from flows.compose import compose
from flows.corpus import Corpus
from flows.links import digest_links
from flows.models import Paper
from flows.render import Renderer
from flows.settings import PROJECT_ROOT, SAMPLE_SNAPSHOT_DIR, Settings
from flows.sources.snapshot import SnapshotSource
from flows.subscribers import Subscriber

DAY = date(2026, 3, 13)
KEYWORDS = ["language model", "reinforcement learning", "reasoning", "diffusion", "benchmark"]
KEY = "digest-check-key-0123456789-abcdefghijkl"
CHROMIUM = "/usr/bin/chromium"
WIDTHS = (375, 1200)


def typical_papers(day: date = DAY) -> list[Paper]:
    """The bundled sample as a real day would list it: arXiv-shaped ids (so cards carry the
    whole link row), varied author names, a TL;DR on every third paper."""
    source = SnapshotSource(SAMPLE_SNAPSHOT_DIR)
    papers = [p for listed in source.available_dates() for p in source.fetch(listed).papers]
    typical = []
    for n, paper in enumerate(papers):
        arxiv = f"2512.{10000 + n:05d}"
        names = tuple(f"{FIRST_NAMES[(n + i) % len(FIRST_NAMES)]} {LAST_NAMES[(n * 3 + i) % len(LAST_NAMES)]}"
                      for i in range(len(paper.authors) or 3))
        first_sentence = paper.abstract.split(". ")[0][:180].rstrip(" .") + "."
        typical.append(replace(paper, id=arxiv, url=f"https://huggingface.co/papers/{arxiv}", listed=day,
                               authors=names, ai_summary=first_sentence if n % 3 == 0 else "",
                               upvotes=paper.upvotes or n % 40, comments=n % 4))
    return typical


def render(papers: int, settings: Settings, renderer: Renderer) -> str:
    subscriber = Subscriber(email="ada@example.org", name="Ada Lovelace", keywords=KEYWORDS, max_papers=papers)
    digest = compose(subscriber, Corpus(typical_papers(), settings, DAY), set())
    return renderer.render_html(digest, subscriber, digest_links(settings, KEY, subscriber.email, DAY))


def sign_up_mails(settings: Settings) -> dict[str, str]:
    """The HTML of the confirmation and welcome mails."""
    from flows.web.app import web_environment  # the web app only for these two
    from flows.web.signup import confirmation_message, welcome_message

    env = web_environment(Path(settings.templates_dir) / "web")
    mails = {"confirm-mail": confirmation_message(env, settings, "ada@example.org",
                                                  "https://paperboy.example.org/confirm/token", KEYWORDS),
             "welcome-mail": welcome_message(env, settings, KEY, "ada@example.org", KEYWORDS)}
    return {name: mail.get_body(("html",)).get_content() for name, mail in mails.items()}


def card_heights(html: str, out: Path, name: str, selector: str = ".card-cell") -> dict[int, list[float]]:
    """Card heights per viewport width (empty without Chromium); screenshots to ``out``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not Path(CHROMIUM).exists():
        return {}
    heights = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"],
                                             headless=False)
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_content(html)
            page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            heights[width] = page.eval_on_selector_all(
                selector, "cards => cards.map(card => card.getBoundingClientRect().height)")
            page.close()
        browser.close()
    return heights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "var" / "digest-check")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(public_base_url="https://paperboy.example.org", secret_key=KEY)
    renderer = Renderer(settings.templates_dir, settings=settings)
    results = {}
    for papers in (20, 100):
        html = render(papers, settings, renderer)
        (args.out / f"digest-{papers}.html").write_text(html, encoding="utf-8")
        row = {"papers in the mail": html.count('class="card-cell"'), "HTML bytes": len(html.encode()),
               "highlights": html.count('class="hl"')}
        if not args.no_browser and papers == 20:
            for width, heights in card_heights(html, args.out, f"digest-{papers}").items():
                row[f"card height at {width} px (median, max)"] = [round(statistics.median(heights)),
                                                                  round(max(heights))]
        results[f"{papers}-paper digest"] = row
    for name, html in sign_up_mails(settings).items():  # for make email-lint: they share the look
        (args.out / f"{name}.html").write_text(html, encoding="utf-8")
    print(json.dumps(results, indent=1))
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
