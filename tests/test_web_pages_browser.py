"""The subscriber's pages in headless Chromium: keyboard only on a phone, without JavaScript,
and with odd papers and keywords.

The digest comes from the real pipeline over the test SMTP server; the pages from the real
app under uvicorn on loopback; the links are the ones in the received message. Screenshots
go to tmp_path, or to $PAPERBOY_SCREENSHOTS when set.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.settings import Settings
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
from tests.test_digest_browser import shots_dir
from tests.test_digest_odd_data_browser import TOKEN_TITLE, odd_papers

pytestmark = pytest.mark.browser

KEY = "web-pages-browser-test-key-0123456789-abcdef"
LONG_KEYWORD = "x" * 30 + "-" + "y" * 60  # one word of 91 characters: the files allow 100
ADA = f"""\
email: ada@example.org
name: Ada
keywords:
  - reward model
  - language model
  - "{LONG_KEYWORD}"
max_papers: 30
"""


@pytest.fixture
def site(smtp_server, tmp_path) -> Iterator[tuple[Settings, Path]]:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "ada.yaml").write_text(ADA, encoding="utf-8")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    with LiveServer(sock, settings):
        yield settings, folder
    sock.close()


def received_digest(settings: Settings, smtp_server):
    day = datetime.now(UTC).date()
    assert run_digests(settings, day, odd_papers(day)).sent == 1
    return mail_to(smtp_server, "ada@example.org")[-1]


def overflow(page) -> float:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


FOCUSED = """() => {
  const el = document.activeElement, r = el.getBoundingClientRect();
  const bar = document.getElementById('preview-bar').getBoundingClientRect();
  return {name: el.id || el.name || el.textContent.trim().slice(0, 30), top: r.top, bottom: r.bottom,
          barTop: bar.top, outline: getComputedStyle(el).outlineStyle, inForm: !!el.closest('form#preferences')};
}"""


def test_keyboard_focus_on_a_phone_is_visible_and_never_under_the_count_bar(site, smtp_server, tmp_path):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True)
        page.goto(link(digest, "preferences"))
        visited = []
        for _ in range(30):  # the form's fields, in order, then the preview's links
            page.keyboard.press("Tab")
            focus = page.evaluate(FOCUSED)
            if visited and not focus["inForm"]:
                break
            if not focus["inForm"]:
                continue  # the skip link
            visited.append(focus["name"])
            assert focus["outline"] != "none", focus  # a visible focus ring
            assert 0 <= focus["top"] and focus["bottom"] <= focus["barTop"], focus  # not hidden by the bar
        page.screenshot(path=str(shots_dir(tmp_path) / "preferences-keyboard-360.png"))
        # iOS Safari zooms into a field whose text is under 16 px, and leaves the page zoomed
        sizes = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]):not([type=radio]):not([type=checkbox]), textarea, select')]
            .map(el => [el.name, parseFloat(getComputedStyle(el).fontSize)])""")
        assert [name for name, size in sizes if size < 16] == [], sizes
        browser.close()
    assert visited[:3] == ["keywords", "exclude", "max_papers"]
    assert visited[-2:] == ["Save preferences", "Unsubscribe"]


def test_without_javascript_the_page_says_so_saves_and_ties_errors_to_their_field(site, smtp_server, tmp_path):
    settings, folder = site
    digest = received_digest(settings, smtp_server)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
        page = context.new_page()
        page.goto(link(digest, "preferences"))
        hint = page.locator("#preview-hint")
        assert "save to see the edited ones" in hint.inner_text() and "as you type" not in hint.inner_text()
        page.fill("#max_papers", "500")
        page.click("button[type=submit]")
        number = page.locator("#max_papers")
        assert number.get_attribute("aria-invalid") == "true"
        described = number.get_attribute("aria-describedby") or ""
        assert described and "whole number from 1 to 100" in page.locator(f"#{described}").inner_text()
        assert page.evaluate("document.activeElement.id") == "max_papers"  # autofocus, no script needed
        page.screenshot(path=str(shots_dir(tmp_path) / "preferences-no-js-error-360.png"))
        page.fill("#max_papers", "12")
        page.click("button[type=submit]")
        api.expect(page.locator("#saved")).to_contain_text("Saved.")
        assert find(folder, "ada@example.org")[1].max_papers == 12

        scripted = browser.new_page(viewport={"width": 360, "height": 800})
        scripted.goto(link(digest, "preferences"))
        api.expect(scripted.locator("#preview-hint")).to_contain_text("It updates as you type.")
        browser.close()


def test_odd_titles_and_a_long_keyword_never_make_a_page_scroll_sideways(site, smtp_server, tmp_path):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    html = html_of(digest)
    token_paper = re.search(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"/]+/2512\.90002/more\?sig=[^"]+)"', html)
    shots = shots_dir(tmp_path)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        page.goto(link(digest, "preferences"))
        api.expect(page.locator("#preview-results")).to_contain_text(TOKEN_TITLE[:40])
        page.screenshot(path=str(shots / "preferences-odd-360.png"))
        assert overflow(page) <= 0
        page.goto(token_paper.group(1).replace("&amp;", "&"))
        api.expect(page.locator(".paper-title")).to_contain_text(TOKEN_TITLE[:40])
        assert overflow(page) <= 0
        page.click("#confirm-feedback")
        api.expect(page.locator("h1")).to_have_text("Noted")
        assert overflow(page) <= 0
        page.goto(link(digest, "preferences"))
        api.expect(page.locator(".feedback-list")).to_contain_text(TOKEN_TITLE[:40])
        assert overflow(page) <= 0
        page.screenshot(path=str(shots / "feedback-list-odd-360.png"), full_page=True)
        browser.close()


