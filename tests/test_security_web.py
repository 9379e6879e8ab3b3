"""Issue 12, web findings (V5, V6, V7), attacked through the real app on loopback."""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from flows.links import make_token
from flows.settings import Settings
from flows.web import create_app
from flows.web.security import csrf_token
from flows.web.signup import RateLimit, canonical_mailbox
from tests.support.live import LiveApp
from tests.support.smtp import settings_for

KEY = "security-test-key-0123456789-abcdefghij"
ADA = "email: ada@example.org\nname: Ada\nkeywords: [reinforcement learning]\nmax_papers: 10\n"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "referrer-policy",
                    "x-content-type-options", "cache-control")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "ada.yaml").write_text(ADA, encoding="utf-8")
    return directory


@pytest.fixture
def settings(smtp_server, tmp_path, folder) -> Settings:
    return settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                        public_base_url="http://testserver")


def prefs_form(token: str, **fields: str) -> dict[str, str]:
    return {"csrf": csrf_token(KEY, token), "keywords": "reinforcement learning",
            "frequency": "daily", "weekday": "monday", "max_papers": "10", **fields}


def assert_secured(headers: httpx.Headers) -> None:
    missing = [name for name in SECURITY_HEADERS if name not in headers]
    assert not missing, f"missing security headers: {missing}"


# -- V7: strict integers, and every error page carries the security headers -------------


@pytest.mark.parametrize("value", ["²", "٣", "1²", "+5", "0x10", "9" * 10])
def test_max_papers_must_be_ascii_digits(value, settings, folder):
    token = make_token(KEY, "ada@example.org", "prefs")
    with LiveApp(create_app(settings)) as live:
        response = httpx.post(f"{live.url}/preferences/{token}", data=prefs_form(token, max_papers=value),
                              headers={"Origin": live.url})
    assert response.status_code == 422, response.text[:300]
    assert "whole number" in response.text
    assert_secured(response.headers)
    assert "max_papers: 10" in (folder / "ada.yaml").read_text()


@pytest.mark.parametrize("length", ["²", "٣", "1²", "-1", "99999999999999999999999", "1e3", ""])
def test_a_strange_content_length_is_refused_with_the_headers(length, settings):
    token = make_token(KEY, "ada@example.org", "prefs")
    with LiveApp(create_app(settings)) as live:
        answer = live.raw(
            f"POST /preferences/{token} HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n".encode()
            + b"Content-Length: " + length.encode() + b"\r\n\r\nmax_papers=1")
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    status = int(head.split()[1])
    assert status in (400, 413), head
    if status == 413:  # answered by the app, not refused by uvicorn's HTTP parser
        for name in SECURITY_HEADERS:
            assert f"\r\n{name}:" in head, (name, head)


