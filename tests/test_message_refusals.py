"""A refusal of the message itself (too big) is no reason to stop mailing a subscriber.

Reproduced on Postfix (message_size_limit below a digest's 75 KB): a client that declares
SIZE is refused at MAIL FROM (not counted, rightly), but a relay that does not advertise SIZE,
or a server further on, refuses at the end of DATA or in a DSN with "552 5.3.4 Message size
exceeds fixed limit". Before, each of those counted as a hard bounce, so after
PAPERBOY_BOUNCE_LIMIT (3) mornings every subscriber behind that server was suppressed
(active: false written to their file) for a limit on our side. Now 5.3.4 and 5.2.3 (message
length over an administrative limit) are recorded as soft bounces; other 5xx refusals still
count (tests/test_bounces.py)."""

from __future__ import annotations

from datetime import timedelta

from typer.testing import CliRunner

from flows import bounces
from flows.cli import app
from flows.links import secret_key
from flows.settings import Settings
from flows.store import Store
from flows.verp import return_path
from tests.test_bounces import dsn, drop, make_maildir, send_batch, subscriber

TOO_BIG = "5.3.4 Message size exceeds fixed limit"


def test_too_big_at_data_three_mornings_suppresses_nobody(workspace):
    server, settings = workspace.server, Settings()
    for offset in range(3):
        server.fail_next(552, stage="DATA", text=TOO_BIG)
        report = send_batch(settings, workspace.day + timedelta(days=offset), only=["grace@example.org"])
        assert list(report.failed) == ["grace@example.org"]  # still a failed digest, with its reason
        assert "552 5.3.4" in report.failed["grace@example.org"]
    with Store(settings.db_path) as store:
        assert store.bounce_counts() == []
        assert bounces.apply_suppressions(store, settings) == []
        rows = store.bounce_rows("grace@example.org")
        assert [(r["kind"], r["status"], r["source"]) for r in rows] == [("soft", "5.3.4", "smtp")] * 3
    assert subscriber(settings, "grace@example.org").active


def test_a_dsn_saying_too_big_is_soft(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBOY_BOUNCE_ADDRESS", "bounces@example.org")
    settings = Settings()
    send_batch(settings, workspace.day)
    box = make_maildir(tmp_path / "bounces")
    for status, text in (("5.3.4", TOO_BIG), ("5.2.3", "5.2.3 Message length exceeds administrative limit")):
        raw = dsn("postfix", verp=return_path(settings, secret_key(settings), "ada@example.org", workspace.day),
                  rcpt="ada@example.org", message_id=f"<{status}@example.org>")
        raw = raw.replace(b"550 5.1.1", b"552 " + text.encode()).replace(b"Status: 5.1.1", f"Status: {status}".encode())
        raw = raw.replace(b"20250613070211.4B2C81C0456", status.encode())  # two reports, two ids
        drop(box, raw)
    result = CliRunner().invoke(app, ["bounces", "--maildir", str(box)])
    assert result.exit_code == 0, result.output
    assert "0 new hard bounce(s), 2 soft" in result.output and "suppressed 0" in result.output
    assert subscriber(settings, "ada@example.org").active
