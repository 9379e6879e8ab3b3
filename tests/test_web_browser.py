"""From a digest actually delivered to the test SMTP server to a changed YAML file, in a real browser.

The web app runs under uvicorn on a free loopback port; the digests come from the real
pipeline (``run_batch``: rank → render → deliver over SMTP), so the links a subscriber
clicks are the ones the renderer put in their message. Chromium is the Debian package,
driven by playwright's Python package (no browser download).
"""

from __future__ import annotations

import html as html_module
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flows.compose import compose
from flows.corpus import Corpus
from flows.models import Paper
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import find
from tests.support.browser import (
    LiveServer,
    html_of,
    launch_chromium,
    link,
    mail_to,
    playwright_api,
    run_digests,
    run_digests_beside,
)
from tests.support.corpus import seed_papers
from tests.support.smtp import settings_for

# Day one has the reinforcement-learning papers; day two the reward-model and curriculum ones.
DAY_ONE = {"2506.10001", "2506.10002", "2506.10003", "2506.10005", "2506.10006", "2506.10011"}
ADA = """\
# Ada reads about RL; she tunes her keywords from the digest.
email: ada@example.org
name: Ada Lovelace
keywords:
  - reinforcement learning   # her first interest
max_papers: 10
"""
BOB = "email: bob@example.org\nname: Bob\nkeywords: [curriculum learning]\n"


def listed_on(day: date, ids: set[str] | None = None, exclude: set[str] = frozenset()) -> list[Paper]:
    return [
        Paper(id=p["id"], title=p["title"], abstract=p["abstract"], listed=day, upvotes=p["upvotes"],
              url=f"https://huggingface.co/papers/{p['id']}", source="huggingface",
              authors=("Ada Author", "Bo Author"))
        for p in seed_papers()
        if (ids is None or p["id"] in ids) and p["id"] not in exclude
    ]


@pytest.fixture
def site(smtp_server, tmp_path) -> Iterator[tuple[Settings, Path]]:
    """Settings whose public URL is a live server's, with Ada and Bob subscribed."""
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "ada.yaml").write_text(ADA, encoding="utf-8")
    (folder / "bob.yaml").write_text(BOB, encoding="utf-8")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key="browser-test-key-0123456789-abcdefghij",
                            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    with LiveServer(sock, settings):
        yield settings, folder
    sock.close()


@pytest.mark.browser
def test_a_subscriber_tunes_keywords_and_unsubscribes_from_a_received_digest(site, smtp_server, tmp_path):
    api = playwright_api()
    expect, sync_playwright = api.expect, api.sync_playwright
    settings, folder = site
    today = datetime.now(UTC).date()  # the app's "today" (settings.timezone is UTC)
    yesterday = today - timedelta(days=1)

    first = run_digests(settings, yesterday, listed_on(yesterday, DAY_ONE))
    assert first.sent == 1  # Ada; nothing matched Bob yet
    (digest,) = mail_to(smtp_server, "ada@example.org")
    assert "Value Gradient weighted Model-Based" in html_of(digest)

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, tmp_path / "chromium-profile")
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

        page.goto(link(digest, "preferences"))
        expect(page.locator("h1")).to_contain_text("Ada Lovelace")
        results = page.locator("#preview-results")
        expect(results).to_contain_text("Value Gradient weighted Model-Based")
        page.fill("#keywords", "reward model")
        # the debounced fetch replaces the list while nothing is saved yet
        expect(results).to_contain_text("RewardAnything", timeout=5000)
        expect(results).not_to_contain_text("Value Gradient weighted")
        expect(page.locator("#preview-results .hl").first).to_have_text(re.compile("reward model", re.I))
        assert find(folder, "ada@example.org")[1].keywords == ["reinforcement learning"]

        page.click("button[type=submit]")
        expect(page.locator("#saved")).to_contain_text("Saved")
        text = (folder / "ada.yaml").read_text()
        assert "  - reward model" in text and "# Ada reads about RL" in text
        assert find(folder, "ada@example.org")[1].keywords == ["reward model"]

        second = run_digests_beside(settings, today, listed_on(today, exclude=DAY_ONE))
        assert second.sent == 2  # Ada and, now that curriculum papers arrived, Bob
        latest = mail_to(smtp_server, "ada@example.org")[-1]
        html = html_of(latest)
        assert "Tool-Augmented Reward Modeling" in html and "RewardAnything" in html
        assert "Model-Based Transfer Learning for Contextual Reinforcement Learning" not in html

        page.goto(link(latest, "unsubscribe"))
        assert find(folder, "ada@example.org")[1].active  # opening the link changed nothing
        page.click("#confirm-unsubscribe")
        expect(page.locator("h1")).to_have_text("You are unsubscribed")
        assert errors == []  # no CSP violation or script error along the way
        browser.close()

    assert "active: false" in (folder / "ada.yaml").read_text()
    received = len(smtp_server.received)
    tomorrow = today + timedelta(days=1)
    reward_paper = next(p for p in listed_on(tomorrow) if p.id == "2506.10007")
    third = run_digests(settings, tomorrow, [replace(reward_paper, id="2506.20007")])  # would match Ada
    assert third.not_due == 1 and third.sent == 0
    assert len(smtp_server.received) == received


