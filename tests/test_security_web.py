"""Issue 12, web findings (V5, V6, V7), attacked through the real app on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from flows.links import make_token
from flows.settings import Settings
from flows.web import create_app
from flows.web.security import csrf_token
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
