"""Issue 12, V8: no secret, nor its tail, nor its base64 form, reaches a log, the ledger or Prefect.

The attack run saw the last ~22 characters of the key or password in a configuration error
of a flow started by Prefect, and a relay that echoed the base64 AUTH string got it stored
in logs, the ledger and Prefect's database.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import date

import pytest
from pydantic import ValidationError

from flows.deliver import Outgoing, RelayError, deliver_sync
from flows.redact import encodings, redact_values
from flows.settings import Settings
from flows.store import Store
from tests.support.smtp import digest_message, settings_for

DAY = date(2026, 11, 21)
PASSWORD = "Tr0ub4dor&3-correct-horse-battery-staple"
KEY = "signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def leaks(text: str, secret: str) -> list[str]:
    """Which forms of ``secret`` appear in ``text``: itself, its tail, its base64 forms."""
    forms = {"value": secret, "tail": secret[-12:], **{f"base64 {n}": core for n, core in enumerate(encodings(secret))}}
    forms["base64 AUTH PLAIN"] = base64.b64encode(f"\0paperboy\0{secret}".encode()).decode()
    return [name for name, form in forms.items() if form in text]


def test_a_relay_echoing_the_base64_auth_line_leaks_nothing(smtp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    smtp_server.require_auth("paperboy", "the-right-one-12345678", echo_on_failure="base64")
    settings = settings_for(smtp_server, tmp_path, smtp_user="paperboy", smtp_password=PASSWORD,
                            smtp_connections=1, smtp_retries=1)
    outcomes = []
    item = Outgoing("ada@example.org", DAY, digest_message("ada@example.org", DAY), ("2611.00001",))
    # a refused login stops the run (the relay circuit breaker): one error, no digest marked failed
    with pytest.raises(RelayError) as raised:
        deliver_sync([item], settings, on_outcome=outcomes.append)
    assert outcomes == [] and "535" in str(raised.value)
    for where, text in {"error": str(raised.value), "log": caplog.text}.items():
        assert not leaks(text, PASSWORD), (where, leaks(text, PASSWORD))


@pytest.mark.parametrize("prefix", ["", "\0", "\0user\0", "x\0paperboy\0", "ab"])
def test_base64_of_the_password_is_found_at_any_alignment(prefix):
    line = base64.b64encode(prefix.encode() + PASSWORD.encode() + b"tail").decode()
    cleaned = redact_values(f"535 5.7.8 {line} rejected", [PASSWORD])
    assert cleaned == "535 5.7.8 *** rejected"


def test_log_records_are_redacted_wherever_they_come_from(caplog):
    Settings(smtp_password=PASSWORD, secret_key=KEY)  # building the settings registers them
    caplog.set_level(logging.INFO)
    plain = base64.b64encode(f"\0paperboy\0{PASSWORD}".encode()).decode()
    logging.getLogger("aiosmtplib").warning("server said: 535 %s", plain)
    logging.getLogger("prefect.flow_runs").error("key was %s", KEY)
    try:
        raise RuntimeError(f"password {PASSWORD} refused")
    except RuntimeError:
        logging.getLogger("anything").exception("failed")
    assert not leaks(caplog.text, PASSWORD) and not leaks(caplog.text, KEY)
    assert caplog.text.count("***") >= 3


def test_a_settings_error_never_shows_the_secrets(monkeypatch):
    monkeypatch.setenv("PAPERBOY_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("PAPERBOY_SECRET_KEY", KEY)
    monkeypatch.setenv("PAPERBOY_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("PAPERBOY_SMTP_TLS", "none")  # refused for a remote host: a model-level error
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = str(caught.value) + repr(caught.value)
    assert "PAPERBOY_SMTP_TLS=none" in text
    assert not leaks(text, PASSWORD) and not leaks(text, KEY)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_flow_started_by_prefect_with_bad_settings_leaks_nothing(workspace, monkeypatch, caplog):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.daily import daily_digest

    monkeypatch.setenv("PAPERBOY_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("PAPERBOY_SECRET_KEY", KEY)
    monkeypatch.setenv("PAPERBOY_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("PAPERBOY_SMTP_TLS", "none")
    with pytest.raises(ValidationError) as caught:
        daily_digest(digest_date=workspace.day)

    async def stored_logs() -> str:
        async with get_client() as client:
            runs = await client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
            return "\n".join(log.message for log in logs) + "\n" + str(runs[0].state.message)

    stored = asyncio.run(stored_logs())
    assert "PAPERBOY_SMTP_TLS=none" in str(caught.value)
    for text in (stored, caplog.text, str(caught.value)):
        assert not leaks(text, PASSWORD) and not leaks(text, KEY)
