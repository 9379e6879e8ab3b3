"""A digest of odd papers, as a subscriber's browser shows it: phone and desktop, light and dark.

The odd papers are the ones sources really send now and then: a 300-character title, a
title that is one URL-like token, an abstract quoting a long link, Arabic and Hebrew titles,
LaTeX, emoji, a hundred authors, an author whose name has no spaces; the subscriber has
50 keywords, one of 60 characters, and asks for 100 papers. Everything goes through the real
pipeline to the test SMTP server; the web view is served by the real app. Screenshots go to
tmp_path, or to $PAPERBOY_SCREENSHOTS when set.
"""

from __future__ import annotations

import html as html_module
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from flows.bench.digest import typical_papers
from flows.models import Paper
from flows.settings import Settings
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

pytestmark = pytest.mark.browser

KEY = "odd-data-browser-test-key-0123456789-abcdefgh"
PHONE, DESKTOP = 360, 1200
TOKEN_TITLE = "https://example.org/" + "averyverylongtokenwithoutanyspaces" * 4 + " reward model"
LONG_KEYWORD = "self-supervised contrastive representation learning on robots"[:60]
KEYWORDS = ["reward model", LONG_KEYWORD, "language model", "reinforcement learning", "diffusion"] + [
    f"topic{n} benchmark" for n in range(45)]
ARABIC = "نماذج المكافأة للتعلم المعزز في النماذج اللغوية الكبيرة"
HEBREW = "מודלי תגמול ללמידת חיזוק במודלי שפה גדולים"


def odd_papers(day: date) -> list[Paper]:
    base = typical_papers(day)[0]

    def odd(n: int, **fields) -> Paper:
        arxiv = f"2512.{90000 + n}"
        return replace(base, id=arxiv, url=f"https://huggingface.co/papers/{arxiv}", ai_summary="", **fields)

    return [
        odd(1, title=("Scaling reward models for long-horizon agents " * 8)[:300]),
        odd(2, title=TOKEN_TITLE),
        odd(3, title=f"{ARABIC} (reward model)",
            abstract=f"{ARABIC}. reward model " + "نص عربي طويل عن نماذج المكافأة " * 6),
        odd(4, title=f"{HEBREW}: reward model", abstract=f"{HEBREW}. reward model " + "טקסט עברי ארוך " * 8),
        odd(5, title=r"A reward model in $O(n^2)$ time and $\mathcal{O}(\log n)$ memory, 20\% faster",
            abstract=r"We bound $x^2 + y_i$ for every reward model~\cite{foo} ~fu2020d4rl and {\it more}."),
        odd(6, title="🚀 Reward model 🤖 tuned by 👩🏽‍🔬 scientists 🎉", abstract="🎉 A reward model with emoji 🤖."),
        odd(7, title="A reward model by a hundred authors",
            authors=tuple(f"Author{n} Surname{n}" for n in range(99)) + ("Dr" + "x" * 58,)),
        odd(8, title="Reward model code release",
            abstract="We release our reward model at https://github.com/some-organisation/"
                     "an-unusually-long-repository-name-for-reward-models-v2/tree/main/src and more."),
    ] + typical_papers(day)[:40]


@pytest.fixture
def world(smtp_server, tmp_path) -> Iterator[Settings]:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    lines = "".join(f'  - "{k}"\n' for k in KEYWORDS)
    (folder / "ada.yaml").write_text(f"email: ada@example.org\nname: Ada\nkeywords:\n{lines}max_papers: 100\n",
                                     encoding="utf-8")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY, mail_papers=30,
                            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    with LiveServer(sock, settings):
        yield settings
    sock.close()


