"""The store on a real SQLite file: migrations, merging papers, the ledger's rules."""

from datetime import date, timedelta

import pytest

from flows.models import Outcome, Paper
from flows.store import MIGRATIONS, Store, StoreError

DAY = date(2025, 6, 13)


def paper(pid: str, listed: date = DAY, **kw) -> Paper:
    base = dict(title=f"Paper {pid}", abstract="An abstract.", source="huggingface",
                url=f"https://huggingface.co/papers/{pid}")
    base.update(kw)
    return Paper(id=pid, listed=listed, **base)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "paperboy.db") as s:
        yield s


def test_migrations_are_recorded_and_idempotent(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as first:
        assert first.migrate() == len(MIGRATIONS)
        versions = [r["version"] for r in first.db.query("select version from migrations")]
    with Store(path) as second:
        assert [r["version"] for r in second.db.query("select version from migrations")] == versions
        assert set(second.db.table_names()) >= {"papers", "fetches", "digests", "deliveries"}
        assert second.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="notes.db"):
        Store(bad)


def test_upsert_counts_new_and_merges_sources(store):
    assert store.upsert_papers([paper("2506.00001", upvotes=12), paper("2506.00002")]) == 2
    from_arxiv = paper("2506.00001", listed=DAY + timedelta(days=1), source="arxiv", upvotes=0,
                       categories=("cs.LG",), url="https://arxiv.org/abs/2506.00001")
    assert store.upsert_papers([from_arxiv]) == 0
    merged = {p.id: p for p in store.papers_listed(DAY, DAY + timedelta(days=1))}["2506.00001"]
    assert merged.upvotes == 12  # keeps its Hugging Face upvotes
    assert merged.categories == ("cs.LG",)  # and gains its arXiv categories
    assert merged.url.startswith("https://huggingface.co/")
    assert merged.listed == DAY + timedelta(days=1)
    row = store.db["papers"].get("2506.00001")
    assert row["first_listed"] == DAY.isoformat()
    assert store.paper_count() == 2


def test_duplicate_ids_in_one_batch_are_one_row(store):
    assert store.upsert_papers([paper("x1", upvotes=1), paper("x1", upvotes=5)]) == 1
    assert store.papers_listed(DAY, DAY)[0].upvotes == 5


def test_fetch_bookkeeping(store):
    store.record_fetch("huggingface", DAY, papers=3)
    store.record_fetch("huggingface", DAY + timedelta(days=1), papers=0, error="HTTP 500")
    assert store.fetched_dates("huggingface") == {DAY}
    assert store.last_fetched("huggingface") == DAY
    assert store.last_fetched("arxiv") is None


def test_sent_digest_records_deliveries_and_is_final(store):
    store.upsert_papers([paper("a"), paper("b")])
    store.record_outcome(Outcome("x@example.org", DAY, "sent", "<id>", ("a", "b"), attempts=1))
    assert store.finished_subscribers(DAY) == {"x@example.org"}
    assert store.delivered_ids(["x@example.org", "y@example.org"], ["a", "b", "c"]) == {
        "x@example.org": {"a", "b"}, "y@example.org": set()}
    # a later failure report for the same date never overwrites a sent digest
    store.record_outcome(Outcome("x@example.org", DAY, "failed", error="550", permanent=True))
    assert store.digest_rows(DAY)[0]["status"] == "sent"


def test_transient_failure_is_deferred_and_not_final(store):
    store.record_outcome(Outcome("x@example.org", DAY, "failed", error="451 try later"))
    assert store.digest_rows(DAY)[0]["status"] == "deferred"
    assert store.finished_subscribers(DAY) == set()
    assert store.delivered_count("x@example.org") == 0  # its papers stay unseen
    store.record_outcome(Outcome("x@example.org", DAY, "sent", "<id>", ("a",), attempts=1))
    row = store.digest_rows(DAY)[0]
    assert row["status"] == "sent" and row["error"] == ""


def test_permanent_failure_is_final_for_that_date_only(store):
    store.record_outcome(Outcome("x@example.org", DAY, "failed", error="550 no such user", permanent=True))
    assert store.finished_subscribers(DAY) == {"x@example.org"}
    assert store.finished_subscribers(DAY + timedelta(days=1)) == set()


def test_papers_listed_window(store):
    store.upsert_papers([paper("old", listed=DAY - timedelta(days=10)), paper("new", upvotes=3),
                         paper("mid", listed=DAY - timedelta(days=2), upvotes=9)])
    assert [p.id for p in store.papers_listed(DAY - timedelta(days=2), DAY)] == ["mid", "new"]


def test_delivered_ids_handles_large_batches(store):
    subs = [f"s{i}@example.org" for i in range(1200)]
    for s in subs[::100]:
        store.record_outcome(Outcome(s, DAY, "sent", "<m>", ("p1",)))
    seen = store.delivered_ids(subs, ["p1", "p2"])
    assert sum(1 for v in seen.values() if v == {"p1"}) == 12
