"""Rendering digests into email: escaping, links, headers, MIME structure, CSS inlining."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email import message_from_bytes
from email import policy as email_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import lxml.html
import pytest
from aiosmtplib.email import flatten_message

from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper, message_id_for
from flows.cards import MAX_MARKS, paper_card
from flows.render import (
    MAIL_POLICY,
    PreinlineError,
    RenderError,
    Renderer,
    abstract_snippet,
    digest_context,
    highlight,
    inline_css,
    inlining_key,
    preinline_template,
    probe_styles,
    safe_url,
    write_inlined,
)
from flows.settings import PROJECT_ROOT, Settings
from flows.subscribers import Subscriber

TEMPLATES = PROJECT_ROOT / "templates"
DAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 6, 30, tzinfo=timezone.utc)

# Public listing text from Hugging Face Papers (tests/../shared/seeds): title, abstract
# (first sentences), author count, published date, upvotes.
SEED_PAPERS = [
    (
        "Value Gradient weighted Model-Based Reinforcement Learning",
        "Model-based reinforcement learning (MBRL) is a sample efficient technique to obtain "
        "control policies, yet unavoidable modeling errors often lead performance deterioration. "
        "The model in MBRL is often solely fitted to reconstruct dynamics, state observations in "
        "particular, while the impact of model error on the policy is not captured by the "
        "training objective. This leads to a mismatch between the intended goal of MBRL, enabling "
        "good policy and value learning, and the target of the loss function employed in "
        "practice, future state prediction.",
        4, date(2022, 4, 4), 0,
    ),
    (
        "The Edge-of-Reach Problem in Offline Model-Based Reinforcement Learning",
        "Offline reinforcement learning aims to train agents from pre-collected datasets. "
        "However, this comes with the added challenge of estimating the value of behaviors not "
        "covered in the dataset. Model-based methods offer a potential solution by training an "
        "approximate dynamics model, which then allows collection of additional synthetic data "
        "via rollouts in this model. The prevailing theory treats this approach as online RL in "
        "an approximate dynamics model, and any remaining performance gap is therefore understood "
        "as being due to dynamics model errors.",
        4, date(2024, 2, 19), 0,
    ),
    (
        "General Preference Modeling with Preference Representations for Aligning Language Models",
        "Modeling human preferences is crucial for aligning foundation models with human values. "
        "Traditional reward modeling methods, such as the Bradley-Terry (BT) reward model, fall "
        "short in expressiveness, particularly in addressing intransitive preferences. Although "
        "supervised pair preference models (PairPM) can express general preferences, their "
        "implementation is highly ad-hoc and cannot guarantee a consistent preference "
        "probability of compared pairs.",
        5, date(2024, 10, 3), 4,
    ),
    (
        "RewardAnything: Generalizable Principle-Following Reward Models",
        "Reward Models, essential for guiding Large Language Model optimization, are typically "
        "trained on fixed preference datasets, resulting in rigid alignment to single, implicit "
        "preference distributions. This prevents adaptation to diverse real-world needs-from "
        "conciseness in one task to detailed explanations in another.",
        10, date(2026, 6, 4), 0,
    ),
    (
        "Vision Language Models are In-Context Value Learners",
        "Predicting temporal progress from visual trajectories is important for intelligent "
        "robots that can learn, adapt, and improve. However, learning such progress estimator, or "
        "temporal value function, across different tasks and domains requires both a large "
        "amount of diverse data and methods which can scale and generalize. To address these "
        "challenges, we present Generative Value Learning (\\GVL), a universal value function "
        "estimator that leverages the world knowledge embedded in vision-language models (VLMs) "
        "to predict task progress.",
        18, date(2024, 11, 7), 0,
    ),
    (
        "CLIMB: Curriculum Learning for Infant-inspired Model Building",
        "We describe our team's contribution to the STRICT-SMALL track of the BabyLM Challenge. "
        "The challenge requires training a language model from scratch using only a relatively "
        "small training dataset of ten million words. We experiment with three variants of "
        "cognitively-motivated curriculum learning and analyze their effect on the performance "
        "of the model on linguistic evaluation tasks.",
        7, date(2023, 11, 15), 0,
    ),
]
AUTHOR_NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Kurt Gödel", "Emmy Noether",
                "John von Neumann", "Claude Shannon", "Barbara Liskov", "李飞飞", "Yann LeCun",
                "Edsger Dijkstra", "Donald Knuth", "Frances Allen", "Tim Berners-Lee", "Radia Perlman",
                "Leslie Lamport", "Margaret Hamilton", "Dennis Ritchie")


def make_paper(index: int, **changes) -> Paper:
    title, abstract, n_authors, published, upvotes = SEED_PAPERS[index % len(SEED_PAPERS)]
    arxiv_id = f"2411.{10000 + index:05d}"
    fields = dict(
        id=arxiv_id,
        title=title,
        abstract=abstract,
        listed=DAY,
        authors=AUTHOR_NAMES[:n_authors],
        published=published,
        upvotes=upvotes + index,
        comments=index % 3,
        github_repo=f"https://github.com/example/repo-{index}" if index % 2 == 0 else None,
        project_page=f"https://example.org/projects/{index}" if index % 3 == 0 else None,
        url=f"https://huggingface.co/papers/{arxiv_id}",
        source="huggingface",
    )
    fields.update(changes)
    return Paper(**fields)


def ranked(paper: Paper, *matches: Match) -> RankedPaper:
    return RankedPaper(paper=paper, score=1.0, matches=matches or (
        Match("reinforcement learning", ("title", "abstract"), ("reinforcement learning",)),
        Match("RL", ("abstract",), ("RL",)),
    ))


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(
        db_path=tmp_path_factory.mktemp("render") / "paperboy.db",
        mail_from="Paperboy <paperboy@news.example.org>",
        list_id="daily.paperboy.example.org",
        public_base_url="https://paperboy.example.org",
    )


@pytest.fixture(scope="module")
def renderer(settings: Settings) -> Renderer:  # loading inlines the CSS once: share it
    return Renderer(TEMPLATES, settings=settings)


@pytest.fixture
def subscriber() -> Subscriber:
    return Subscriber(email="ada@example.com", name="Ada Lovelace",
                      keywords=["reinforcement learning", "RL", "preference"])


LINKS = DigestLinks(
    preferences="https://paperboy.example.org/preferences/ImFkYUBleGFtcGxlLmNvbSI.ZzZ4Yw.prefs-signature-abc",
    unsubscribe="https://paperboy.example.org/unsubscribe/ImFkYUBleGFtcGxlLmNvbSI.ZzZ4Yw.unsub-signature-xyz123",
    unsubscribe_mailto="mailto:paperboy@news.example.org?subject=unsubscribe",
)


def digest_of(papers: list[RankedPaper], trending: list[Paper] | None = None,
              email: str = "ada@example.com") -> Digest:
    return Digest(subscriber=email, digest_date=DAY, papers=papers, trending=trending or [])


def twenty_paper_digest() -> Digest:
    return digest_of([ranked(make_paper(i)) for i in range(20)],
                     trending=[make_paper(100 + i, upvotes=50 - i) for i in range(5)])


def hostile_digest() -> Digest:
    evil = make_paper(
        0,
        title="<script>alert(1)</script> & Friends",
        abstract='We show <img src=x onerror="alert(2)"> that A & B < C holds.',
        project_page="javascript:alert(3)",
        github_repo="data:text/html,<script>alert(4)</script>",
        authors=('Mallory "<b>" O\'Brien',),
    )
    return digest_of([ranked(evil, Match("script", ("title",), ("script",)))])


def parse(html: str):
    return lxml.html.document_fromstring(html)


def hrefs(html: str) -> list[str]:
    return [a.get("href") for a in parse(html).iter("a")]


# ---------------------------------------------------------------- escaping and links


def test_hostile_title_and_abstract_are_escaped_text(renderer, subscriber):
    html = renderer.render_html(hostile_digest(), subscriber, LINKS)
    doc = parse(html)
    assert not list(doc.iter("script")) and not list(doc.iter("img")) and not list(doc.iter("b"))
    text = doc.text_content()
    assert "<script>alert(1)</script> & Friends" in text
    assert 'We show <img src=x onerror="alert(2)"> that A & B < C holds.' in text
    assert "&lt;script&gt;" in html and "A &amp; B &lt; C" in html
    assert [" ".join(m.text_content().split()) for m in doc.find_class("chip")] == ["script"]
    assert not list(doc.find_class("hl"))  # titles are never highlighted; the snippet has no match


def test_non_http_links_are_never_linked(renderer, subscriber):
    digest = hostile_digest()
    for html in (renderer.render_html(digest, subscriber, LINKS),
                 renderer.render_html_bare(digest, subscriber, LINKS)):
        links = hrefs(html)
        assert links and all(link.startswith(("https://", "http://")) for link in links)
        assert ">Project<" not in html and ">Code<" not in html
    text = renderer.render_text(digest, subscriber, LINKS)
    assert "javascript:" not in text and "data:" not in text


@pytest.mark.parametrize("url, expected", [
    ("https://arxiv.org/abs/2411.00001", "https://arxiv.org/abs/2411.00001"),
    ("HTTP://example.org/a?b=1&c=2", "HTTP://example.org/a?b=1&c=2"),
    ("javascript:alert(1)", ""),
    ("JaVaScRiPt:alert(1)", ""),
    (" javascript:alert(1)", ""),
    ("java\tscript:alert(1)", ""),
    ("data:text/html,hi", ""),
    ("//evil.example/x", ""),
    ("https:///nohost", ""),
    ('https://example.org/"onmouseover="x', ""),
    ("https://example.org/a b", ""),
    ("https://example.org/über", "https://example.org/%C3%BCber"),
    (None, ""),
    ("", ""),
])
def test_safe_url(url, expected):
    assert safe_url(url) == expected


def test_bad_unsubscribe_link_is_refused(renderer, subscriber):
    bad = DigestLinks(LINKS.preferences, "javascript:alert(1)", LINKS.unsubscribe_mailto)
    with pytest.raises(RenderError):
        renderer.render_message(twenty_paper_digest(), subscriber, bad)


# ---------------------------------------------------------------- highlighting


def test_highlight_is_whole_word_and_case_insensitive():
    out = highlight("RL in the real world: rl, RL-based, WORLDRL", ["RL"])
    assert str(out).count('class="hl"') == 3
    assert "the real world: " in str(out) and "WORLDRL" in str(out)
    assert re.findall(r'<span class="hl"[^>]*>(.*?)</span>', str(out)) == ["RL", "rl", "RL"]


def test_highlight_escapes_everything_else_and_prefers_longest_term():
    out = str(highlight("Model-based  RL <b>beats</b> model-free & co", ["RL", "model-based RL"]))
    assert "&lt;b&gt;beats&lt;/b&gt;" in out and "&amp; co" in out
    assert re.findall(r'<span class="hl"[^>]*>(.*?)</span>', out) == ["Model-based  RL"]
    assert str(highlight("a <i> b", [])) == "a &lt;i&gt; b"


def _marked_words(out) -> list[str]:
    return re.findall(r'<span class="hl"[^>]*>(.*?)</span>', str(out))


@pytest.mark.parametrize("gap", [" ", "   "])  # one space: the str.find path; more: the regex path
def test_highlight_never_starts_a_phrase_inside_a_hyphenated_compound(gap):
    # As the ranking counts them (flows.rank.postings): "world models" is not in
    # "real-world models", but "image generation" is in "text-to-image generation".
    text = f"Real-world{gap}models beat world{gap}models in text-to-image{gap}generation and BC-RL."
    terms = ["world models", "image generation", "RL", "models"]
    assert _marked_words(highlight(text, terms)) == [
        "models", f"world{gap}models", f"image{gap}generation", "RL"]
    # without a shorter term to fall back on, the compound's words stay unmarked
    assert _marked_words(highlight(f"Real-world{gap}models", ["world models"])) == []
    assert _marked_words(highlight(f"real\u2013world{gap}models", ["world models"])) == []


def test_chips_say_what_matched_and_only_snippet_words_are_marked(renderer, subscriber):
    doc = parse(renderer.render_html(twenty_paper_digest(), subscriber, LINKS))
    first = doc.find_class("card-cell")[0]
    assert not list(first.find_class("title")[0].find_class("hl"))
    assert [c.text for c in first.find_class("chip")] == ["reinforcement learning", "RL"]
    marks = [m.text for m in first.find_class("text")[0].find_class("hl")]
    assert marks and set(m.lower() for m in marks) <= {"reinforcement learning", "rl", "mbrl"}
    text = renderer.render_text(twenty_paper_digest(), subscriber, LINKS)
    assert "Matched: reinforcement learning (title, abstract), RL (abstract)" in " ".join(text.split())


def test_at_most_a_few_highlights_per_card():
    abstract = " ".join(["RL beats RL, and reinforcement learning helps RL."] * 8)
    item = ranked(make_paper(0, abstract=abstract))
    card = paper_card(item)
    assert str(card["text_html"]).count('class="hl"') == MAX_MARKS == 3
    digest = digest_of([ranked(make_paper(i, abstract=abstract)) for i in range(20)])
    html = Renderer(TEMPLATES, settings=Settings(public_base_url="https://x.example")).render_html(
        digest, Subscriber(email="ada@example.com", keywords=["RL"]), LINKS)
    assert html.count('class="hl"') <= 3 * 20


def test_precomputed_snippet_is_used(renderer, subscriber):
    @dataclass(frozen=True, slots=True)
    class WithSnippet(RankedPaper):
        snippet: str = ""

    item = WithSnippet(make_paper(1), 1.0, (Match("RL", ("abstract",), ("RL",)),),
                       snippet="…treats this approach as online RL in an approximate dynamics model…")
    doc = parse(renderer.render_html(digest_of([item]), subscriber, LINKS))
    snippet = doc.find_class("text")[0]
    assert snippet.text_content().startswith("…treats this approach as online RL")
    assert [m.text for m in snippet.find_class("hl")] == ["RL"]


def test_abstract_snippet_cuts_at_a_word():
    abstract = SEED_PAPERS[0][1]
    snippet = abstract_snippet(abstract)
    assert 250 < len(snippet) <= 301 and snippet.endswith("…")
    assert abstract.startswith(snippet[:-1]) and abstract[len(snippet) - 1] in " ,."


# ---------------------------------------------------------------- content


def test_paper_details_in_html_and_text(renderer, subscriber):
    digest = twenty_paper_digest()
    html = renderer.render_html(digest, subscriber, LINKS)
    doc = parse(html)
    assert doc.find_class("headline")[0].text == "20 new papers for you"
    assert doc.find_class("brand")[0].text == "Paperboy · 21 Nov 2026"
    assert doc.find_class("summary")[0].text == "reinforcement learning 20 · RL 20"
    cards = doc.find_class("card-cell")
    assert len(cards) == 20
    fifth = cards[4]  # 18 authors: the first two, then the last
    assert " ".join(fifth.find_class("byline")[0].text_content().split()) == (
        "Ada Lovelace, Alan Turing … Dennis Ritchie · 4 upvotes · 1 comment · published 7 Nov 2024")
    old = cards[5]  # published long before it was listed: says when
    assert "published 15 Nov 2023" in old.find_class("byline")[0].text_content()
    title = cards[0].find_class("title")[0]
    assert title.tag == "h2" and title.find("a").get("href") == "https://arxiv.org/abs/2411.10000"
    row = [(a.text, a.get("href")) for a in cards[0].find_class("links")[0].iter("a")]
    assert row == [("arXiv", "https://arxiv.org/abs/2411.10000"), ("PDF", "https://arxiv.org/pdf/2411.10000"),
                   ("Hugging Face", "https://huggingface.co/papers/2411.10000"),
                   ("Code", "https://github.com/example/repo-0"), ("Project", "https://example.org/projects/0")]
    assert [a.text for a in cards[1].find_class("links")[0].iter("a")] == ["arXiv", "PDF", "Hugging Face"]
    trending = [" ".join(p.text_content().split()) for p in doc.find_class("trending-item")]
    assert trending[0] == "Vision Language Models are In-Context Value Learners · 50 upvotes"

    text = " ".join(renderer.render_text(digest, subscriber, LINKS).split())
    assert "20 new papers for you" in text
    assert "Ada Lovelace, Alan Turing … Dennis Ritchie · 4 upvotes · 1 comment" in text
    assert "Matched: reinforcement learning (title, abstract), RL (abstract)" in text
    assert "PDF: https://arxiv.org/pdf/2411.10000" in text
    assert "ALSO TRENDING" in text


def test_the_tldr_replaces_the_snippet_and_says_what_it_is(renderer, subscriber):
    summary = "A benchmark showing that RL fine-tuning improves reward models."
    doc = parse(renderer.render_html(digest_of([ranked(make_paper(0, ai_summary=summary))]), subscriber, LINKS))
    text = doc.find_class("text")[0]
    assert " ".join(text.text_content().split()) == f"AI summary: {summary}"
    assert text.find_class("label")[0].text == "AI summary:"
    assert [m.text for m in text.find_class("hl")] == ["RL"]


def test_a_related_match_gets_its_own_chip_and_feedback_links_fit(renderer, subscriber):
    @dataclass(frozen=True, slots=True)
    class Tiered(Match):  # the ranker's tiers, as Match will carry them
        tier: str = "exact"
        via: tuple[str, ...] = ()

    related = Tiered("deep reinforcement learning", ("abstract",), (), tier="related",
                     via=("policy gradient", "reward", "agent", "critic"))
    links = DigestLinks(**{**LINKS.__dict__, "feedback": "https://paperboy.example.org/feedback/tok"})
    doc = parse(renderer.render_html(digest_of([ranked(make_paper(0), related)]), subscriber, links))
    chip = doc.find_class("chip-related")[0]
    assert chip.text == "related to deep reinforcement learning: policy gradient, reward, agent"
    feedback = [(a.text, a.get("href")) for a in doc.find_class("feedback-link")]
    assert feedback == [("More", "https://paperboy.example.org/feedback/tok/2411.10000/more"),
                        ("less like this", "https://paperboy.example.org/feedback/tok/2411.10000/less")]
    # in the row of links, so the card keeps its height; the names say which paper
    assert all(a.getparent().get("class") == "links" for a in doc.find_class("feedback-link"))
    assert [a.get("aria-label").split(":")[0] for a in doc.find_class("feedback-link")] == ["More like this", "Less like this"]
    # the name holds the visible words (WCAG 2.5.3: "click less like this" works by voice)
    assert all(a.text_content().lower() in a.get("aria-label").lower() for a in doc.find_class("feedback-link"))
    assert doc.find_class("summary")[0].text == "1 related"


def test_text_part_is_plain_wrapped_and_urls_stand_alone(renderer, subscriber):
    text = renderer.render_text(twenty_paper_digest(), subscriber, LINKS)
    assert not re.search(r"<[a-z/!]", text)
    urls = re.findall(r"https?://\S+", text)
    assert len(urls) > 40
    for line in text.splitlines():
        if "://" in line:  # a URL alone, or after its label on a line that fits
            assert re.fullmatch(r"\s*([A-Za-z ]+: )?https?://\S+", line), line
            assert len(line) <= 72 or re.fullmatch(r"\s*https?://\S+", line), line
        else:
            assert len(line) <= 72, line
    assert f"Unsubscribe:\n{LINKS.unsubscribe}\n" in text
    assert f"Edit your keywords:\n{LINKS.preferences}\n" in text


def test_footer_links_and_reason_are_visible(renderer, subscriber):
    doc = parse(renderer.render_html(twenty_paper_digest(), subscriber, LINKS))
    footer = doc.find_class("footer")[0]
    anchors = {a.text: a.get("href") for a in footer.iter("a")}
    assert anchors == {"Edit your keywords": LINKS.preferences, "Unsubscribe": LINKS.unsubscribe}
    with_view = DigestLinks(**{**LINKS.__dict__, "web_view": "https://paperboy.example.org/digest/tok"})
    doc = parse(renderer.render_html(twenty_paper_digest(), subscriber, with_view))
    top = doc.find_class("topline-link")[0]
    bottom = {a.text: a.get("href") for a in doc.find_class("footer")[0].iter("a")}
    assert (top.text, top.get("href")) == ("View in browser", with_view.web_view)
    assert bottom["View this digest in your browser"] == with_view.web_view
    assert with_view.web_view in renderer.render_text(twenty_paper_digest(), subscriber, with_view)
    assert "ada@example.com subscribed to Paperboy with the keywords: reinforcement learning, RL, preference" \
        in footer.text_content()


def test_empty_digest(renderer, subscriber):
    message = renderer.render_message(digest_of([]), subscriber, LINKS, now=NOW)
    assert message["Subject"] == "No new papers for your keywords today · 21 Nov 2026"
    html = message.get_body(("html",)).get_content()
    assert "Nothing new matched your keywords." in html
    assert not parse(html).find_class("card-cell")
    assert LINKS.unsubscribe in message.get_body(("plain",)).get_content()


# ---------------------------------------------------------------- the message


def roundtrip(message) -> object:
    raw = message.as_bytes()
    return raw, message_from_bytes(raw, policy=email_policy.default)


def test_multipart_alternative_plain_first_utf8_roundtrip(renderer, subscriber):
    papers = [ranked(make_paper(0, title="Über-effiziente 数据 Synthese für RL")), ranked(make_paper(1))]
    raw, parsed = roundtrip(renderer.render_message(digest_of(papers), subscriber, LINKS, now=NOW))
    assert raw.isascii()  # 7-bit clean: quoted-printable bodies, RFC 2047 headers
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert "Über-effiziente 数据 Synthese für RL" in parts[0].get_content()
    title = parse(parts[1].get_content()).find_class("title")[0].text_content()
    assert title == "Über-effiziente 数据 Synthese für RL"


def test_headers(renderer, subscriber):
    digest = twenty_paper_digest()
    raw, parsed = roundtrip(renderer.render_message(digest, subscriber, LINKS, now=NOW))
    assert parsed["From"] == "Paperboy <paperboy@news.example.org>"
    assert parsed["To"] == "Ada Lovelace <ada@example.com>"
    assert parsed["Subject"] == "Reinforcement learning, RL: 20 new papers · 21 Nov 2026"
    assert parsedate_to_datetime(parsed["Date"]) == NOW
    assert parsed["Date"].endswith("+0000")
    assert parsed["Message-ID"] == message_id_for("ada@example.com", DAY) == digest.message_id
    assert parsed["List-Id"] == "Paperboy digest <daily.paperboy.example.org>"
    assert parsed["List-Unsubscribe"] == f"<{LINKS.unsubscribe}>, <{LINKS.unsubscribe_mailto}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["MIME-Version"] == "1.0"


def test_message_id_is_deterministic(renderer, subscriber):
    first = renderer.render_message(twenty_paper_digest(), subscriber, LINKS)
    again = renderer.render_message(digest_of([]), subscriber, LINKS)
    other_day = Digest(subscriber="ada@example.com", digest_date=date(2026, 11, 22), papers=[])
    assert first["Message-ID"] == again["Message-ID"]
    assert renderer.render_message(other_day, subscriber, LINKS)["Message-ID"] != first["Message-ID"]


def test_list_unsubscribe_survives_any_flattening(renderer, subscriber):
    message = renderer.render_message(twenty_paper_digest(), subscriber, LINKS, now=NOW)
    # The message's own policy, and the stock SMTP policy aiosmtplib.send_message flattens with.
    for raw in (message.as_bytes(), flatten_message(message)):
        assert b"=?utf-8?q?=3Chttp" not in raw and LINKS.unsubscribe.encode() in raw
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        parsed = message_from_bytes(raw, policy=email_policy.default)
        assert parsed["List-Unsubscribe"] == f"<{LINKS.unsubscribe}>, <{LINKS.unsubscribe_mailto}>"


def test_header_injection_through_the_name_is_impossible(renderer):
    forged = Subscriber.model_construct(
        email="eve@example.com", name="Eve\r\nBcc: evil@example.com", keywords=["RL"],
        include_trending=False, frequency="daily",
    )
    message = renderer.render_message(digest_of([], email="eve@example.com"), forged, LINKS, now=NOW)
    raw, parsed = roundtrip(message)
    assert b"\nBcc:" not in raw and b"\r\nBcc" not in raw
    assert parsed.get_all("Bcc") is None
    assert len(parsed.get_all("To")) == 1
    assert [a.addr_spec for a in parsed["To"].addresses] == ["eve@example.com"]


def test_unusable_address_or_wrong_subscriber_is_refused(renderer, subscriber):
    forged = Subscriber.model_construct(email="eve@example.com\r\nBcc: x@example.com", name="",
                                        keywords=["RL"], frequency="daily")
    with pytest.raises(RenderError):
        renderer.render_message(digest_of([], email=forged.email), forged, LINKS)
    with pytest.raises(RenderError, match="cannot be mailed"):
        renderer.render_message(digest_of([], email="bob@example.com"), subscriber, LINKS)


def test_policy_is_smtp(renderer, subscriber):
    message = renderer.render_message(digest_of([]), subscriber, LINKS)
    assert message.policy is MAIL_POLICY and MAIL_POLICY.linesep == "\r\n"


# ---------------------------------------------------------------- CSS inlining


def canonical(html: str) -> list[tuple]:
    """Element tree as (tag, attributes, text, tail), whitespace and style spacing normalised."""
    def norm(text):
        return " ".join((text or "").split())

    def attrs(element):
        items = dict(element.attrib)
        if "style" in items:
            items["style"] = ";".join(part.strip() for part in items["style"].split(";") if part.strip())
        return tuple(sorted(items.items()))

    return [(str(el.tag), attrs(el) if isinstance(el.tag, str) else (), norm(el.text), norm(el.tail))
            for el in parse(html).iter()]


def sample_digests() -> list[Digest]:
    unicode_paper = make_paper(3, title="Über 数据: RL für alle", url="")
    return [
        twenty_paper_digest(),
        digest_of([]),
        hostile_digest(),
        digest_of([ranked(unicode_paper), ranked(make_paper(7, authors=()))]),
        digest_of([ranked(make_paper(2))], trending=[make_paper(9, url="javascript:x")]),
    ]


@pytest.mark.parametrize("index", range(5))
def test_preinlined_render_equals_per_email_premailer(renderer, subscriber, index):
    assert renderer.inline_mode == "pre-inlined"
    digest = sample_digests()[index]
    fast = renderer.render_html(digest, subscriber, LINKS)
    reference = inline_css(renderer.render_html_bare(digest, subscriber, LINKS), renderer.css)
    assert canonical(fast) == canonical(reference)
    assert "PBX" not in fast


def test_inline_styles_are_on_the_elements(renderer, subscriber):
    html = renderer.render_html(twenty_paper_digest(), subscriber, LINKS)
    doc = parse(html)
    title_link = doc.find_class("title-link")[0]
    assert "color:#0b57d0" in title_link.get("style").replace(" ", "")
    assert "max-width:600px" in doc.find_class("wrap")[0].get("style").replace(" ", "")
    # every classed element carries its styles itself; nothing relies on the class
    classed = [el for el in doc.iter() if isinstance(el.tag, str) and el.get("class")]
    assert classed and all(el.get("style") for el in classed)
    # what stays in <style> is only what cannot be inlined: @media and :hover
    leftover = "".join(style.text for style in doc.iter("style"))
    assert "@media" in leftover and ":hover" in leftover and "max-width: 600px" not in leftover
    assert "prefers-color-scheme: dark" in leftover


def test_preinlined_template_keeps_jinja_intact(renderer):
    source = renderer.env.loader.get_source(renderer.env, "digest.inlined.html.j2")[0]
    assert '<a class="title-link" href="{{ p.url | safe_url }}" style=' in source
    assert "%7B" not in source and "PBX" not in source
    assert source.count("{%") == (TEMPLATES / "digest.html.j2").read_text().count("{%")


@pytest.mark.parametrize("template, reason", [
    ('<p class="{{ kind }}">x</p>', "class, id or style"),
    ('<p style="color: {{ colour }}">x</p>', "class, id or style"),
    ('{% include "other.html.j2" %}', "include"),
    ('<p {% if x %}hidden{% endif %}>x</p>', "moved or dropped"),
])
def test_preinlining_refuses_what_it_cannot_do_exactly(template, reason):
    with pytest.raises(PreinlineError, match=reason):
        preinline_template(f"<html><body>{template}</body></html>", "p { color: red }")


def test_structural_css_falls_back_to_per_email_inlining(tmp_path, settings, subscriber):
    for name in ("digest.html.j2", "digest.txt.j2", "digest.css"):
        shutil.copy(TEMPLATES / name, tmp_path / name)
    with (tmp_path / "digest.css").open("a") as css:
        css.write("\n.chip + .chip { border-top: 3px solid #c00; }\n")
    slow = Renderer(tmp_path, settings=settings)
    assert slow.inline_mode == "per-email"
    chips = parse(slow.render_html(twenty_paper_digest(), subscriber, LINKS)).find_class("chip")
    assert "3px solid #c00" not in chips[0].get("style") and "3px solid #c00" in chips[1].get("style")


def test_stored_inlining_is_what_inlining_now_gives(settings):
    """templates/digest.inlined.json is current: regenerate it with `python -m flows.render`
    after changing digest.html.j2 or digest.css (a stale file is ignored, so this only
    costs every process a premailer import)."""
    stored = json.loads((TEMPLATES / "digest.inlined.json").read_text(encoding="utf-8"))
    source = (TEMPLATES / "digest.html.j2").read_text(encoding="utf-8")
    css = (TEMPLATES / "digest.css").read_text(encoding="utf-8")
    assert stored["key"] == inlining_key(source, css)
    assert stored["template"] == preinline_template(source, css)
    assert stored["styles"] == probe_styles(css)._asdict()
    renderer = Renderer(TEMPLATES, settings=settings)
    assert renderer.styles == probe_styles(css) and renderer.inline_mode == "pre-inlined"


def test_stale_stored_inlining_is_ignored(tmp_path, settings, subscriber):
    for name in ("digest.html.j2", "digest.txt.j2", "digest.css"):
        shutil.copy(TEMPLATES / name, tmp_path / name)
    write_inlined(tmp_path)
    stored = Renderer(tmp_path, settings=settings)
    assert stored.render_html(twenty_paper_digest(), subscriber, LINKS) == \
        Renderer(TEMPLATES, settings=settings).render_html(twenty_paper_digest(), subscriber, LINKS)
    with (tmp_path / "digest.css").open("a") as css:
        css.write("\n.hl { color: #c00; }\n")
    changed = Renderer(tmp_path, settings=settings)
    assert "#c00" in changed.styles.mark and "#c00" not in stored.styles.mark
    (tmp_path / "digest.inlined.json").write_text("{not json", encoding="utf-8")
    assert Renderer(tmp_path, settings=settings).styles == changed.styles


def test_context_is_reusable_without_a_renderer(subscriber):
    context = digest_context(twenty_paper_digest(), subscriber, LINKS)
    assert context["subject"] == "Reinforcement learning, RL: 20 new papers · 21 Nov 2026"
    assert len(context["papers"]) == 20 and context["papers"][0]["url"] == "https://arxiv.org/abs/2411.10000"
    assert context["links"] is LINKS


# ---------------------------------------------------------------- measurement (printed, not asserted)


def _median_ms(function, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def test_measure_render_costs(renderer, subscriber, capsys):
    digest = twenty_paper_digest()
    context = digest_context(digest, subscriber, LINKS)
    bare = renderer.env.get_template("digest.html.j2")
    fast = renderer.env.get_template("digest.inlined.html.j2")
    bare_ms = _median_ms(lambda: bare.render(context), 100)
    fast_ms = _median_ms(lambda: fast.render(context), 100)
    slow_ms = _median_ms(lambda: inline_css(bare.render(context), renderer.css), 25)
    context_ms = _median_ms(lambda: digest_context(digest, subscriber, LINKS), 50)
    message_ms = _median_ms(lambda: renderer.render_message(digest, subscriber, LINKS), 25)
    size = len(fast.render(context))
    with capsys.disabled():
        print(f"\n20-paper digest ({size / 1024:.0f} KB HTML), median per email: "
              f"bare render {bare_ms:.2f} ms, pre-inlined render {fast_ms:.2f} ms "
              f"({fast_ms / bare_ms:.2f}x), per-email premailer {slow_ms:.2f} ms "
              f"({slow_ms / bare_ms:.1f}x); context {context_ms:.2f} ms; "
              f"whole message (context + text + html + MIME) {message_ms:.2f} ms")
    assert bare_ms > 0 and fast_ms > 0 and slow_ms > 0
