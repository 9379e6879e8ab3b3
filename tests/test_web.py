"""The subscriber web app on real files, a real SQLite database and a real SMTP server."""

from __future__ import annotations

import functools
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from flows.links import make_confirm_token, make_token, make_view_token
from flows.models import Paper
from flows.store import Store
from flows.subscribers import find, load_all
from flows.web import create_app
from flows.web.app import web_environment
from flows.web.signup import confirmation_message
from flows.web.security import RedactTokens, csrf_token
from flows.web.signup import RateLimit
from tests.support.corpus import seed_papers
from tests.support.smtp import settings_for

KEY = "test-secret-key-0123456789-abcdefghij"
ADA = """\
# Ada's preferences; edited by hand too.
email: ada@example.org
name: Ada Lovelace   # shown in the greeting
keywords:
  - reinforcement learning  # the main interest
  - offline RL
# the rest are defaults spelled out
max_papers: 10
active: true
"""
BOB = "email: bob@example.org\nname: Bob\nkeywords: [curriculum learning]\n"
FORM = {"max_papers": "10", "frequency": "daily", "weekday": "monday"}


def today() -> date:
    return datetime.now(UTC).date()


def papers(listed: date) -> list[Paper]:
    return [
        Paper(id=p["id"], title=p["title"], abstract=p["abstract"], listed=listed,
              upvotes=p["upvotes"], url=f"https://huggingface.co/papers/{p['id']}",
              source="huggingface", authors=("Ada Author", "Bo Author"))
        for p in seed_papers()
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "ada.yaml").write_text(ADA, encoding="utf-8")
    (directory / "bob.yaml").write_text(BOB, encoding="utf-8")
    return directory


@pytest.fixture
def settings(smtp_server, tmp_path, folder):
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url="http://testserver")
    with Store(settings.db_path) as store:
        store.upsert_papers(papers(today()))
    return settings


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as client:
        yield client


@functools.cache  # one link per subscriber and purpose, as in a digest (the CSRF token is bound to it)
def token(email: str = "ada@example.org", purpose: str = "prefs") -> str:
    return make_token(KEY, email, purpose)


def csrf_in(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".yaml"}


def prefs_form(client: TestClient, tok: str, **values: str) -> dict[str, str]:
    return {"csrf": csrf_in(client.get(f"/preferences/{tok}").text), **FORM, **values}


def text_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


# -- preferences --------------------------------------------------------------------------------


def test_preferences_page_shows_keywords_preview_and_security_headers(client):
    response = client.get(f"/preferences/{token()}")
    assert response.status_code == 200
    assert "reinforcement learning\noffline RL</textarea>" in response.text
    # the server-side first preview: the matching papers, and how many each keyword matched
    assert "Value Gradient weighted Model-Based Reinforcement Learning" in response.text
    assert re.search(r'<span class="kw">offline RL</span> <span class="kw-count">\d+</span>', response.text)
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert not re.search(r"<script(?![^>]*\ssrc=)", response.text)  # no inline script at all
    assert client.get("/static/preferences.js").status_code == 200


def test_saving_preferences_writes_the_file_keeping_comments(client, folder):
    form = prefs_form(client, token(), keywords='curriculum learning\n"reward model", offline RL',
                      max_papers="5", frequency="weekly", weekday="friday", include_trending="on")
    response = client.post(f"/preferences/{token()}", data=form)
    assert response.status_code == 200
    assert "Saved." in response.text
    text = (folder / "ada.yaml").read_text()
    assert text.startswith("# Ada's preferences; edited by hand too.\n")
    assert "name: Ada Lovelace   # shown in the greeting" in text
    assert "# the rest are defaults spelled out" in text
    assert "  - offline RL" in text
    _, ada = find(folder, "ada@example.org")
    assert ada.keywords == ["curriculum learning", '"reward model"', "offline RL"]
    assert (ada.max_papers, ada.frequency, ada.weekday, ada.include_trending) == (5, "weekly", "friday", True)
    assert ada.active


