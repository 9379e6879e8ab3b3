"""The digest's layout rules, checked on the rendered HTML: size, contrast, structure, links, text.

Browser measurements (card heights, horizontal scrolling, screenshots) are in
tests/test_digest_browser.py; these run without a browser.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import quote_plus
from datetime import date

import lxml.html
import pytest

from flows.archive import decode_digest, encode_digest, paper_ids
from flows.cards import MAX_CHIPS, clean_text, digest_context, format_range, paper_links, subject_for
from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper, is_arxiv_id
from flows.render import HTML_BUDGET, Renderer
from flows.settings import PROJECT_ROOT, SAMPLE_SNAPSHOT_DIR, Settings
from flows.sources.snapshot import SnapshotSource
from flows.subscribers import MAX_KEYWORD_LENGTH, MAX_KEYWORDS, Subscriber

TEMPLATES = PROJECT_ROOT / "templates"
DAY = date(2026, 3, 13)
LINKS = DigestLinks(
    preferences="https://paperboy.example.org/preferences/prefs-token",
    unsubscribe="https://paperboy.example.org/unsubscribe/unsub-token",
    unsubscribe_mailto="mailto:paperboy@example.org?subject=unsubscribe",
    web_view="https://paperboy.example.org/digest/view-token",
)
ABSTRACT = (
    "Reward models are used throughout the post-training of language models to capture nuanced "
    "signals from preference data. We introduce a benchmark for reward models that spans six "
    "domains and show that reward model accuracy correlates with downstream performance of "
    "reinforcement learning from human feedback, while best-of-n sampling lags behind."
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES, settings=Settings(public_base_url="https://paperboy.example.org"))


def paper(n: int, **changes) -> Paper:
    fields = dict(
        id=f"2603.{10000 + n:05d}", title=f"Scaling Reward Models for Long-Horizon Agents, part {n}",
        abstract=ABSTRACT, listed=DAY, authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Kurt Gödel"),
        upvotes=12 + n, comments=n % 4, github_repo=f"https://github.com/lab/repo-{n}",
        project_page=f"https://lab.example.org/p{n}", url=f"https://huggingface.co/papers/2603.{10000 + n:05d}",
        source="huggingface", github_stars=1234 + n,
    )
    fields.update(changes)
    return Paper(**fields)


def ranked(p: Paper, *keywords: str) -> RankedPaper:
    keywords = keywords or ("reward models", "reinforcement learning")
    return RankedPaper(p, 2.0, tuple(Match(k, ("title", "abstract"), (k,)) for k in keywords))


def subscriber(**changes) -> Subscriber:
    values = dict(email="ada@example.org", name="Ada", keywords=["reward models", "reinforcement learning"])
    values.update(changes)
    return Subscriber(**values)


def doc_of(html: str):
    return lxml.html.document_fromstring(html)


# ---------------------------------------------------------------- size


def largest_digest() -> tuple[Digest, Subscriber]:
    """The largest digest the settings allow, with every field at its longest and non-ASCII
    text (each such character costs 8 bytes as a character reference)."""
    keywords = [f"{n:02d} " + "é" * (MAX_KEYWORD_LENGTH - 3) for n in range(MAX_KEYWORDS)]
    who = Subscriber.model_construct(**{**subscriber().model_dump(), "keywords": keywords, "max_papers": 100})
    long_url = "https://github.com/" + "a" * 560
    papers = [
        RankedPaper(paper(n, title="数据" * 400, abstract="研究 " * 2000, ai_summary="摘要" * 400,
                          authors=tuple("著者" * 40 for _ in range(300)), github_repo=long_url,
                          project_page=long_url.replace("github.com", "example.org")),
                    9.0, tuple(Match(k, ("title", "abstract"), ("研究",)) for k in keywords))
        for n in range(100)
    ]
    trending = [paper(200 + n, title="趋势" * 400) for n in range(5)]
    return Digest("ada@example.org", DAY, papers, trending), who


def test_the_largest_allowed_digest_stays_under_the_budget_and_lists_the_rest_on_the_web_view(renderer):
    digest, who = largest_digest()
    html = renderer.render_html(digest, who, LINKS)
    assert html.isascii() and len(html.encode()) <= HTML_BUDGET == 90 * 1024
    doc = doc_of(html)
    shown = len(doc.find_class("card-cell"))
    assert 5 <= shown < 100  # every field at its longest: a card is about 10 KB
    more = doc.find_class("more-link")
    assert more and more[-1].get("href") == LINKS.web_view
    assert f"{100 - shown} more papers in your browser" in doc.text_content()
    # the footer survives: nothing a mail client clips hides the unsubscribe link
    assert doc.find_class("footer-link")[-1].text == "Unsubscribe"
    web = doc_of(renderer.render_web(digest, who, LINKS))
    assert len(web.find_class("card-cell")) == 100 and not web.find_class("topline-link")


def test_a_typical_hundred_paper_digest_mails_thirty_and_keeps_the_rest_for_the_browser(renderer):
    digest = Digest("ada@example.org", DAY, [ranked(paper(n)) for n in range(100)])
    html = renderer.render_html(digest, subscriber(max_papers=100), LINKS)
    assert len(html.encode()) <= HTML_BUDGET
    doc = doc_of(html)
    assert len(doc.find_class("card-cell")) == 30
    assert "see all 100 papers in your browser" in " ".join(doc.text_content().split())
    text = renderer.render_text(digest, subscriber(max_papers=100), LINKS)
    assert "70 more papers in your browser:\n" + LINKS.web_view in text


# ---------------------------------------------------------------- contrast (WCAG AA)


def _rgb(value: str) -> tuple[float, float, float]:
    value = value.strip().lstrip("#")
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)
    return tuple(int(value[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = map(channel, _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    lighter, darker = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _declarations(style: str) -> dict[str, str]:
    found = {}
    for part in style.split(";"):
        if ":" in part:
            name, value = part.split(":", 1)
            found[name.strip().lower()] = value.replace("!important", "").strip()
    return found


def dark_rules(doc) -> dict[str, dict[str, str]]:
    """selector (a class, or 'body') → declarations, from the prefers-color-scheme: dark block."""
    css = "".join(style.text or "" for style in doc.iter("style"))
    block = re.search(r"prefers-color-scheme:\s*dark\)\s*\{(.*?\})\s*\}", css, re.S).group(1)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", block):
        for selector in selectors.split(","):
            rules.setdefault(selector.strip().lstrip("."), {}).update(_declarations(body))
    return rules


def text_colours(html: str, scheme: str) -> list[tuple[str, str, str]]:
    """(text, colour, background) for every visible run of text, from the inlined styles
    (and, for "dark", the dark-mode rules overriding them, as !important does)."""
    doc = doc_of(html)
    dark = dark_rules(doc) if scheme == "dark" else {}

    def style_of(element) -> dict[str, str]:
        found = _declarations(element.get("style") or "")
        if dark:
            for name in ["body" if element.tag == "body" else "", *(element.get("class") or "").split()]:
                found.update(dark.get(name, {}))
        return found

    def inherited(element, prop: str) -> str | None:
        while element is not None:
            value = style_of(element).get(prop)
            if value and value not in ("inherit", "transparent"):
                return value
            element = element.getparent()
        return None

    runs = []
    for element in doc.iter():
        if not isinstance(element.tag, str) or element.tag in ("style", "title", "head", "meta", "html"):
            continue
        if any("display:none" in (a.get("style") or "").replace(" ", "") for a in [element, *element.iterancestors()]):
            continue  # the preheader: hidden on purpose, coloured like the page
        texts = [element.text] + [child.tail for child in element]
        text = " ".join(t.strip() for t in texts if t and t.strip())
        if text:
            runs.append((text, inherited(element, "color"), inherited(element, "background-color")))
    return runs


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_colour_passes_wcag_aa(renderer, scheme):
    trending = [paper(90), paper(91)]
    related = RankedPaper(paper(5), 1.0, (Match("planning", ("abstract",), ("planning",)),))
    digest = Digest("ada@example.org", DAY, [ranked(paper(n)) for n in range(40)] + [related],
                    trending, period="weekly")
    who = subscriber(max_papers=100)
    links = DigestLinks(**{**LINKS.__dict__, "feedback": "https://paperboy.example.org/feedback/t"})
    runs = text_colours(renderer.render_html(digest, who, links), scheme)
    sample = text_colours(renderer.render_html(
        Digest("ada@example.org", DAY, [ranked(paper(1, id="sample-1"))]), who, LINKS), scheme)
    checked = {(colour, background) for _, colour, background in runs + sample}
    assert len(runs) > 200 and len(checked) >= 5
    failing = [(text[:40], c, b, round(contrast(c, b), 2)) for text, c, b in runs + sample
               if contrast(c, b) < 4.5]
    assert failing == []


def test_contrast_formula_matches_known_pairs():
    assert round(contrast("#000", "#fff"), 1) == 21.0
    assert round(contrast("#767676", "#ffffff"), 2) == 4.54  # the classic lightest AA grey
    assert contrast("#8c959f", "#ffffff") < 4.5  # the old rank numbers' grey failed


# ---------------------------------------------------------------- structure for mail clients


def sample_titles() -> list[str]:
    source = SnapshotSource(SAMPLE_SNAPSHOT_DIR)
    return [p.title for day in source.available_dates() for p in source.fetch(day).papers]


def test_table_layout_lang_headings_dark_mode_and_distinct_link_names(renderer):
    titles = sample_titles()  # real titles: link names carry each title's opening
    digest = Digest("ada@example.org", DAY, [ranked(paper(n, title=titles[n])) for n in range(20)],
                    [paper(50, title=titles[50])])
    html = renderer.render_html(digest, subscriber(), LINKS)
    doc = doc_of(html)
    assert doc.get("lang") == "en"
    assert doc.find(".//meta[@name='color-scheme']").get("content") == "light dark"
    assert "@media (prefers-color-scheme: dark)" in html
    column = doc.find_class("wrap")[0]
    # Outlook's Word engine ignores max-width: the 600 px width is an attribute of a table
    assert column.tag == "table" and column.get("width") == "600" and "max-width:600px" in column.get("style")
    assert not [d for d in doc.iter("div") if "max-width" in (d.get("style") or "")]
    assert [h.tag for h in doc.iter("h1", "h2")][:3] == ["h1", "h2", "h2"]
    assert len(doc.findall(".//h2")) == 21  # 20 papers and "Also trending"
    names = [a.get("aria-label") or " ".join(a.text_content().split()) for a in doc.iter("a")]
    assert len(names) > 100 and len(set(names)) == len(names)
    assert all(a.get("href", "").startswith("https://") for a in doc.iter("a"))


def test_the_preheader_and_subject_lead_with_what_is_inside(renderer):
    digest = Digest("ada@example.org", DAY, [ranked(paper(1), "world models"), ranked(paper(2))])
    context = digest_context(digest, subscriber(), LINKS)
    assert context["preheader"] == "Scaling Reward Models for Long-Horizon Agents, part 1 · and 1 more paper"
    assert context["subject"] == "World models, reward models and more: 2 new papers · 13 Mar 2026"
    assert context["summary"] == "world models 1 · reward models 1 · reinforcement learning 1"


def test_subjects_and_headlines_for_daily_weekly_and_catch_up():
    counts = [("reward models", 5), ("world models", 4)]
    assert subject_for(12, "daily", "13 Mar 2026", counts) == "Reward models, world models: 12 new papers · 13 Mar 2026"
    assert subject_for(12, "weekly", "7–13 Mar 2026", counts) == "Reward models, world models: 12 papers this week · 7–13 Mar 2026"
    assert subject_for(1, "catch-up", "1 Feb – 13 Mar 2026", counts[:1]) == (
        "Reward models: 1 paper to catch up on · 1 Feb – 13 Mar 2026")
    assert subject_for(0, "weekly", "7–13 Mar 2026", []) == "No new papers for your keywords this week · 7–13 Mar 2026"
    assert format_range(date(2025, 12, 30), date(2026, 1, 5)) == "30 Dec 2025 – 5 Jan 2026"
    weekly = Digest("ada@example.org", DAY, [ranked(paper(1))])
    context = digest_context(weekly, subscriber(frequency="weekly"), LINKS)
    assert context["headline"] == "1 paper this week" and context["kicker"] == "Paperboy · weekly · 7–13 Mar 2026"
    assert "today" not in context["subject"] + context["headline"]
    catch_up = replace(weekly, period="catch-up", since=date(2026, 2, 1))
    context = digest_context(catch_up, subscriber(), LINKS)
    assert context["subject"] == "Reward models, reinforcement learning: 1 paper to catch up on · 1 Feb – 13 Mar 2026"


# ---------------------------------------------------------------- links and text


def test_links_come_from_the_arxiv_id_and_only_existing_ones_are_shown():
    title_url, row = paper_links(paper(1))
    assert title_url == "https://arxiv.org/abs/2603.10001"
    assert [label for label, _ in row] == ["arXiv", "PDF", "Hugging Face", "Code", "Project"]
    old_style = paper(2, id="cs/0112017v2", url="", github_repo=None, project_page=None)
    assert paper_links(old_style) == ("https://arxiv.org/abs/cs/0112017v2", (
        ("arXiv", "https://arxiv.org/abs/cs/0112017v2"), ("PDF", "https://arxiv.org/pdf/cs/0112017v2")))
    elsewhere = paper(3, id="openreview-xyz", url="https://openreview.net/forum?id=xyz", github_repo=None,
                      project_page="javascript:alert(1)")
    assert paper_links(elsewhere) == ("https://openreview.net/forum?id=xyz",
                                      (("Paper page", "https://openreview.net/forum?id=xyz"),))
    sample = paper(4, id="sample-2512-41234", url="https://huggingface.co/papers?q=Scaling+Reward+Models",
                   github_repo=None, project_page=None)
    assert paper_links(sample) == ("https://huggingface.co/papers?q=Scaling+Reward+Models", (
        ("Find on arXiv", "https://arxiv.org/search/?query=Scaling+Reward+Models+for+Long-Horizon+Agents%2C+part+4"
                          "&searchtype=title"),
        ("Find on Hugging Face", "https://huggingface.co/papers?q=Scaling+Reward+Models")))
    assert paper_links(paper(5, github_repo="https://github.com/" + "x" * 700))[1][-1][0] == "Project"


def test_the_bundled_sample_links_to_searches_that_resolve_and_says_it_is_a_sample(renderer):
    source = SnapshotSource(SAMPLE_SNAPSHOT_DIR)
    papers = [p for day in source.available_dates() for p in source.fetch(day).papers]
    assert len(papers) > 150 and not any(is_arxiv_id(p.id) for p in papers)
    for p in papers:  # no made-up id reaches arxiv.org/abs, /pdf or huggingface.co/papers/<id>
        title_url, row = paper_links(p)
        assert title_url == "https://huggingface.co/papers?q=" + quote_plus(p.title[:200])
        assert {label for label, _ in row} >= {"Find on arXiv", "Find on Hugging Face"}
        assert not any(p.id in url for _, url in row)
    html = renderer.render_html(Digest("ada@example.org", DAY, [ranked(p) for p in papers[:5]]), subscriber(), LINKS)
    assert "Demo: these papers come from the bundled sample listings" in html


def test_a_sample_digest_says_so(renderer):
    sample = paper(4, id="sample-2512-41234", url="https://huggingface.co/papers?q=x")
    html = renderer.render_html(Digest("ada@example.org", DAY, [ranked(sample)]), subscriber(), LINKS)
    assert "Demo: these papers come from the bundled sample listings" in html
    assert "arxiv.org/abs" not in html and "arxiv.org/pdf" not in html
    assert "bundled sample" not in renderer.render_html(
        Digest("ada@example.org", DAY, [ranked(paper(1))]), subscriber(), LINKS)


@pytest.mark.parametrize("raw, clean", [
    ("by substituting 20\\% of the standard RL data", "by substituting 20% of the standard RL data"),
    ("LeC$^2$O-NeRF: Learning Continuous", "LeC²O-NeRF: Learning Continuous"),
    ("a ratio at the order of 1-mathcal O(1/K), which", "a ratio at the order of 1-O(1/K), which"),
    ("runs in $\\mathcal{O}(NT)$ time", "runs in O(NT) time"),
    ("on several D4RL benchmarks~fu2020d4rl, certain offline RL", "on several D4RL benchmarks, certain offline RL"),
    ("as shown in~\\cite{smith2020,lee2021}.", "as shown in."),
    ("1)~a relabeler that describes", "1) a relabeler that describes"),
    ("wav2vec~2.0 by more than~30\\% relatively", "wav2vec 2.0 by more than 30% relatively"),
    ("baseline by ~3% and", "baseline by ~3% and"),
    ("remarkable performance {\\it without} negative pairs", "remarkable performance without negative pairs"),
    ("Generative Value Learning (\\GVL), a universal", "Generative Value Learning (GVL), a universal"),
    ("advancements\\url{https://github.com/x/y}", "advancementshttps://github.com/x/y"),
    ("with $\\alpha \\leq 0.5$ and $x_t$", "with α ≤ 0.5 and x_t"),
    ("Plain text stays as it is: R^3, c^*, {braces}.", "Plain text stays as it is: R^3, c^*, braces."),
])
def test_latex_leftovers_are_cleaned(raw, clean):
    assert clean_text(raw) == clean


def test_cards_show_a_few_chips_then_a_count(renderer):
    keywords = [f"keyword {n}" for n in range(7)]
    html = renderer.render_html(Digest("ada@example.org", DAY, [ranked(paper(1), *keywords)]),
                                subscriber(keywords=keywords), LINKS)
    doc = doc_of(html)
    assert [c.text for c in doc.find_class("chip")] == keywords[:MAX_CHIPS]
    assert doc.find_class("chip-more")[0].text == f"+{7 - MAX_CHIPS}"


# ---------------------------------------------------------------- what the web view keeps


def test_a_kept_digest_comes_back_with_its_order_and_explanations():
    papers = [paper(n) for n in range(3)]
    digest = Digest("ada@example.org", DAY, [ranked(p, "reward models") for p in reversed(papers)],
                    [paper(9)], period="weekly")
    contents = encode_digest(digest)
    assert len(contents) < 150 * 4
    stored = {p.id: p for p in [*papers, paper(9)]}
    assert paper_ids(contents) == [p.id for p in reversed(papers)] + [paper(9).id]
    back = decode_digest(contents, "ada@example.org", DAY, stored)
    assert [r.paper.id for r in back.papers] == [p.id for p in reversed(papers)]
    assert back.papers[0].matches == digest.papers[0].matches and back.period == "weekly"
    assert "reward model" in back.papers[0].snippet.lower()
    assert [p.id for p in back.trending] == [paper(9).id]
    gone = decode_digest(contents, "ada@example.org", DAY, {papers[0].id: papers[0]})
    assert [r.paper.id for r in gone.papers] == [papers[0].id] and gone.trending == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_confirmation_and_welcome_mails_share_the_look_and_pass_contrast(scheme):
    from flows.web.app import web_environment
    from flows.web.signup import confirmation_message, welcome_message

    settings = Settings(public_base_url="https://paperboy.example.org",
                        secret_key="layout-test-key-0123456789-abcdefghijkl")
    env = web_environment(TEMPLATES / "web")
    mails = [confirmation_message(env, settings, "ada@example.org", "https://paperboy.example.org/confirm/t",
                                  ["world models", "RL"]),
             welcome_message(env, settings, "layout-test-key-0123456789-abcdefghijkl", "ada@example.org",
                             ["world models", "RL"])]
    for mail in mails:
        html = mail.get_body(("html",)).get_content()
        doc = doc_of(html)
        assert doc.find_class("wrap")[0].get("width") == "600" and doc.get("lang") == "en"
        assert [c.text for c in doc.find_class("chip")] == ["world models", "RL"]
        runs = text_colours(html, scheme)
        assert runs and [r for r in runs if contrast(r[1], r[2]) < 4.5] == []


def test_a_catch_up_digest_covers_its_range_and_says_so():
    from flows.compose import compose
    from flows.corpus import Corpus

    settings = Settings(public_base_url="https://paperboy.example.org")
    papers = [paper(n, listed=date(2026, 2, 1 + n)) for n in range(20)]
    catch_up = compose(subscriber(), Corpus(papers, settings, date(2026, 2, 28), window=28), set())
    assert (catch_up.period, catch_up.since) == ("catch-up", date(2026, 2, 1)) and len(catch_up.papers) == 20
    context = digest_context(catch_up, subscriber(), LINKS)
    assert context["subject"].endswith("20 papers to catch up on · 1–28 Feb 2026")
    daily = compose(subscriber(), Corpus(papers, settings, date(2026, 2, 20)), set())
    assert (daily.period, daily.since) == ("", None)