def test_the_digest_list_unsubscribe_url_works_with_a_plain_one_click_post(site, smtp_server):
    settings, folder = site
    today = datetime.now(UTC).date()
    assert run_digests(settings, today, listed_on(today)).sent == 2
    (digest,) = mail_to(smtp_server, "bob@example.org")
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(http://[^>]+/unsubscribe/[^>]+)>", digest["List-Unsubscribe"]).group(1)

    response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=5)  # as a mail provider does
    assert response.status_code == 200
    assert not find(folder, "bob@example.org")[1].active
    assert find(folder, "ada@example.org")[1].active
    tomorrow = today + timedelta(days=1)
    climb = next(p for p in listed_on(tomorrow) if p.id == "2506.10010")
    report = run_digests(settings, tomorrow, [replace(climb, id="2506.20010")])  # would match Bob
    assert report.not_due == 1
    assert len(mail_to(smtp_server, "bob@example.org")) == 1


@pytest.mark.browser
def test_more_like_this_from_a_received_digest_changes_the_next_ranking_and_says_why(site, smtp_server, tmp_path):
    api = playwright_api()
    expect, sync_playwright = api.expect, api.sync_playwright

    settings, folder = site
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    assert run_digests(settings, yesterday, listed_on(yesterday, DAY_ONE)).sent == 1
    (digest,) = mail_to(smtp_server, "ada@example.org")
    liked_title = "Value Gradient weighted Model-Based Reinforcement Learning"
    html = html_of(digest)
    more = re.search(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"/]+/2506\.10001/more\?sig=[^"]+)"', html)
    assert more, "every paper in the digest carries a signed 'More like this' link"
    assert "less like this</a>" in html

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, tmp_path / "chromium-profile")
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(more.group(1).replace("&amp;", "&"))
        expect(page.locator("h1")).to_have_text("More papers like this one?")
        expect(page.locator(".paper-title")).to_contain_text(liked_title)
        with Store(settings.db_path) as store:
            assert store.feedback_of("ada@example.org") == []  # opening the link recorded nothing
        page.click("#confirm-feedback")
        expect(page.locator("h1")).to_have_text("Noted")
        with Store(settings.db_path) as store:
            assert [(i["paper_id"], i["verdict"]) for i in store.feedback_of("ada@example.org")] == [
                ("2506.10001", "more")]
        page.goto(link(digest, "preferences"))
        expect(page.locator(".feedback-list")).to_contain_text(liked_title)
        expect(page.locator(".feedback-list button.undo")).to_have_count(1)
        assert errors == []
        browser.close()

    # The next morning: the same papers ranked with and without what Ada said.
    with Store(settings.db_path) as store:
        store.upsert_papers(listed_on(today, exclude=DAY_ONE))
        corpus = Corpus.load(store, settings, today)
    ada = find(folder, "ada@example.org")[1]
    assert [item.paper_id for item in corpus.feedback_for(ada)] == ["2506.10001"]
    with_feedback = {r.paper.id: r for r in compose(ada, corpus, set()).papers}
    corpus.feedback = {}
    without = {r.paper.id: r.score for r in compose(ada, corpus, set()).papers}
    lifted = [pid for pid, ranked in with_feedback.items() if ranked.score > without.get(pid, 0.0)]
    assert "2506.10009" in lifted  # "Model-Based Transfer Learning …": most like the liked paper
    assert any(m.tier == "liked" for m in with_feedback["2506.10009"].matches)

    report = run_digests_beside(settings, today, [])
    assert report.sent >= 1
    latest = html_of(mail_to(smtp_server, "ada@example.org")[-1])
    assert "Model-Based Transfer Learning for Contextual Reinforcement Learning" in latest
    chips = re.findall(r'class="chip-related"[^>]*>([^<]+)<', latest)
    assert f"because you liked “{liked_title}”" in [html_module.unescape(c) for c in chips], chips