# Everything wider than the window, and every link's tap target (WCAG 2.5.8: 24 × 24 px).
LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(el => el.getClientRects().length && el.getBoundingClientRect().right > width + 0.5)
    .filter(el => ![...el.children].some(child => child.getBoundingClientRect().right > width + 0.5))
    .map(el => `${el.tagName}.${el.className}: ${el.textContent.trim().slice(0, 40)}`);
  const small = [...document.querySelectorAll('.links a, .footer-links a, .topline a')]
    .map(a => a.getBoundingClientRect())
    .filter(r => r.height < 24 || r.width < 24).length;
  const title = [...document.querySelectorAll('h2.title')].find(h => h.textContent.includes('نماذج'));
  return {overflow: document.documentElement.scrollWidth - width, wide, small,
          rtl: title ? getComputedStyle(title).direction : 'missing',
          cards: document.querySelectorAll('.card-cell').length};
}"""


def test_odd_papers_never_widen_the_digest_and_stay_readable(world, smtp_server, tmp_path):
    settings = world
    day = datetime.now(UTC).date()
    assert run_digests(settings, day, odd_papers(day)).sent == 1
    message = mail_to(smtp_server, "ada@example.org")[-1]
    html = html_of(message)
    total = int(re.search(r"(\d+) new papers for you", html).group(1))
    shown = int(re.search(r"The top (\d+) are below", html).group(1))  # the rest: on the web view
    assert total == 38 and 25 <= shown <= 30  # 30 at most (mail_papers), fewer past 90 KB
    shots = shots_dir(tmp_path)
    api = playwright_api()
    with api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        for where in ("mail", "web view"):
            for width in (PHONE, DESKTOP):
                for scheme in ("light", "dark"):
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.emulate_media(color_scheme=scheme)
                    if where == "mail":
                        page.set_content(html)
                    else:
                        assert page.goto(link(message, "digest")).status == 200
                    name = f"odd-{where.replace(' ', '-')}-{width}-{scheme}"
                    page.screenshot(path=str(shots / f"{name}.png"))
                    seen = page.evaluate(LAYOUT)
                    assert seen["overflow"] <= 0 and seen["wide"] == [], (name, seen["wide"][:5])
                    assert seen["small"] == 0, f"{name}: links smaller than 24 px"
                    assert seen["rtl"] == "rtl", name  # the Arabic title reads right to left
                    assert seen["cards"] == (shown if where == "mail" else total)
                    assert low_contrast(page) == [], name
                    page.close()
        browser.close()


def test_the_plain_text_part_of_odd_papers_reads_as_text(world, smtp_server):
    settings = world
    day = datetime.now(UTC).date()
    assert run_digests(settings, day, odd_papers(day)).sent == 1
    message = mail_to(smtp_server, "ada@example.org")[-1]
    text = message.get_body(("plain",)).get_content()
    html = html_of(message)
    assert not re.search(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", text)  # no HTML entities leak
    assert "<" not in text.replace("<http", "")
    assert "$" not in text and "\\mathcal" not in text and "\\cite" not in text and "O(n²)" in text
    for line in text.splitlines():  # wrapped, except a line that is one URL or one long word
        assert len(line) <= 72 or " " not in re.sub(r"^\d+\. ", "", line.strip()), line
    titles = [html_module.unescape(t) for t in re.findall(r'class="title-link"[^>]*>([^<]+)<', html)]
    assert len(titles) == int(re.search(r"The top (\d+) are below", html).group(1))
    for title in titles:  # every title the HTML part shows is in the text, with its link
        assert " ".join(title.split()[:3]) in " ".join(text.split()), title
    for url in re.findall(r'<a class="(?:title-)?link" href="([^"]+)"', html):
        assert html_module.unescape(url) in text
    assert link(message, "unsubscribe") in text and link(message, "preferences") in text
    # no feedback links in plain text (two long links a paper): it points to the web view's
    pointer = text.split(link(message, "digest"))[0].splitlines()[-1]
    assert pointer == "View in your browser, where each paper has More / less like this:"
    page = httpx.get(link(message, "digest"), timeout=10).text
    assert page.count('class="feedback-link"') == 2 * 38
