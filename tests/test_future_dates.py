"""No state can poison later runs (issue 13 finding 1).

Before: `paperboy run --dry-run --date 2027-01-15` recorded future listing dates as
fetched, and every later run died with IndexError until that date came; a run in a
timezone ahead of UTC followed by one in UTC did the same. Now a future date is refused
before anything is stored, future rows already there are ignored by the catch-up, and
`paperboy doctor` finds and forgets them. A property test drives random sequences of
mornings, timezones, dry runs, reruns and explicit dates through the real daily flow.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from flows.cli import app
from flows.daily import daily_digest
from flows.fetch import FutureDateError, catch_up_dates
from flows.store import Store
from tests.support.corpus import seed_papers, write_snapshot

pytestmark = pytest.mark.usefixtures("prefect_harness")

D = date(2025, 6, 13)
ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Tokyo", "America/Los_Angeles"]


def noon(day: date, zone: str = "UTC") -> datetime:
    return datetime.combine(day, time(12), tzinfo=ZoneInfo(zone))


def test_a_future_date_is_refused_before_anything_is_stored(workspace):
    runner = CliRunner()
    with time_machine.travel(noon(D), tick=True):
        for args in (["run", "--dry-run", "--date", "2025-06-15"], ["run", "--date", "2025-06-14"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2, result.output
            assert "is after today (2025-06-13" in result.output and "Traceback" not in result.output
        backfill = runner.invoke(app, ["backfill", "--from", "2025-06-10", "--to", "2025-06-14"])
        assert backfill.exit_code == 2 and "in the future" in backfill.output
        with pytest.raises(FutureDateError):  # the flow itself refuses too (deployments)
            daily_digest(digest_date=D + timedelta(days=1), dry_run=True)
    assert not workspace.db_path.exists() or Store(workspace.db_path).future_rows(D) == {"fetches": [], "digests": []}


def test_one_day_of_slack_for_a_timezone_ahead_of_utc(workspace, monkeypatch):
    """At 12:00 UTC it is already tomorrow in Kiritimati (UTC+14): that date is today there."""
    monkeypatch.setenv("PAPERBOY_TIMEZONE", "Pacific/Kiritimati")
    with time_machine.travel(noon(D), tick=True):
        result = daily_digest(digest_date=D + timedelta(days=1), dry_run=True)
        assert result["digest_date"] == "2025-06-14"
        with pytest.raises(FutureDateError):
            daily_digest(digest_date=D + timedelta(days=2), dry_run=True)


def test_future_rows_already_stored_never_crash_a_run(workspace):
    with Store(workspace.db_path) as store:  # what the old bug left behind
        store.record_fetch("snapshot", date(2027, 1, 15), papers=3)
        store.record_fetch("snapshot", D - timedelta(days=2), papers=3)
        assert catch_up_dates(store, "snapshot", D, 7) == [D - timedelta(days=2), D - timedelta(days=1), D]
    result = daily_digest(digest_date=D)
    assert result["sent"] == 3 and result["dates_failed"] == {}


def test_an_eastern_timezone_then_utc_keeps_working(workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_TIMEZONE", "Pacific/Kiritimati")
    with time_machine.travel(noon(D), tick=True):
        daily_digest(dry_run=True)  # "today" is D+1 there: fetched through D+1
    monkeypatch.setenv("PAPERBOY_TIMEZONE", "UTC")
    with time_machine.travel(noon(D), tick=True):
        result = daily_digest()
    assert result["digest_date"] == D.isoformat() and result["sent"] == 3


def test_doctor_finds_future_rows_and_forgets_them(workspace):
    with Store(workspace.db_path) as store:
        store.record_fetch("snapshot", date(2027, 1, 15), papers=3)
        store.record_fetch("snapshot", D, papers=3)
    (workspace.subscribers_dir / "broken.yaml").write_text("email: nobody\nkeywords: [x]\n")
    runner = CliRunner()
    with time_machine.travel(noon(D), tick=True):
        found = runner.invoke(app, ["doctor"])
        assert found.exit_code == 1
        assert "fetch snapshot:2027-01-15" in found.output and "broken.yaml" in found.output
        fixed = runner.invoke(app, ["doctor", "--repair", "--yes"])
        assert "forgot 1 listing dates and 0 digests" in fixed.output
    with Store(workspace.db_path) as store:
        assert store.future_rows(D) == {"fetches": [], "digests": []}
        assert store.fetched_dates("snapshot") == {D}


# -- property: random mornings, timezones, dry runs, reruns, explicit dates ------------------------

step = st.tuples(
    st.integers(0, 2),  # days the clock moves forward before this run
    st.sampled_from(ZONES),  # PAPERBOY_TIMEZONE for this run
    st.booleans(),  # dry run
    st.one_of(st.none(), st.integers(-3, 3)),  # --date relative to today in that zone (None: today)
    st.booleans(),  # run it twice (a rerun)
)


@contextmanager
def environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=5))
def test_random_sequences_of_runs_never_crash_duplicate_or_lose(workspace, steps):
    server = workspace.server
    with tempfile.TemporaryDirectory() as tmp:
        papers = seed_papers()
        listings = {D + timedelta(days=n): [papers[n % len(papers)], papers[(n + 5) % len(papers)]]
                    for n in range(-8, 12)}
        snapshot = write_snapshot(Path(tmp) / "snapshot", listings)
        db = Path(tmp) / "paperboy.db"
        first = len(server.received)
        clock = noon(D)
        with environment({"PAPERBOY_DB_PATH": str(db), "PAPERBOY_SNAPSHOT_DIR": str(snapshot)}):
            for forward, zone, dry_run, offset, twice in steps:
                clock += timedelta(days=forward)
                with environment({"PAPERBOY_TIMEZONE": zone}), time_machine.travel(clock, tick=True):
                    today = clock.astimezone(ZoneInfo(zone)).date()
                    day = None if offset is None else today + timedelta(days=offset)
                    for _ in range(2 if twice else 1):
                        stored = rows(db)
                        if day is not None and day > today:
                            with pytest.raises(FutureDateError):
                                daily_digest(digest_date=day, dry_run=dry_run)
                            assert rows(db) == stored  # refused before anything was stored
                            continue
                        result = daily_digest(digest_date=day, dry_run=dry_run)
                        assert result["dates_failed"] == {}
            with Store(db) as store:
                for row in store.future_rows(after=(clock + timedelta(days=1)).date())["fetches"]:
                    raise AssertionError(f"a date after every zone's today was stored: {row}")
                ledger = [r for r in store.digest_rows() if r["status"] == "sent"]
        sent = server.received[first:]
        per_digest = Counter((rcpt, r.message["Message-ID"]) for r in sent for rcpt in r.rcpt_tos)
        assert set(per_digest.values()) <= {1}, "a digest went out twice"
        assert len(sent) == len(ledger), "a message on the wire is missing from the ledger"
        papers_to = Counter()
        for received in sent:
            text = received.message.get_body(("plain",)).get_content()
            for rcpt in received.rcpt_tos:
                papers_to.update((rcpt, pid) for pid in {p["id"] for p in papers if p["id"] in text})
        assert set(papers_to.values()) <= {1}, "a paper reached someone twice"


def rows(db: Path) -> tuple[int, int]:
    if not db.exists():
        return (0, 0)
    with Store(db) as store:
        return (store.db["fetches"].count, store.db["digests"].count)


def test_doctor_settles_digests_a_killed_run_left_in_flight(workspace):
    with Store(workspace.db_path) as store:
        store.record_in_flight("ada@example.org", D, "<m@example.org>", ["2506.10001"])
        store.db.execute("UPDATE digests SET updated_at = '2025-06-12T00:00:00+00:00'")  # long ago
    runner = CliRunner()
    with time_machine.travel(noon(D), tick=True):
        found = runner.invoke(app, ["doctor"])
        assert found.exit_code == 1 and "1 digests were left in flight" in found.output
        fixed = runner.invoke(app, ["doctor", "--repair", "--yes"])
        assert "1 in-flight digests marked uncertain" in fixed.output and fixed.exit_code == 0
    with Store(workspace.db_path) as store:
        assert [r["status"] for r in store.digest_rows(D)] == ["uncertain"]
