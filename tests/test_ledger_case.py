"""The ledger knows a subscriber by their address whatever its case.

Everything else does already (duplicate files, `--only`, links, VERP, feedback): a file
whose address was retyped as ``Ada@Example.org`` is the same person as ``ada@example.org``.
Before, the ledger compared addresses exactly, so retyping the case in a subscriber file
mailed that person a second digest the same day, with papers they had already been sent.
"""

from __future__ import annotations

from datetime import date

from flows.models import Outcome
from flows.send import BatchReport, plan, settle_uncertain
from flows.settings import Settings
from flows.store import MIGRATIONS, Store
from flows.subscribers import Subscriber

DAY = date(2025, 6, 13)


def sent(store: Store, email: str, *paper_ids: str, day: date = DAY) -> None:
    store.record_outcome(Outcome(subscriber=email, digest_date=day, status="sent",
                                 message_id=f"<{day}.{email}@x>", paper_ids=paper_ids, contents="{}"))


def test_a_digest_sent_to_one_spelling_is_sent_for_every_spelling(tmp_path):
    with Store(tmp_path / "p.db") as store:
        sent(store, "ada@example.org", "2506.00001")
        retyped = Subscriber(email="Ada@Example.org", keywords=["x"])
        report = BatchReport()
        assert plan([retyped], store, DAY, report) == []  # not mailed twice the same day
        assert report.already == 1
        seen = store.delivered_ids([retyped.email], ["2506.00001", "2506.00002"])
        assert seen == {retyped.email: {"2506.00001"}}  # nor sent that paper again, ever
        assert store.digest_contents(retyped.email, DAY) == "{}"  # its web view still opens


def test_an_uncertain_digest_is_found_whatever_the_case(tmp_path):
    with Store(tmp_path / "p.db") as store:
        store.record_in_flight("Ada@example.org", DAY, "<m@x>", ["2506.00001"])
        store.settle_in_flight()
        ada = Subscriber(email="ada@example.org", keywords=["x"])
        report = BatchReport()
        found = settle_uncertain([ada], store, DAY, Settings(uncertain="skip"), report)
        assert found == ["ada@example.org"]
        assert store.delivered_ids([ada.email], ["2506.00001"]) == {ada.email: {"2506.00001"}}


FOLDING = 1 + [m.__name__ for m in MIGRATIONS].index("_m_ledger_case")  # its version number


def test_a_ledger_written_before_keeps_its_history_under_one_spelling(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as store:  # a database from before: rows under the address as typed
        # from before the case folding: it and every later migration run again on these rows
        store.db.execute("DELETE FROM migrations WHERE version >= ?", [FOLDING])
        for table, row in (
            ("digests", {"subscriber": "Ada@example.org", "digest_date": "2025-06-12", "status": "sent"}),
            ("digests", {"subscriber": "Ada@example.org", "digest_date": "2025-06-13", "status": "sent"}),
            ("digests", {"subscriber": "ada@example.org", "digest_date": "2025-06-13", "status": "failed"}),
            ("deliveries", {"subscriber": "Ada@example.org", "paper_id": "p1", "digest_date": "2025-06-12"}),
            ("deliveries", {"subscriber": "ada@example.org", "paper_id": "p1", "digest_date": "2025-06-13"}),
            ("digest_views", {"subscriber": "Ada@example.org", "digest_date": "2025-06-12", "contents": "{}"}),
            ("bounces", {"event": "dsn:1:ada@example.org", "subscriber": "Ada@example.org", "kind": "hard",
                         "digest_date": "2025-06-12", "source": "dsn", "bad_address": 1}),
        ):
            store.db[table].insert(row)
    with Store(path) as store:
        rows = {(r["subscriber"], r["digest_date"]): r["status"] for r in store.digest_rows()}
        assert rows == {("ada@example.org", "2025-06-12"): "sent", ("ada@example.org", "2025-06-13"): "sent"}
        assert store.delivered_ids(["Ada@example.org"], ["p1"]) == {"Ada@example.org": {"p1"}}
        assert store.delivered_count() == 1
        assert store.digest_contents("ADA@example.org", date(2025, 6, 12)) == "{}"
        assert [c.subscriber for c in store.bounce_counts()] == ["ada@example.org"]


def test_bounces_of_one_person_count_together_whatever_the_case(tmp_path):
    from flows.store import Bounce

    with Store(tmp_path / "p.db") as store:
        # at the relay, under the address as the file spells it; later a DSN, matched through
        # the ledger's digest rows (now in lower case)
        store.record_outcome(Outcome(subscriber="Ada@example.org", digest_date=DAY, status="failed",
                                     permanent=True, smtp_code=550, smtp_status="5.1.1", smtp_stage="RCPT"))
        store.record_bounce(Bounce("dsn:1:ada@example.org", "ada@example.org", date(2025, 6, 14), "hard",
                                   True, 550, "5.1.1", "dsn", "failed"))
        (count,) = store.bounce_counts()
        assert (count.subscriber, count.hard, count.bad_address) == ("ada@example.org", 2, 2)
        store.record_suppression("Ada@example.org", date(2025, 6, 14), "hard bounce")
        assert store.bounce_counts() == []  # the suppression starts the count over for that person
        assert len(store.bounce_rows("ADA@example.org")) == 2
