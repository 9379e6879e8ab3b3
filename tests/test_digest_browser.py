"""The digest, its web view and the preferences page as a subscriber sees them, in headless Chromium.

Every digest here is one the real pipeline rendered and sent to the test SMTP server; the
pages are served by the real web app on loopback. Screenshots go to tmp_path, or to
$PAPERBOY_SCREENSHOTS when set (the README's figures come from there).

The papers are the bundled sample's real titles and abstracts, given arXiv-shaped ids (so
the cards carry the full link row, as a real digest's do) and, for every third paper, a
TL;DR as Hugging Face's `ai_summary` would: a typical day.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.bench.digest import typical_papers
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import find
from tests.support.browser import (
    LiveServer,
    html_of,
    launch_browser,
    link,
    low_contrast,
    mail_to,
    playwright_api,
    run_digests,
)
from tests.support.smtp import settings_for

pytestmark = pytest.mark.browser

KEY = "digest-browser-test-key-0123456789-abcdefgh"
ADA = """\
email: ada@example.org
name: Ada Lovelace
keywords:
  - language model
  - reinforcement learning
  - reasoning
  - diffusion
  - benchmark
max_papers: {max_papers}
"""
PHONE, DESKTOP = 375, 1200
CARD_HEIGHT_ON_A_PHONE = 260  # px, a typical paper's card (issue 14), its "More / less like this" links included

MEASURE = """() => {
  const cards = [...document.querySelectorAll('.card-cell')];
  const root = document.documentElement;
  return {
    heights: cards.map(card => card.getBoundingClientRect().height),
    overflow: root.scrollWidth - root.clientWidth,
    links: cards.map(card => ({
      title: card.querySelector('h2 a') ? card.querySelector('h2 a').href : '',
      row: [...card.querySelectorAll('.links a')].map(a => [a.textContent.trim(), a.href]),
    })),
  };
}"""



@pytest.fixture
def world(smtp_server, tmp_path) -> Iterator[tuple[Settings, Path]]:
    """A live web app whose URL is in the settings' links, and Ada subscribed."""
    folder = tmp_path / "subscribers"
    folder.mkdir()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY, mail_papers=12,
                            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    with LiveServer(sock, settings):
        yield settings, folder
    sock.close()


def send_ada(settings: Settings, folder: Path, smtp_server, max_papers: int = 12):
    (folder / "ada.yaml").write_text(ADA.format(max_papers=max_papers), encoding="utf-8")
    day = datetime.now(UTC).date()
    assert run_digests(settings, day, typical_papers(day)).sent == 1
    return mail_to(smtp_server, "ada@example.org")[-1]