def test_an_invalid_keyword_is_named_and_nothing_is_written(client, folder):
    before = snapshot(folder)
    form = prefs_form(client, token(), keywords="world models\ndiffusion^99")
    response = client.post(f"/preferences/{token()}", data=form)
    assert response.status_code == 422
    assert "Nothing was saved" in response.text
    assert "diffusion^99" in response.text and "outside the allowed" in response.text
    assert "world models\ndiffusion^99</textarea>" in response.text  # the edit is not lost
    assert snapshot(folder) == before


@pytest.mark.parametrize("keywords, message", [
    ("\n".join(f"topic {n}" for n in range(51)), "at most 50"),
    ("x" * 101, "longer than 100 characters"),
    ('"world models, planning', "unbalanced double quote"),
    ("", "at least one keyword"),
])
def test_bounded_and_malformed_keywords_are_refused(client, folder, keywords, message):
    before = snapshot(folder)
    response = client.post(f"/preferences/{token()}", data=prefs_form(client, token(), keywords=keywords))
    assert response.status_code == 422
    assert message in response.text
    assert snapshot(folder) == before


def test_the_preview_follows_the_edited_keywords_and_writes_nothing(client, folder):
    before = snapshot(folder)
    form = prefs_form(client, token())
    url = f"/preferences/{token()}/preview"
    rl = client.post(url, data={**form, "keywords": "reinforcement learning"}).json()
    curriculum = client.post(url, data={**form, "keywords": "curriculum learning"}).json()
    assert rl["ok"] and curriculum["ok"]
    assert "Value Gradient weighted Model-Based Reinforcement Learning" in rl["html"]
    assert "CLIMB: Curriculum Learning for Infant-inspired Model Building" in curriculum["html"]
    assert re.search(r"<span class=\"hl\">curriculum learning</span>", curriculum["html"], re.I)  # in the snippet
    assert "CLIMB" not in rl["html"]
    assert curriculum["count"] == 2 and "2 of 12 papers" in curriculum["summary"]
    excluded = client.post(url, data={**form, "keywords": "curriculum learning", "exclude": "infant"}).json()
    assert "CLIMB" not in excluded["html"] and excluded["count"] == 1
    assert snapshot(folder) == before


def seed_matches(pattern: str) -> set[str]:
    """Ids of the seed papers whose title or abstract has ``pattern`` (a whole-word regex):
    the expected answer, worked out without the ranker."""
    found = re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)
    return {p["id"] for p in seed_papers() if found.search(p["title"] + " " + p["abstract"])}


def test_the_preview_counts_every_matching_paper_not_a_digests_worth(client):
    learning = seed_matches(r"learn(?:s|ed|ing)?")
    reward = seed_matches(r"rewards?|rewarded|rewarding")
    assert len(learning) > 5 and len(reward) == 2  # the data behind this test
    form = prefs_form(client, token(), max_papers="1")
    body = client.post(f"/preferences/{token()}/preview", data={
        **form, "keywords": "learning\nreward\nquantum chromodynamics"}).json()
    assert body["count"] == len(learning | reward)
    assert f"{len(learning | reward)} of 12 papers" in body["summary"]
    assert "a digest lists the best 1" in body["summary"]
    counts = {k["keyword"]: (k["count"], k["note"]) for k in body["keywords"]}
    assert counts["learning"] == (len(learning), "broad")
    assert counts["reward"] == (2, "")
    assert counts["quantum chromodynamics"] == (0, "matches nothing")
    assert '<span class="kw">quantum chromodynamics</span> <span class="kw-count">0</span>' in body["html"]