def test_a_server_error_page_carries_the_security_headers(settings, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(settings.templates_dir, templates)
    (templates / "web" / "preferences.html.j2").write_text("{% broken", encoding="utf-8")
    broken = settings.model_copy(update={"templates_dir": templates})
    token = make_token(KEY, "ada@example.org", "prefs")
    with LiveApp(create_app(broken)) as live:
        response = httpx.get(f"{live.url}/preferences/{token}")
    assert response.status_code == 500
    assert_secured(response.headers)
    assert "broken" not in response.text and "Traceback" not in response.text


# -- V5: sign-up caps per client and overall, on the canonical mailbox; sending off the request


def signup(live: LiveApp, email: str, client: str | None = None, timeout: float = 10.0) -> httpx.Response:
    """Fill in the public form as a browser would (from ``client``, via the local proxy)."""
    headers = {"Origin": live.url}
    if client:
        headers["X-Forwarded-For"] = client  # uvicorn trusts it from 127.0.0.1, as behind a proxy
    return httpx.post(f"{live.url}/subscribe", timeout=timeout, headers=headers, data={
        "csrf": csrf_token(KEY, "subscribe-form"), "email": email, "keywords": "reinforcement learning"})


def settle(smtp_server, seconds: float = 1.0) -> int:
    time.sleep(seconds)  # the outbox sends in the background; give it time to send too many
    return len(smtp_server.received)


def test_one_client_cannot_mail_two_hundred_addresses(settings, smtp_server):
    with LiveApp(create_app(settings)) as live:
        answers = {signup(live, f"victim{n}@example.org").status_code for n in range(200)}
        assert answers == {303}  # POST/redirect/GET: the same answer for every address
        assert smtp_server.wait_for(5)
        assert settle(smtp_server) == settings.signup_per_client == 5


def test_all_clients_together_are_capped_per_hour(settings, smtp_server):
    capped = settings.model_copy(update={"signup_per_hour": 12})
    with LiveApp(create_app(capped)) as live:
        for n in range(40):
            assert signup(live, f"person{n}@example.org", client=f"198.51.100.{n}").status_code == 303
        assert smtp_server.wait_for(12)
        assert settle(smtp_server) == 12


def test_ipv6_clients_are_counted_by_their_64(settings, smtp_server):
    with LiveApp(create_app(settings)) as live:
        for n in range(20):
            signup(live, f"six{n}@example.org", client=f"2001:db8:1:2:{n:x}::1")
        assert smtp_server.wait_for(5)
        assert settle(smtp_server) == 5


@pytest.mark.parametrize("variants, mailbox", [
    (["ada@gmail.com", "a.da@gmail.com", "ADA+x@gmail.com", "a.d.a+news@googlemail.com", "Ada+1@GMAIL.com",
      "ada.+z@gmail.com"], "gmail"),
    (["bob@example.org", "BOB@example.org", "bob+a@example.org", "Bob+b@Example.ORG", "bob+@example.org"],
     "plus tags"),
])
def test_plus_tags_and_dots_share_one_mailbox_limit(variants, mailbox, settings, smtp_server):
    with LiveApp(create_app(settings, rate_limit=RateLimit(gap=timedelta(0)))) as live:
        for n, email in enumerate(variants):
            signup(live, email, client=f"203.0.113.{n}")
        assert smtp_server.wait_for(3)
        assert settle(smtp_server) == 3  # three a day to one mailbox, however it is spelt


def test_canonical_mailbox_folds_as_the_provider_does():
    assert canonical_mailbox("A.Da+News@GoogleMail.com") == "ada@gmail.com"
    assert canonical_mailbox("a.da+x@example.org") == "a.da@example.org"  # dots matter elsewhere
    assert canonical_mailbox("+only@example.org") == "+only@example.org"


def test_a_slow_relay_never_stalls_the_pages_and_healthz_says_so(smtp_server, tmp_path, folder):
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url="http://testserver", smtp_timeout=2, smtp_retries=1,
                            signup_per_hour=1000)
    smtp_server.hold_after(0)  # the relay takes every message and never answers
    prefs = make_token(KEY, "ada@example.org", "prefs")
    with LiveApp(create_app(settings)) as live:
        assert httpx.get(f"{live.url}/healthz").status_code == 200
        with ThreadPoolExecutor(16) as pool:  # a burst from many clients at once
            burst = list(pool.map(lambda n: signup(live, f"burst{n}@example.org", client=f"192.0.2.{n}"),
                                  range(60)))
        assert {r.status_code for r in burst} == {303}
        for _ in range(5):  # every subscriber page still answers at once
            started = time.monotonic()
            page = httpx.get(f"{live.url}/preferences/{prefs}", timeout=10)
            assert page.status_code == 200 and time.monotonic() - started < 5
        deadline = time.monotonic() + 15
        while (health := httpx.get(f"{live.url}/healthz")).status_code == 200:
            assert time.monotonic() < deadline, f"/healthz stayed green: {health.text}"
            time.sleep(0.2)
        assert health.status_code == 503 and "relay" in health.text
        smtp_server.release()
        assert smtp_server.wait_for(3, timeout=30)  # mail moves again once the relay does


# -- V6: a confirmation link works once ------------------------------------------------------


def confirm_link(smtp_server, email: str) -> str:
    assert smtp_server.wait_for(1)
    message = next(r.message for r in smtp_server.received if email in r.rcpt_tos)
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https?://\S+/confirm/(\S+)", text).group(1)


def test_a_confirmation_link_cannot_undo_an_unsubscribe_or_later_edits(settings, smtp_server, folder):
    with LiveApp(create_app(settings)) as live:
        signup(live, "carol@example.org")
        token = confirm_link(smtp_server, "carol@example.org")
        post = {"csrf": csrf_token(KEY, token)}
        first = httpx.post(f"{live.url}/confirm/{token}", data=post, headers={"Origin": live.url})
        assert first.status_code == 200
        carol = folder / "carol_at_example.org.yaml"
        assert "reinforcement learning" in carol.read_text()
        # Carol edits her keywords, then unsubscribes.
        prefs = make_token(KEY, "carol@example.org", "prefs")
        edited = httpx.post(f"{live.url}/preferences/{prefs}", headers={"Origin": live.url},
                            data=prefs_form(prefs, keywords="graph neural networks"))
        assert edited.status_code == 303  # saved, redirected to the page (POST/redirect/GET)
        unsub = make_token(KEY, "carol@example.org", "unsubscribe")
        httpx.post(f"{live.url}/unsubscribe/{unsub}", data={"csrf": csrf_token(KEY, unsub)},
                   headers={"Origin": live.url})
        assert "active: false" in carol.read_text()
        # Someone replays the confirmation link from her mailbox two days later.
        again = httpx.post(f"{live.url}/confirm/{token}", data=post, headers={"Origin": live.url})
        shown = httpx.get(f"{live.url}/confirm/{token}")
    assert again.status_code == 403 and "used already" in again.text
    assert shown.status_code == 403
    text = carol.read_text()
    assert "active: false" in text and "graph neural networks" in text
    assert "reinforcement learning" not in text