def shots_dir(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("PAPERBOY_SCREENSHOTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_digest_reads_on_a_phone_and_a_desktop(world, smtp_server, tmp_path):
    settings, folder = world
    message = send_ada(settings, folder, smtp_server)
    html = html_of(message)
    shots = shots_dir(tmp_path)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        measured = {}
        for width in (DESKTOP, PHONE):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_content(html)
            page.screenshot(path=str(shots / f"digest-{width}.png"), full_page=True)
            measured[width] = page.evaluate(MEASURE)
            assert low_contrast(page) == [], f"text below 4.5:1 at {width} px"
            page.emulate_media(color_scheme="dark")
            page.screenshot(path=str(shots / f"digest-{width}-dark.png"), full_page=True)
            assert low_contrast(page) == [], f"text below 4.5:1 at {width} px, dark mode"
            page.close()
        browser.close()

    phone, desktop = measured[PHONE], measured[DESKTOP]
    assert len(phone["heights"]) == len(desktop["heights"]) == 12
    assert phone["overflow"] <= 0 and desktop["overflow"] <= 0  # no horizontal scrolling
    assert max(phone["heights"]) <= CARD_HEIGHT_ON_A_PHONE, sorted(phone["heights"])
    assert max(desktop["heights"]) < max(phone["heights"])
    for card in phone["links"]:  # every paper: title → arXiv, and the row of links
        arxiv = re.fullmatch(r"https://arxiv\.org/abs/(2512\.\d{5})", card["title"]).group(1)
        row = dict(card["row"])
        assert row["arXiv"] == card["title"] and row["PDF"] == f"https://arxiv.org/pdf/{arxiv}"
        assert row["Hugging Face"] == f"https://huggingface.co/papers/{arxiv}"
    print(f"\ncard heights (px): phone median {sorted(phone['heights'])[6]:.0f} max {max(phone['heights']):.0f}; "
          f"desktop median {sorted(desktop['heights'])[6]:.0f} max {max(desktop['heights']):.0f}; "
          f"HTML part {len(html.encode()) / 1024:.1f} KB; screenshots in {shots}")


def test_the_web_view_opens_from_a_received_message_and_lists_the_whole_digest(world, smtp_server, tmp_path):
    settings, folder = world
    message = send_ada(settings, folder, smtp_server, max_papers=40)
    html = html_of(message)
    top = link(message, "digest")
    assert html.count(f'href="{top}"') >= 3  # top, "see all", and the footer
    with Store(settings.db_path) as store:
        delivered = store.delivered_count("ada@example.org")
    assert delivered == 40  # the papers only on the web view count as delivered too
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": DESKTOP, "height": 900})
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        response = page.goto(top)
        assert response.status == 200
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert page.locator(".card-cell").count() == 40
        assert page.locator(".topline-link").count() == 0  # no "view in browser" on the page itself
        api.expect(page.locator("h1")).to_have_text("40 new papers for you")
        assert low_contrast(page) == []
        page.screenshot(path=str(shots_dir(tmp_path) / "web-view-1200.png"))
        assert errors == []  # the page's styles are allowed by its CSP
        tampered = page.goto(top[:-4] + ("AAAA" if not top.endswith("AAAA") else "BBBB"))
        assert tampered.status == 403
        browser.close()


def test_the_preferences_page_counts_marks_errors_and_redirects_after_saving(world, smtp_server, tmp_path):
    settings, folder = world
    message = send_ada(settings, folder, smtp_server, max_papers=3)
    prefs = link(message, "preferences")
    shots = shots_dir(tmp_path)
    api = playwright_api()
    expect = api.expect
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": DESKTOP, "height": 900})
        page.goto(prefs)
        status = page.locator("#preview-status")
        # the true number of matches, not a digest's worth (max_papers is 3)
        matching = int(re.match(r"(\d+) of \d+ papers", status.inner_text()).group(1))
        assert matching > 3 and "a digest lists the best 3" in status.inner_text()
        counts = page.locator(".kw-counts li")
        assert counts.count() == 5
        assert all(re.search(r"\d+", counts.nth(n).inner_text()) for n in range(5))
        form, preview = page.locator("form#preferences").bounding_box(), page.locator("#preview").bounding_box()
        assert preview["x"] >= form["x"] + form["width"] and abs(preview["y"] - form["y"]) < 5  # beside it
        assert page.locator("#preview-bar").is_hidden()  # the phone's count bar: not needed here
        page.screenshot(path=str(shots / "preferences-1200.png"))

        # a keyword the ranking language refuses: named with its line while typing…
        page.fill("#keywords", "reinforcement learning\ndiffusion^99")
        expect(status).to_contain_text("Fix line 2", timeout=5000)
        expect(page.locator("#keywords-error")).to_contain_text("diffusion^99")
        assert page.locator("#keywords").get_attribute("aria-invalid") == "true"
        # …and after a refused save the field has the focus, with that line selected
        page.click("button[type=submit]")
        expect(page.locator("#form-error")).to_contain_text("Nothing was saved")
        focus = page.evaluate("""() => { const el = document.activeElement;
            return [el.id, el.value.slice(el.selectionStart, el.selectionEnd)]; }""")
        assert focus == ["keywords", "diffusion^99"]
        assert find(folder, "ada@example.org")[1].keywords[0] == "language model"  # nothing saved
        page.screenshot(path=str(shots / "preferences-error-1200.png"))

        # saving redirects (POST/redirect/GET): a reload shows the page again, it does not post again
        page.fill("#keywords", "reinforcement learning\nreward model")
        methods: list[str] = []
        page.on("request", lambda request: methods.append(request.method) if request.resource_type == "document" else None)
        page.click("button[type=submit]")
        expect(page.locator("#saved")).to_contain_text("Saved.")
        assert page.url.endswith("?saved=1") and methods == ["POST", "GET"]
        saved = (folder / "ada.yaml").read_text()
        page.reload()
        assert methods == ["POST", "GET", "GET"] and (folder / "ada.yaml").read_text() == saved
        assert find(folder, "ada@example.org")[1].keywords == ["reinforcement learning", "reward model"]

        # on a phone the preview is below the form, and its count stays in view while typing
        phone = browser.new_page(viewport={"width": PHONE, "height": 700}, is_mobile=True, has_touch=True)
        phone.goto(prefs)
        phone.focus("#keywords")
        bar = phone.locator("#preview-bar").bounding_box()
        assert 0 <= bar["y"] and bar["y"] + bar["height"] <= 700
        expect(phone.locator("#preview-bar")).to_contain_text("papers match")
        assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        phone.screenshot(path=str(shots / "preferences-375.png"))
        browser.close()


def test_the_subscribe_page_focuses_a_bad_address_and_redirects_when_sent(world, tmp_path):
    settings, _ = world
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": PHONE, "height": 800})
        page.goto(f"{settings.public_base_url}/subscribe")
        page.fill("#email", "not-an-address")
        page.fill("#keywords", "world models")
        page.click("button[type=submit]")
        api.expect(page.locator("#email-error")).to_contain_text("like name@example.org")
        assert page.evaluate("document.activeElement.id") == "email"
        page.fill("#email", "grace@example.org")
        page.fill("#keywords", "world models\n\"unclosed")
        page.click("button[type=submit]")
        api.expect(page.locator("#keywords-error")).to_contain_text("Line 2")
        focus = page.evaluate("""() => { const el = document.activeElement;
            return [el.id, el.value.slice(el.selectionStart, el.selectionEnd)]; }""")
        assert focus == ["keywords", '"unclosed']
        page.fill("#keywords", "world models")
        page.click("button[type=submit]")
        api.expect(page.locator("h1")).to_have_text("Check your inbox")
        assert page.url.endswith("/subscribe?sent=1") and "grace" not in page.url
        browser.close()
