"""`paperboy status` on a real ledger: recent runs, today's counts, uncertain and deferred
digests, the daily cap, and a clear error where nothing has run yet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from typer.testing import CliRunner

from flows.cli import app
from flows.models import Outcome
from flows.store import Store
from flows.tasks import today_in


def test_status_shows_runs_today_uncertain_deferred_and_the_cap(workspace, monkeypatch):
    today = today_in("UTC")
    yesterday = today - timedelta(days=1)
    monkeypatch.setenv("PAPERBOY_DAILY_CAP", "100")
    with Store(workspace.db_path) as store:
        store.record_outcome(Outcome("ada@example.org", yesterday, "sent", "<a1@example.org>", ("p1",)))
        store.record_outcome(Outcome("grace@example.org", yesterday, "skipped"))
        store.record_outcome(Outcome("ada@example.org", today, "sent", "<a2@example.org>", ("p2",)))
        store.record_outcome(Outcome("alan@example.org", today, "failed", "<c@example.org>",
                                     error="daily cap reached (PAPERBOY_DAILY_CAP=100 …)"))
        store.record_in_flight("grace@example.org", today, "<g@example.org>", ["p3"])
        store.record_outcome(Outcome("bob@example.org", yesterday, "uncertain", "<b@example.org>", ("p4",),
                                     error="no reply to the final dot within 600 s"))

    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{today}: sent 1, deferred 1, in flight 1" in out
    assert f"{yesterday}: sent 1, skipped 1, uncertain 1" in out
    assert f"Today ({today}): sent 1, deferred 1, in flight 1" in out
    assert "Uncertain (sent, the server's reply never recorded): 2" in out
    assert "send them again with the same Message-ID (PAPERBOY_UNCERTAIN=resend)" in out
    assert f"{yesterday} bob@example.org <b@example.org>: no reply to the final dot within 600 s" in out
    assert f"{today} grace@example.org <g@example.org>: in flight since" in out
    assert f"{today} alan@example.org: daily cap reached" in out
    assert "Daily cap: 4 of 100 messages in the last 24 hours" in out  # 2 sent, in flight, uncertain; not deferred
    assert "Suppressed subscribers: 0" in out


def test_status_before_any_run_says_so(workspace):
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2 and "nothing has run yet" in result.output
    assert not workspace.db_path.exists()


def test_status_names_a_suppressed_subscriber_with_the_date_and_reason(workspace):
    with Store(workspace.db_path) as store:
        store.record_outcome(Outcome("ada@example.org", today_in("UTC"), "sent", "<a@example.org>", ("p1",)))
    (workspace.subscribers_dir / "gone.yaml").write_text(
        "email: gone@example.org\nkeywords: [diffusion]\nactive: false\n"
        "suppressed: {date: 2026-12-05, reason: 'hard bounce, 3 in 30 days'}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "Suppressed subscribers: 1" in result.output
    assert "gone@example.org: since 2026-12-05: hard bounce, 3 in 30 days" in result.output
    assert "datetime" not in result.output and "reason=" not in result.output  # not a Python repr