def test_a_refused_save_marks_the_bad_line_and_keeps_the_saved_preview(client, folder):
    before = snapshot(folder)
    form = prefs_form(client, token(), keywords="world models\ncurriculum learning, diffusion^99")
    page = client.post(f"/preferences/{token()}", data=form)
    assert page.status_code == 422 and snapshot(folder) == before
    textarea = re.search(r"<textarea id=\"keywords\"[^>]*>", page.text).group(0)
    assert 'aria-invalid="true"' in textarea and "autofocus" in textarea
    assert 'data-error-line="2"' in textarea and "keywords-error" in textarea
    assert 'id="keywords-error">Line 2, “diffusion^99”: weight 99 is outside' in page.text
    # the preview still shows the saved keywords' papers, and says why it does not follow the edit
    assert "Fix line 2 of the keywords to update the preview" in page.text
    assert "Value Gradient weighted Model-Based Reinforcement Learning" in page.text


def test_saving_redirects_to_the_page_which_says_saved(client, folder):
    form = prefs_form(client, token(), keywords="curriculum learning")
    response = client.post(f"/preferences/{token()}", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/preferences/{token()}?saved=1"
    assert find(folder, "ada@example.org")[1].keywords == ["curriculum learning"]
    shown = client.get(response.headers["location"])
    assert shown.status_code == 200 and 'id="saved"' in shown.text and "Saved." in shown.text
    assert "curriculum learning</textarea>" in shown.text
    assert 'id="saved"' not in client.get(f"/preferences/{token()}").text


def test_subscribing_redirects_and_keeps_the_address_out_of_the_url(client, smtp_server):
    response = subscribe(client, "dora@example.org", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/subscribe?sent=1"
    assert "dora" not in response.headers["location"]
    assert "Check your inbox" in client.get("/subscribe?sent=1").text
    assert smtp_server.wait_for(1)


def test_the_preview_names_a_bad_keyword(client):
    form = prefs_form(client, token())
    response = client.post(f"/preferences/{token()}/preview", data={**form, "keywords": 'ok\ntitle:"'})
    assert response.status_code == 422
    body = response.json()
    assert body["ok"] is False and body["field"] == "keywords"
    assert "title:" in body["error"] and body["line"] == 2


# -- tokens and cross-site protection -------------------------------------------------------------


class _LongAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 400 * 86400  # older than every purpose's max age


def tampered(good: str) -> str:
    """The token with one signature character changed. Not the last ones: the final base64
    character of the signature carries unused bits, so changing it can leave the signature
    as it was (a flaky "tampered" token that still verifies)."""
    position = len(good) - 6
    return good[:position] + ("A" if good[position] != "A" else "B") + good[position + 1:]


def bad_tokens() -> dict[str, str]:
    good = token()
    return {
        "tampered": tampered(good),
        "other email signed": good.replace(good.split(".")[0], token("bob@example.org").split(".")[0]),
        "expired": URLSafeTimedSerializer(KEY, salt="paperboy-prefs", signer=_LongAgo).dumps("ada@example.org"),
        "other purpose": token(purpose="unsubscribe"),
        "other key": make_token("another-deployment", "ada@example.org", "prefs"),
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("kind", list(bad_tokens()))
def test_bad_preference_tokens_get_403_and_change_nothing(client, folder, kind):
    before = snapshot(folder)
    bad = bad_tokens()[kind]
    form = {**FORM, "keywords": "hijacked", "csrf": csrf_token(KEY, bad)}
    assert client.get(f"/preferences/{bad}").status_code == 403
    response = client.post(f"/preferences/{bad}", data=form)
    assert response.status_code == 403
    assert "This link does not work" in response.text
    assert client.post(f"/preferences/{bad}/preview", data=form).status_code == 403
    assert snapshot(folder) == before


@pytest.mark.parametrize("kind", ["expired", "other purpose", "tampered"])
def test_bad_unsubscribe_tokens_get_403_and_change_nothing(client, folder, kind):
    before = snapshot(folder)
    bad = {
        "expired": URLSafeTimedSerializer(KEY, salt="paperboy-unsubscribe", signer=_LongAgo).dumps("ada@example.org"),
        "other purpose": token(purpose="prefs"),
        "tampered": tampered(token(purpose="unsubscribe")),
    }[kind]
    assert client.get(f"/unsubscribe/{bad}").status_code == 403
    assert client.post(f"/unsubscribe/{bad}", data={"List-Unsubscribe": "One-Click"}).status_code == 403
    assert client.post(f"/resubscribe/{bad}", data={"csrf": csrf_token(KEY, bad)}).status_code == 403
    assert snapshot(folder) == before


def test_an_expired_token_says_so(client):
    expired = URLSafeTimedSerializer(KEY, salt="paperboy-prefs", signer=_LongAgo).dumps("ada@example.org")
    assert "expired" in client.get(f"/preferences/{expired}").text


@pytest.mark.parametrize("csrf", [None, "", "wrong", "other subscriber"])
def test_forms_without_their_csrf_token_are_refused(client, folder, csrf):
    before = snapshot(folder)
    form = {**FORM, "keywords": "hijacked"}
    if csrf == "other subscriber":
        form["csrf"] = csrf_in(client.get(f"/preferences/{token('bob@example.org')}").text)
    elif csrf is not None:
        form["csrf"] = csrf
    assert client.post(f"/preferences/{token()}", data=form).status_code == 403
    assert client.post(f"/preferences/{token()}/preview", data=form).status_code == 403
    assert client.post(f"/unsubscribe/{token(purpose='unsubscribe')}", data=form).status_code == 403
    assert client.post("/subscribe", data={**form, "email": "eve@example.org"}).status_code == 403
    assert snapshot(folder) == before


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
])
def test_cross_site_posts_are_refused_even_with_a_valid_csrf_token(client, folder, headers):
    before = snapshot(folder)
    form = prefs_form(client, token(), keywords="hijacked")
    response = client.post(f"/preferences/{token()}", data=form, headers=headers)
    assert response.status_code == 403
    assert "another site" in response.text
    assert snapshot(folder) == before


@pytest.mark.parametrize("headers", [
    {"Origin": "http://testserver"},
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # what no-referrer pages send to themselves
    {},
])
def test_same_origin_posts_are_accepted(client, folder, headers):
    form = prefs_form(client, token(), keywords="planning")
    assert client.post(f"/preferences/{token()}", data=form, headers=headers).status_code == 200
    assert find(folder, "ada@example.org")[1].keywords == ["planning"]


# -- unsubscribe --------------------------------------------------------------------------------


def test_get_unsubscribe_only_asks(client, folder):
    before = snapshot(folder)
    response = client.get(f"/unsubscribe/{token(purpose='unsubscribe')}")
    assert response.status_code == 200
    assert 'id="confirm-unsubscribe"' in response.text
    assert snapshot(folder) == before


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_unsubscribe_needs_no_csrf_token(client, folder, multipart):
    url = f"/unsubscribe/{token(purpose='unsubscribe')}"
    if multipart:  # RFC 8058 allows either encoding
        response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    else:
        response = client.post(url, data={"List-Unsubscribe": "One-Click"},
                               headers={"Origin": "https://mail.example"})
    assert response.status_code == 200
    text = (folder / "ada.yaml").read_text()
    assert "active: false" in text and "# shown in the greeting" in text
    assert find(folder, "bob@example.org")[1].active  # nobody else


def test_the_unsubscribe_button_then_resubscribe(client, folder):
    url = f"/unsubscribe/{token(purpose='unsubscribe')}"
    page = client.post(url, data={"csrf": csrf_in(client.get(url).text)})
    assert page.status_code == 200 and "You are unsubscribed" in page.text
    assert not find(folder, "ada@example.org")[1].active
    again = client.post(f"/resubscribe/{token(purpose='unsubscribe')}", data={"csrf": csrf_in(page.text)})
    assert again.status_code == 200 and "Welcome back" in again.text
    assert find(folder, "ada@example.org")[1].active


def test_unsubscribing_a_removed_subscriber_is_calm(client, folder):
    (folder / "bob.yaml").unlink()
    response = client.post(f"/unsubscribe/{token('bob@example.org', 'unsubscribe')}",
                           data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "no subscription" in response.text
    assert client.get(f"/preferences/{token('bob@example.org')}").status_code == 404


# -- subscribe (double opt-in) -----------------------------------------------------------------------


def subscribe(client: TestClient, email: str, keywords: str = "world models, diffusion", **options):
    csrf = csrf_in(client.get("/subscribe").text)
    return client.post("/subscribe", data={"csrf": csrf, "email": email, "keywords": keywords}, **options)


def confirm_link(message: EmailMessage) -> str:
    return re.search(r"http://testserver(/confirm/\S+)", text_part(message)).group(1)


def test_subscribe_mails_one_confirmation_and_confirming_creates_the_file(client, folder, smtp_server):
    response = subscribe(client, "carol@example.org")
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert smtp_server.wait_for(1)
    message = smtp_server.messages[0]
    assert smtp_server.recipients() == ["carol@example.org"]
    assert message["Subject"] == "Confirm your Paperboy subscription"
    # in the digest's look, naming the keywords asked for
    html = message.get_body(("html",)).get_content()
    assert [c.text for c in lxml.html.document_fromstring(html).find_class("chip")] == ["world models", "diffusion"]
    assert 'name="viewport"' in html and 'lang="en"' in html and "background-color:#0b57d0" in html
    assert "Keywords asked for: world models, diffusion" in text_part(message)
    assert load_all(folder)[0] and not any(s.email == "carol@example.org" for s in load_all(folder)[0])
    link = confirm_link(message)
    page = client.get(link)
    assert "world models" in page.text and "diffusion" in page.text
    assert not any(s.email == "carol@example.org" for s in load_all(folder)[0])  # GET changes nothing
    done = client.post(link, data={"csrf": csrf_in(page.text)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    _, carol = find(folder, "carol@example.org")
    assert carol.active and carol.keywords == ["world models", "diffusion"]
    assert smtp_server.wait_for(2)  # and a welcome, listing every keyword, with the links to change them
    welcome = smtp_server.messages[1]
    assert welcome["Subject"] == "Welcome to Paperboy: your keywords"
    doc = lxml.html.document_fromstring(welcome.get_body(("html",)).get_content())
    assert [c.text for c in doc.find_class("chip")] == ["world models", "diffusion"]
    links = {a.text: a.get("href") for a in doc.iter("a")}
    prefs = links["Edit your keywords"]
    assert prefs == links["Your preferences"] and client.get(prefs.removeprefix("http://testserver")).status_code == 200
    assert "/unsubscribe/" in links["Unsubscribe"]
    time.sleep(0.2)
    assert len(smtp_server.received) == 2


def test_a_confirmation_mail_repeats_only_plain_keywords(settings):
    keywords = ["world models", "title:diffusion^2", '"reward model"', "cheap-pills.example.com",
                "visit www example", "call 5551234567", "mail me@evil.example", "https evil", "RL"]
    message = confirmation_message(web_environment(Path(settings.templates_dir) / "web"), settings,
                                   "dora@example.org", "http://testserver/confirm/x", keywords)
    parts = message.get_body(("plain",)).get_content() + message.get_body(("html",)).get_content()
    for bad in keywords[3:8]:  # link-like text typed by a stranger is never mailed to anyone
        assert bad not in parts
    chips = [c.text for c in lxml.html.document_fromstring(
        message.get_body(("html",)).get_content()).find_class("chip")]
    assert chips == ["world models", "title:diffusion^2", '"reward model"', "RL"]
    assert "and 5 more" in message.get_body(("plain",)).get_content()


def test_confirming_an_unsubscribed_address_reactivates_it(client, folder):
    client.post(f"/unsubscribe/{token(purpose='unsubscribe')}", data={"List-Unsubscribe": "One-Click"})
    link = f"/confirm/{make_confirm_token(KEY, 'ada@example.org', ['planning'])}"
    client.post(link, data={"csrf": csrf_in(client.get(link).text)})
    _, ada = find(folder, "ada@example.org")
    assert ada.active and ada.keywords == ["planning"]
    assert "# shown in the greeting" in (folder / "ada.yaml").read_text()


@pytest.mark.parametrize("kind", ["tampered", "expired", "prefs token"])
def test_bad_confirm_tokens_create_nothing(client, folder, kind):
    good = make_confirm_token(KEY, "mallory@example.org", ["x"])
    bad = {
        "tampered": tampered(good),
        "expired": URLSafeTimedSerializer(KEY, salt="paperboy-confirm", signer=_LongAgo).dumps(
            {"email": "mallory@example.org", "keywords": ["x"]}),
        "prefs token": make_token(KEY, "mallory@example.org", "prefs"),
    }[kind]
    assert client.get(f"/confirm/{bad}").status_code == 403
    assert client.post(f"/confirm/{bad}", data={"csrf": csrf_token(KEY, bad)}).status_code == 403
    assert not (folder / "mallory_at_example.org.yaml").exists()
    assert len(load_all(folder)[0]) == 2


def test_repeated_signups_are_rate_limited_and_the_answer_never_differs(client, smtp_server, folder):
    first = subscribe(client, "dave@example.org")
    second = subscribe(client, "dave@example.org")
    existing = subscribe(client, "bob@example.org")
    assert smtp_server.wait_for(2)
    time.sleep(0.2)  # a third mail would have arrived by now
    assert smtp_server.recipients() == ["dave@example.org", "bob@example.org"]
    assert first.text == second.text
    assert existing.text == first.text.replace("dave@example.org", "bob@example.org")


def test_an_address_gets_at_most_three_mails_a_day(settings, smtp_server):
    with TestClient(create_app(settings, rate_limit=RateLimit(gap=timedelta(0)))) as client:
        for _ in range(5):
            assert subscribe(client, "erin@example.org").status_code == 200
    assert smtp_server.wait_for(3)
    time.sleep(0.2)
    assert len(smtp_server.received) == 3


def test_claim_signup_counts_a_sliding_day_and_a_gap(tmp_path):
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    claim = dict(limit=3, window=timedelta(hours=24), min_gap=timedelta(minutes=5))
    with Store(tmp_path / "p.db") as store:
        assert store.claim_signup("a", start, **claim)
        assert not store.claim_signup("a", start + timedelta(minutes=4), **claim)  # too soon
        assert store.claim_signup("b", start + timedelta(minutes=1), **claim)  # others unaffected
        assert store.claim_signup("a", start + timedelta(minutes=5), **claim)
        assert store.claim_signup("a", start + timedelta(hours=1), **claim)
        assert not store.claim_signup("a", start + timedelta(hours=5), **claim)  # 3 in 24 h
        assert store.signups_since("a", start) == 3
        assert store.claim_signup("a", start + timedelta(hours=24, minutes=1), **claim)
        assert store.signups_since("a", start - timedelta(days=1)) == 3  # the oldest was forgotten


def test_a_bad_signup_is_explained_and_sends_nothing(client, smtp_server):
    response = subscribe(client, "not-an-address")
    assert response.status_code == 422 and "whole email address, like name@example.org" in response.text
    assert 'id="email-error"' in response.text and "autofocus" in response.text
    assert subscribe(client, "frank@example.org", keywords="").status_code == 422
    time.sleep(0.1)
    assert smtp_server.received == []


# -- bounded input, escaping, logs ------------------------------------------------------------------


def test_oversized_requests_are_refused(client, folder):
    before = snapshot(folder)
    form = prefs_form(client, token(), keywords="x" * 100_000)
    assert client.post(f"/preferences/{token()}", data=form).status_code == 413

    def chunks():  # no Content-Length: the limit counts what streams in
        for _ in range(100):
            yield b"keywords=" + b"y" * 1000 + b"&"

    streamed = client.post(f"/preferences/{token()}", content=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
    assert snapshot(folder) == before


def test_every_page_escapes_what_subscribers_typed(client, folder):
    script = "<script>alert(1)</script>"
    (folder / "ada.yaml").write_text(
        f"email: ada@example.org\nname: '{script}'\nkeywords: ['{script}', reinforcement learning]\n")
    unsub = f"/unsubscribe/{token(purpose='unsubscribe')}"
    confirm = f"/confirm/{make_confirm_token(KEY, 'zoe@example.org', [script])}"
    form = prefs_form(client, token())
    pages = {
        "preferences": client.get(f"/preferences/{token()}"),
        "preview": client.post(f"/preferences/{token()}/preview",
                               data={**form, "keywords": f"{script}\nreinforcement learning"}),
        "saved": client.post(f"/preferences/{token()}", data={**form, "keywords": f"{script}, RL"}),
        "invalid": client.post(f"/preferences/{token()}", data={**form, "keywords": f"{script}^99"}),
        "unsubscribe": client.get(unsub),
        "confirm": client.get(confirm),
        "subscribe": subscribe(client, f"{script}@example.org", keywords=script),
    }
    assert "<script>alert" not in pages.pop("preview").json()["html"]  # unmatched: not shown at all
    for name, page in pages.items():
        assert "<script>alert" not in page.text, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, name


def test_tokens_are_redacted_from_access_logs():
    secret = token()
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET",
                               f"/preferences/{secret}/preview?x=1", "1.1", 200), None)
    RedactTokens().filter(record)
    assert secret not in record.getMessage()
    assert "/preferences/…/preview?x=1" in record.getMessage()
    view = make_view_token(KEY, "ada@example.org", today())
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '"GET %s"', (f"/digest/{view}",), None)
    RedactTokens().filter(record)
    assert view not in record.getMessage() and "/digest/…" in record.getMessage()


def test_a_web_view_of_a_digest_not_kept_says_so_and_a_bad_link_is_refused(client):
    gone = client.get(f"/digest/{make_view_token(KEY, 'ada@example.org', today())}")  # never sent
    assert gone.status_code == 404 and "not kept" in gone.text
    old = client.get(f"/digest/{make_view_token(KEY, 'ada@example.org', today() - timedelta(days=91))}")
    assert old.status_code == 404 and "90 days" in old.text
    assert client.get(f"/digest/{token()}").status_code == 403  # a preferences token is not a view token
    forged = make_view_token("another-deployment-key-0123456789-abcdef", "ada@example.org", today())
    assert client.get(f"/digest/{forged}").status_code == 403


def test_pages_served_under_a_path_prefix_link_within_it(settings):
    prefixed = settings.model_copy(update={"public_base_url": "https://example.org/paperboy"})
    with TestClient(create_app(prefixed)) as client:  # the proxy strips /paperboy
        page = client.get(f"/preferences/{token()}").text
        assert 'href="/paperboy/static/web.css"' in page
        assert f'action="/paperboy/preferences/{token()}"' in page
        assert client.get("/", follow_redirects=False).headers["location"] == "/paperboy/subscribe"
        assert "strict-transport-security" in client.get("/subscribe").headers


def test_web_command_mounts_as_a_typer_command():
    import typer
    from typer.testing import CliRunner

    from flows.web import web_command

    app = typer.Typer()
    app.command("web")(web_command)
    app.command("other")(lambda: None)  # a group, as in `paperboy web`
    result = CliRunner().invoke(app, ["web", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output
