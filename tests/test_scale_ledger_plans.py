"""The ledger reads a run (per batch), `paperboy status` and `paperboy doctor` make find their
rows through an index: none reads the whole of `digests` (10,000 rows a day, 3.65 million
after a year), so their cost stays that of the rows they return, however old the
installation. Checked with EXPLAIN QUERY PLAN on the very statements the store runs (SQLite
plans the same way on a small table: a fresh database has no statistics either way)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from flows.models import Outcome
from flows.store import Store

DAY = date(2026, 11, 30)
# Tables that grow by thousands of rows a day: no whole read, not even of a covering index.
# `papers` grows by 50-2,000 a day: counting it over its narrowest index is allowed, reading
# its rows (abstracts and all) is not.
LEDGER = ("digests", "deliveries", "digest_views")


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "ledger.db") as opened:
        for n in range(3):
            for offset in range(3):
                opened.record_outcome(Outcome(subscriber=f"r{n}@example.org", digest_date=DAY - timedelta(days=offset),
                                              status="sent", message_id=f"<{n}.{offset}@x>", paper_ids=(f"p{offset}",)))
        opened.record_in_flight("r9@example.org", DAY, "<9@x>", ["p1"])
        yield opened


def statements(store: Store, call) -> list[str]:
    """The SQL statements (values bound) that ``call`` runs on the store's connection."""
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        store.db.conn.set_trace_callback(None)
    return [s for s in seen if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)", s, re.I)]


def scans(store: Store, call) -> list[str]:
    """Every plan step of those statements that reads a whole ledger table or index."""
    found = []
    for sql in statements(store, call):
        for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall():
            detail = row[-1]
            if re.match(rf"SCAN ({'|'.join(LEDGER)})\b", detail) or (
                    re.match(r"SCAN papers\b", detail) and "COVERING INDEX" not in detail):
                found.append(f"{detail}  <-  {sql[:120]}")
    return found


NOW = datetime(2026, 12, 1, 7, tzinfo=timezone.utc)
CALLS = {
    "settle_in_flight (every batch of a run)": lambda s: s.settle_in_flight(),
    "uncertain_digests of a date (every batch)": lambda s: s.uncertain_digests(DAY),
    "finished_subscribers (every batch)": lambda s: s.finished_subscribers(DAY),
    "relayed_since (every batch with PAPERBOY_DAILY_CAP)": lambda s: s.relayed_since(NOW - timedelta(hours=24)),
    "uncertain_digests (status)": lambda s: s.uncertain_digests(),
    "digest_counts (status)": lambda s: s.digest_counts(7),
    "deferred_digests (status)": lambda s: s.deferred_digests(DAY - timedelta(days=7)),
    "stale_in_flight (doctor)": lambda s: s.stale_in_flight(datetime.now(timezone.utc) + timedelta(days=1)),
    "future_rows (doctor)": lambda s: s.future_rows(DAY),
    "prune_digest_views (every run)": lambda s: s.prune_digest_views(DAY - timedelta(days=90)),
    "corpus_signature (every run, web previews)": lambda s: s.corpus_signature(),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_no_ledger_read_scans_a_whole_table(store, name):
    assert statements(store, lambda: CALLS[name](store)), "the call ran no statement: the check saw nothing"
    assert scans(store, lambda: CALLS[name](store)) == []


def plan_of(store: Store, call) -> list[str]:
    return [row[-1] for sql in statements(store, call) for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]


@pytest.mark.parametrize("name", ["settle_in_flight (every batch of a run)", "uncertain_digests (status)",
                                  "stale_in_flight (doctor)"])
def test_open_digests_are_found_by_their_status(store, name):
    # not by a range of updated_at or digest_date that covers the whole history
    assert any(re.match(r"SEARCH digests USING (COVERING )?INDEX \w+ \(status=", step)
               for step in plan_of(store, lambda: CALLS[name](store)))


def test_the_daily_cap_counts_from_the_time_index(store):
    # an index on status must not lure it into reading every 'sent' row of the history
    assert any("(updated_at>?)" in step for step in plan_of(store, lambda: CALLS[
        "relayed_since (every batch with PAPERBOY_DAILY_CAP)"](store)))


def test_the_reads_still_find_their_rows(store):
    later = datetime.now(timezone.utc) + timedelta(days=1)
    assert {r["subscriber"] for r in store.stale_in_flight(later)} == {"r9@example.org"}
    assert [(r["digest_date"], r["status"], r["digests"]) for r in store.digest_counts(2)] == [
        ("2026-11-30", "in_flight", 1), ("2026-11-30", "sent", 3), ("2026-11-29", "sent", 3)]
    assert len(store.digest_counts(7)) == 4
    assert store.settle_in_flight() == 1
    assert [r["subscriber"] for r in store.uncertain_digests()] == ["r9@example.org"]
    assert store.stale_in_flight(later) == []
    assert store.relayed_since(datetime.now(timezone.utc) - timedelta(hours=1)) == 10


def test_the_migration_adds_the_indexes_to_a_ledger_that_has_rows(tmp_path):
    # a database at the version before: the indexes absent, a year's rows stand in for by a few
    path = tmp_path / "old.db"
    with Store(path) as old:
        old.record_in_flight("a@example.org", DAY, "<a@x>", ["p1"])
        old.db.execute("DROP INDEX idx_digests_status_digest_date")
        old.db.execute("DROP INDEX idx_papers_updated_at")
        version = old.db.execute("SELECT MAX(version) FROM migrations").fetchone()[0]
        old.db.execute("DELETE FROM migrations WHERE version = ?", [version])
    with Store(path) as upgraded:
        indexes = {row[0] for row in upgraded.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"idx_digests_status_digest_date", "idx_papers_updated_at"} <= indexes
        assert [r["subscriber"] for r in upgraded.uncertain_digests()] == ["a@example.org"]
        assert scans(upgraded, upgraded.settle_in_flight) == []


def test_a_batch_reads_its_own_subscribers_digests_not_the_whole_day(store):
    from flows.send import BatchReport, plan
    from flows.subscribers import Subscriber

    batch = [Subscriber(email=f"R{n}@example.org", keywords=["diffusion"]) for n in (0, 1, 5)]
    report = BatchReport()
    seen = statements(store, lambda: plan(batch, store, DAY, report))
    steps = [row[-1] for sql in seen for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    # each of a run's batches read every digest of the day: (subscribers / batch size) x subscribers rows
    assert steps and all("(subscriber=? AND digest_date=?)" in step for step in steps), steps
    assert (report.already, report.considered) == (2, 3)
    assert store.finished_subscribers(DAY, among=["r1@example.org", "nobody@example.org"]) == {"r1@example.org"}
