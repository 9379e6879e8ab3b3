"""The health endpoint as uptime checkers call it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from flows.web import create_app
from tests.support.smtp import settings_for


def test_healthz_answers_head_as_uptime_checkers_send_it(smtp_server, tmp_path):
    # UptimeRobot's HTTP monitors, among others, check with HEAD by default: a 405 read as "down".
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=tmp_path,
                            secret_key="qa-web-key-0123456789-abcdefghijklmnop")
    with TestClient(create_app(settings)) as client:
        head = client.head("/healthz")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["x-frame-options"] == "DENY"  # the security headers too
        assert client.get("/healthz").text.startswith("ok")
