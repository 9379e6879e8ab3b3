"""What a card says about why a paper is there, when the reason is long."""

from __future__ import annotations

import re
from datetime import date

from flows.cards import CHIP_CHARS, chip_label
from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper
from flows.render import Renderer
from flows.settings import PROJECT_ROOT, Settings
from flows.subscribers import Subscriber

LIKED = ("Secrets of RLHF in Large Language Models Part II: Reward Modeling and the Long Tail "
         "of Human Preferences in Open-Domain Dialogue Systems")
LINKS = DigestLinks(preferences="https://paperboy.example.org/preferences/p",
                    unsubscribe="https://paperboy.example.org/unsubscribe/u",
                    unsubscribe_mailto="mailto:paperboy@example.org?subject=unsubscribe")


def test_a_long_liked_title_is_cut_inside_its_quotes():
    label = chip_label(Match(LIKED, ("title",), ("reward",), tier="liked"))
    assert label.startswith("because you liked “Secrets of RLHF") and label.endswith("…”")
    assert len(label) <= CHIP_CHARS * 3
    short = chip_label(Match("Tool-Augmented Reward Modeling", ("title",), tier="liked"))
    assert short == "because you liked “Tool-Augmented Reward Modeling”"


def test_both_parts_of_the_mail_close_the_quote():
    day = date(2026, 3, 13)
    paper = Paper(id="2603.10001", title="Reward models at scale", abstract="About reward models.", listed=day)
    digest = Digest(subscriber="ada@example.org", digest_date=day,
                    papers=[RankedPaper(paper, 2.0, (Match(LIKED, ("title",), ("reward",), tier="liked"),))])
    subscriber = Subscriber(email="ada@example.org", keywords=["reward model"])
    renderer = Renderer(PROJECT_ROOT / "templates", settings=Settings(public_base_url="https://paperboy.example.org"))
    html = renderer.render_html(digest, subscriber, LINKS)
    text = renderer.render_text(digest, subscriber, LINKS)
    chip = re.search(r'class="chip-related"[^>]*>([^<]+)<', html).group(1)
    assert chip.startswith("because you liked &#8220;") and chip.endswith("&#8230;&#8221;")
    assert "…” (title)" in " ".join(text.split())