PAGE_BACKGROUND = """() => { const c = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number);
  return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255; }"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_follows_the_colour_scheme_and_passes_contrast(site, smtp_server, tmp_path, scheme):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    more = re.search(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"]+/more\?sig=[^"]+)"', html_of(digest)).group(1)
    shots = shots_dir(tmp_path)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, color_scheme=scheme)
        checked = []

        def check(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}-{scheme}.png"))
            shade = page.evaluate(PAGE_BACKGROUND)
            assert (shade < 0.1) if scheme == "dark" else (shade > 0.9), (name, shade)
            assert low_contrast(page) == [], (name, low_contrast(page)[:3])
            checked.append(name)

        page.goto(more.replace("&amp;", "&"))
        check("feedback-ask")
        page.click("#confirm-feedback")
        api.expect(page.locator("h1")).to_have_text("Noted")  # after the redirect
        check("feedback-done")
        page.goto(link(digest, "preferences"))
        api.expect(page.locator(".feedback-list li")).to_have_count(1)
        check("preferences")
        page.fill("#keywords", "reward model\ndiffusion^99")  # the live preview names the bad line
        api.expect(page.locator("#keywords-error")).to_be_visible(timeout=5000)
        page.click("button[type=submit]")
        api.expect(page.locator("#form-error")).to_be_visible()
        check("preferences-error")
        page.goto(link(digest, "unsubscribe"))
        check("unsubscribe-ask")
        page.click("#confirm-unsubscribe")
        api.expect(page.locator("h1")).to_have_text("You are unsubscribed")
        check("unsubscribe-done")
        page.goto(f"{settings.public_base_url}/subscribe")
        page.fill("#email", "not-an-address")
        page.click("button[type=submit]")
        api.expect(page.locator("#email-error")).to_be_visible()
        check("subscribe-error")
        page.goto(link(digest, "preferences")[:-5])
        check("bad-link")
        page.goto(f"{settings.public_base_url}/no-such-page")
        check("not-found")
        phone = browser.new_page(viewport={"width": 360, "height": 700}, color_scheme=scheme)
        phone.goto(link(digest, "preferences"))
        assert low_contrast(phone) == []  # the count bar at the bottom
        browser.close()
    assert len(checked) == 9


def test_undoing_a_mark_says_it_was_undone_where_the_list_is(site, smtp_server, tmp_path):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    less = re.search(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"]+/less\?sig=[^"]+)"', html_of(digest)).group(1)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        page.goto(less.replace("&amp;", "&"))
        page.click("#confirm-feedback")
        api.expect(page.locator("h1")).to_have_text("Noted")
        page.goto(link(digest, "preferences"))
        page.locator(".feedback-list button.undo").focus()
        page.keyboard.press("Enter")  # keyboard only
        status = page.locator("#undone")
        api.expect(status).to_contain_text("Undone.")
        assert status.get_attribute("role") == "status"
        assert page.locator(".feedback-list").count() == 0
        box = status.bounding_box()
        assert 0 <= box["y"] < 800  # in view: the page opens at the list, not at its top
        page.screenshot(path=str(shots_dir(tmp_path) / "feedback-undone-360.png"))
        browser.close()


def test_an_arabic_title_reads_right_to_left_on_the_pages_too(site, smtp_server):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    more = re.search(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"/]+/2512\.90003/more\?sig=[^"]+)"', html_of(digest))
    direction = "el => getComputedStyle(el).direction"
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        page.goto(more.group(1).replace("&amp;", "&"))
        assert page.locator(".paper-title").evaluate(direction) == "rtl"
        page.click("#confirm-feedback")
        api.expect(page.locator("h1")).to_have_text("Noted")
        page.goto(link(digest, "preferences"))
        arabic = page.locator(".match-title", has_text="نماذج")
        assert arabic.evaluate(direction) == "rtl"
        assert page.locator(".match-title", has_text="Secrets of RLHF").evaluate(direction) == "ltr"
        assert page.locator(".feedback-list li span[dir]").evaluate(direction) == "rtl"
        browser.close()


def test_picking_a_weekday_makes_the_digest_weekly(site, smtp_server):
    settings, folder = site
    digest = received_digest(settings, smtp_server)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(link(digest, "preferences"))
        assert page.locator("input[name=frequency][value=daily]").is_checked()
        page.select_option("#weekday", "friday")
        assert page.locator("input[name=frequency][value=weekly]").is_checked()
        api.expect(page.locator("#preview-status")).to_contain_text("last 7 days", timeout=5000)
        page.click("button[type=submit]")
        api.expect(page.locator("#saved")).to_contain_text("Saved.")
        browser.close()
    ada = find(folder, "ada@example.org")[1]
    assert (ada.frequency, ada.weekday) == ("weekly", "friday")


def test_the_noted_page_reloads_without_sending_the_form_again(site, smtp_server):
    settings, _ = site
    digest = received_digest(settings, smtp_server)
    more, other = re.findall(r'href="(http://127\.0\.0\.1:\d+/feedback/[^"]+/more\?sig=[^"]+)"', html_of(digest))[:2]
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        methods: list[str] = []
        page.on("request", lambda r: methods.append(r.method) if r.resource_type == "document" else None)
        page.goto(more.replace("&amp;", "&"))
        page.click("#confirm-feedback")
        api.expect(page.locator("h1")).to_have_text("Noted")
        page.reload()
        api.expect(page.locator("h1")).to_have_text("Noted")
        assert methods == ["GET", "POST", "GET", "GET"]  # the reload is a GET, not the form again
        # "done=1" alone records and proves nothing: another paper's link still asks
        page.goto(other.replace("&amp;", "&") + "&done=1")
        api.expect(page.locator("h1")).to_have_text("More papers like this one?")
        browser.close()
