"""The stages chained without Prefect: catch-up dates, fetch failures, batches, edge cases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flows.models import Listing
from flows.compose import renderer_for
from flows.corpus import Corpus
from flows.fetch import catch_up_dates, fetch_dates
from flows.send import is_due, run_batch
from flows.settings import Settings
from flows.sources import SourceUnavailable, build_source
from flows.store import Store
from flows.subscribers import Subscriber, load_all

DAY = date(2025, 6, 13)


@pytest.fixture
def ready(workspace):
    """The workspace with its listings fetched into the store."""
    settings = Settings()
    with Store(settings.db_path) as store:
        fetch_dates(store, build_source("snapshot", settings), [DAY - timedelta(days=1), DAY])
    return settings


def batch(settings: Settings, day: date = DAY, **kw):
    subscribers, _ = load_all(settings.subscribers_dir)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day)
        return run_batch(subscribers, store=store, corpus=corpus, renderer=renderer_for(settings),
                         settings=settings, **kw)


def test_catch_up_starts_at_the_last_good_fetch(tmp_path):
    with Store(tmp_path / "p.db") as store:
        assert catch_up_dates(store, "hf", DAY, 7)[0] == DAY - timedelta(days=6)  # first run: lookback
        store.record_fetch("hf", DAY - timedelta(days=3), papers=4)
        store.record_fetch("hf", DAY - timedelta(days=2), papers=0, error="HTTP 500")
        days = catch_up_dates(store, "hf", DAY, 7)
        # a two-day outage: the failed day and the day after are fetched, plus the last good one again
        assert days == [DAY - timedelta(days=n) for n in (3, 2, 1, 0)]
        store.record_fetch("hf", DAY - timedelta(days=30), papers=1)
        assert len(catch_up_dates(store, "hf", DAY + timedelta(days=40), 7)) == 7  # bounded


class FlakySource:
    name = "flaky"

    def fetch(self, day: date) -> Listing:
        if day.day % 2:
            raise SourceUnavailable(f"GET /api/daily_papers?date={day}: HTTP 503 after 5 attempts")
        return Listing(self.name, day, ())


def test_a_failing_date_is_recorded_and_the_others_fetched(tmp_path):
    with Store(tmp_path / "p.db") as store:
        report = fetch_dates(store, FlakySource(), [date(2025, 6, d) for d in (10, 11, 12)])
        assert report.dates_fetched == ["flaky:2025-06-10", "flaky:2025-06-12"]
        assert "HTTP 503" in report.dates_failed["flaky:2025-06-11"]
        assert store.fetched_dates("flaky") == {date(2025, 6, 10), date(2025, 6, 12)}


def test_dropped_connection_mid_batch_reconnects_and_delivers_all(ready, workspace):
    workspace.server.drop_connection_after(1)
    report = batch(ready)
    assert report.sent == 3
    assert sorted(workspace.server.recipients()) == [
        "ada@example.org", "alan@example.org", "grace@example.org"]


def test_nothing_matching_is_skipped_unless_send_empty(ready, workspace):
    (workspace.subscribers_dir / "zed.yaml").write_text(
        "email: zed@example.org\nkeywords: [protein folding]\n")
    report = batch(ready)
    assert report.skipped == 1 and "zed@example.org" not in workspace.server.recipients()
    (workspace.subscribers_dir / "zed.yaml").write_text(
        "email: zed@example.org\nkeywords: [protein folding]\nsend_empty: true\n")
    report = batch(ready)
    assert report.sent == 1 and workspace.server.recipients().count("zed@example.org") == 1
    subject = workspace.server.received[-1].message["Subject"]
    assert "no new papers" in subject.lower()


def test_weekly_subscriber_is_due_on_their_weekday_only():
    weekly = Subscriber(email="w@example.org", keywords=["x"], frequency="weekly", weekday="friday")
    assert is_due(weekly, DAY)  # a Friday
    assert not is_due(weekly, DAY + timedelta(days=1))
    assert not is_due(Subscriber(email="i@example.org", keywords=["x"], active=False), DAY)


def test_inactive_subscriber_gets_nothing(ready, workspace):
    path = workspace.subscribers_dir / "alan.yaml"
    path.write_text(path.read_text() + "active: false\n")
    report = batch(ready)
    assert report.not_due == 1 and "alan@example.org" not in workspace.server.recipients()


def test_headers_of_a_real_digest(ready, workspace):
    batch(ready)
    message = next(r.message for r in workspace.server.received if "ada@example.org" in r.rcpt_tos)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://paperboy.example.org/unsubscribe/" in message["List-Unsubscribe"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"].startswith("<20250613.")
