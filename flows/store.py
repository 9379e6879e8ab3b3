"""The only module that touches SQLite: papers, fetched dates and the delivery ledger.

Ledger rules (see the README's "Ledger and idempotency"):

* ``digests(subscriber, digest_date)`` is unique. A digest that is ``sent`` or
  permanently ``failed`` is final for that date: a rerun never mails it again.
  ``deferred`` (transient failure, retries used up) and ``skipped`` (nothing new)
  are not final: a rerun the same day tries again.
* ``deliveries(subscriber, paper_id)`` is the "seen" set: a paper reaches a
  subscriber at most once, ever. It is written in the same transaction as the
  digest's ``sent`` row, right after the SMTP server accepted the message.
* ``in_flight``: written just before a digest's message data goes to the server, replaced
  by its outcome once the reply is known. A run killed in between leaves it; the next
  run turns it into ``uncertain`` (as is a digest whose final dot got no reply in time):
  the server may or may not have it. PAPERBOY_UNCERTAIN decides whether a rerun sends it
  again (``resend``, same Message-ID) or counts it final (``skip``).
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from flows.models import Outcome, Paper, bad_address
from flows.refusals import MESSAGE_REFUSALS, refusal_kind  # noqa: F401  (MESSAGE_REFUSALS: named here before)

FINAL_STATUSES = ("sent", "failed")
OPEN_TIMEOUT = 30.0  # seconds a new connection retries a transient "database is locked" while opening
# Counted against PAPERBOY_DAILY_CAP: what the relay took, or may have taken.
RELAYED_STATUSES = ("sent", "uncertain", "in_flight")
CRASH_REASON = "the run ended between sending the message and recording the server's reply"


class StoreError(Exception):
    """The database cannot be opened or is not a Paperboy database."""


class RunLocked(StoreError):
    """Another run is sending digests from this database."""


@contextmanager
def run_lock(db_path: Path | str) -> Iterator[None]:
    """Held by a run that sends from this database, for as long as it runs; RunLocked at once
    if another run holds it. The ledger makes a rerun safe, not two runs at once: both would
    plan the same subscribers (neither digest final yet), and each would take the other's
    in-flight digests for a crash's leftovers. A lock file beside the database, released by
    the kernel however the run ends (flock: a SIGKILLed run leaves no stale lock)."""
    import fcntl
    import socket

    path = Path(f"{db_path}.run-lock")
    private_file(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process"
            raise RunLocked(f"another run is sending digests from {db_path} ({holder}); let it finish "
                            "(or stop it), then run this again: nothing is sent twice") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {_utcnow()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def private_file(path: Path) -> None:
    """Create ``path`` (and missing parents, 0700) as a 0600 file, or tighten an existing one
    that others can read: it holds every subscriber's address and delivery history. SQLite
    gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # e.g. a read-only place: sqlite3 will say what is wrong
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and path.is_file():
        try:
            os.chmod(path, mode & 0o700)
        except OSError:
            return


@dataclass(frozen=True, slots=True)
class Bounce:
    """One bounce event as the ledger keeps it (see flows/bounces.py for the rules)."""

    event: str  # unique: "smtp:<subscriber>:<date>", or "dsn:<DSN id>:<recipient>"
    subscriber: str
    digest_date: date
    kind: str  # "hard" (counts towards suppression) or "soft"
    bad_address: bool  # 5.1.x: the address itself is wrong
    code: int
    status: str
    source: str  # "smtp" or "dsn"
    detail: str


@dataclass(frozen=True, slots=True)
class BounceCount:
    """A subscriber's hard bounces since their last suppression."""

    subscriber: str
    hard: int  # digests that hard-bounced
    bad_address: int  # of which with a 5.1.x status
    last_digest: date
    last_detail: str


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["papers"].create(
        {
            "id": str, "title": str, "abstract": str, "authors": str, "published": str,
            "listed": str, "first_listed": str, "upvotes": int, "comments": int,
            "ai_keywords": str, "github_repo": str, "project_page": str, "url": str,
            "sources": str, "categories": str, "first_seen": str, "updated_at": str,
        },
        pk="id",
        not_null={"title", "listed"},
    )
    db["papers"].create_index(["listed"])
    db["fetches"].create(
        {"source": str, "listed": str, "status": str, "papers": int, "skipped": int,
         "error": str, "fetched_at": str},
        pk=("source", "listed"),
    )
    db["digests"].create(
        {"id": int, "subscriber": str, "digest_date": str, "status": str, "message_id": str,
         "papers": int, "attempts": int, "error": str, "sent_at": str, "updated_at": str},
        pk="id",
        not_null={"subscriber", "digest_date", "status"},
    )
    db["digests"].create_index(["subscriber", "digest_date"], unique=True)
    db["digests"].create_index(["digest_date", "status"])
    db["deliveries"].create(
        {"subscriber": str, "paper_id": str, "digest_date": str, "delivered_at": str},
        pk=("subscriber", "paper_id"),
    )


def _m2_signups(db: sqlite_utils.Database) -> None:
    # One row per confirmation mail sent from the public sign-up form, for its rate limit.
    # ``address`` is a keyed hash of the address, never the address itself.
    db["signups"].create({"id": int, "address": str, "requested_at": str}, pk="id",
                         not_null={"address", "requested_at"})
    db["signups"].create_index(["address", "requested_at"])


def _m3_signup_abuse(db: sqlite_utils.Database) -> None:
    # Sign-up limits per client (a keyed hash of its network address) and for everyone;
    # confirmation links used once (a nonce from the signed link, kept while it could work).
    db["signups"].add_column("client", str)
    db["signups"].create_index(["client", "requested_at"])
    db["signups"].create_index(["requested_at"])
    db["used_links"].create({"nonce": str, "used_at": str}, pk="nonce", not_null={"used_at"})


def _m4_web_view(db: sqlite_utils.Database) -> None:
    # What a sent digest held, for its web view (flows.archive encodes it): one row per
    # digest, written with its "sent" row. Papers keep Hugging Face's TL;DR and GitHub stars.
    db["digest_views"].create(
        {"subscriber": str, "digest_date": str, "contents": str, "sent_at": str},
        pk=("subscriber", "digest_date"),
        not_null={"contents"},
    )
    db["digest_views"].create_index(["digest_date"])  # pruning by age
    db["papers"].add_column("ai_summary", str)
    db["papers"].add_column("github_stars", int)


def _m5_bounces(db: sqlite_utils.Database) -> None:
    # One row per bounce event: a 5xx at RCPT/DATA ("smtp") or a delivery status notification
    # read later ("dsn"). ``event`` is unique, so the same DSN read twice is one row.
    db["bounces"].create(
        {"id": int, "event": str, "subscriber": str, "digest_date": str, "kind": str, "bad_address": int,
         "code": int, "status": str, "source": str, "detail": str, "recorded_at": str},
        pk="id", not_null={"event", "subscriber", "digest_date", "kind", "source"},
    )
    db["bounces"].create_index(["event"], unique=True)
    db["bounces"].create_index(["subscriber", "digest_date"])
    # One row per suppression: only bounces of later digests count towards the next one, so a
    # subscriber set active again starts from zero.
    db["suppressions"].create(
        {"id": int, "subscriber": str, "digest_date": str, "reason": str, "suppressed_at": str},
        pk="id", not_null={"subscriber", "digest_date", "reason", "suppressed_at"},
    )
    db["suppressions"].create_index(["subscriber", "digest_date"])


def _m_delivery_window(db: sqlite_utils.Database) -> None:
    # A digest is "in_flight" from just before its message data goes to the SMTP server
    # until the reply is recorded; a row left so by a killed run is "uncertain" to the next
    # one. paper_ids (JSON) lets PAPERBOY_UNCERTAIN=skip record its papers as seen.
    db["digests"].add_column("paper_ids", str)
    db["digests"].add_column("in_flight_at", str)
    db["digests"].create_index(["updated_at"])  # the daily cap counts the last 24 hours


def _m_related_models(db: sqlite_utils.Database) -> None:
    # The related-terms model learned from every stored paper (flows/rank/related.py), one
    # row: the corpus it was learned from (its signature), when, and the model as a blob.
    db["related_models"].create(
        {"id": int, "signature": str, "papers": int, "seconds": float, "learned_at": str, "model": bytes},
        pk="id", not_null={"signature", "model"},
    )


def _m_feedback(db: sqlite_utils.Database) -> None:
    # "More / less like this" from the digests: one verdict per subscriber (lower case) and paper.
    db["feedback"].create(
        {"subscriber": str, "paper_id": str, "verdict": str, "created_at": str},
        pk=("subscriber", "paper_id"), not_null={"verdict", "created_at"},
    )


# Whose fault a permanent refusal is (flows/refusals.py): "hard" (the address's: counts towards
# suppression), "soft" (the message's: 5.3.4 too big, 5.2.3 over a length limit) or "sender"
# (ours: SPF/DKIM/DMARC, a blocklisted relay, a receiver's policy), recorded and never counted.
bounce_kind = refusal_kind


def ledger_key(subscriber: str) -> str:
    """How the ledger names a subscriber: the address in lower case. Everything else already
    treats ``Ada@Example.org`` and ``ada@example.org`` as one person (duplicate files,
    ``--only``, links, VERP, feedback); the ledger must too, or retyping the case in a
    subscriber file mails them again."""
    return subscriber.lower()


def _m_ledger_case(db: sqlite_utils.Database) -> None:
    # Rows written before ledger_key: one spelling per person. Where two spellings meet on
    # one key, the row that says "sent" wins (a digest sent is never sent again).
    for table, key in (("digests", ("digest_date",)), ("deliveries", ("paper_id",)),
                       ("digest_views", ("digest_date",))):
        mixed = [row[0] for row in db.execute(f"SELECT DISTINCT subscriber FROM {table}")
                 if row[0] is not None and row[0] != ledger_key(row[0])]
        match = " AND ".join(f"o.{k} = {table}.{k}" for k in key)
        for subscriber in mixed:
            lower = ledger_key(subscriber)
            if table == "digests":
                db.execute(f"DELETE FROM digests WHERE subscriber = ? AND EXISTS (SELECT 1 FROM digests o"
                           f" WHERE o.subscriber = ? AND {match} AND o.status = 'sent')", [subscriber, lower])
                db.execute(f"DELETE FROM digests WHERE subscriber = ? AND EXISTS (SELECT 1 FROM digests o"
                           f" WHERE o.subscriber = ? AND {match})", [lower, subscriber])
            else:
                db.execute(f"DELETE FROM {table} WHERE subscriber = ? AND EXISTS (SELECT 1 FROM {table} o"
                           f" WHERE o.subscriber = ? AND {match})", [subscriber, lower])
            db.execute(f"UPDATE {table} SET subscriber = ? WHERE subscriber = ?", [lower, subscriber])
    for table in ("bounces", "suppressions"):  # counted per person (no unique key to merge)
        for (subscriber,) in db.execute(f"SELECT DISTINCT subscriber FROM {table}").fetchall():
            if subscriber is not None and subscriber != ledger_key(subscriber):
                db.execute(f"UPDATE {table} SET subscriber = ? WHERE subscriber = ?", [ledger_key(subscriber), subscriber])


def _m_ledger_lookups(db: sqlite_utils.Database) -> None:
    # Open digests (in flight, uncertain, deferred) by their status: every batch of a run
    # settles in-flight rows, and `status` and `doctor` list the open ones; without it each
    # read the whole table (10,000 rows a day; 3.65 million after a year, 0.5-1 s each).
    # ≈ 24 bytes a digest, against ≈ 2,600 for its deliveries. (if_not_exists: a test that
    # replays an earlier migration replays this one too.)
    db["digests"].create_index(["status", "digest_date"], if_not_exists=True)
    # The corpus signature's latest change (every run, every web preview's corpus) without
    # reading every paper's row, abstracts and all.
    db["papers"].create_index(["updated_at"], if_not_exists=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_initial, _m2_signups, _m3_signup_abuse, _m4_web_view, _m5_bounces, _m_delivery_window, _m_related_models,
    _m_feedback, _m_ledger_case, _m_ledger_lookups,
]

FEEDBACK_KEPT = 50  # a subscriber's latest verdicts that shape their ranking


class Store:
    """A Paperboy database. Open one per thread; only the flow process writes the ledger."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:":
            private_file(self.path)
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                self._open(path)
                return
            except sqlite3.OperationalError as exc:
                # Connections that open a brand-new database at once can meet SQLITE_BUSY
                # where SQLite does not call the busy handler (switching to WAL, WAL
                # recovery): seen 1 in ~10 runs of eight threads opening one new file.
                # It clears in milliseconds; a real lock still ends in the error below.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(f"{path}: cannot open the database ({exc})") from None
                time.sleep(0.01 + random.random() * 0.05)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{path}: cannot open the database ({exc})") from None

    def _open(self, path: Path | str) -> None:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        try:
            self.db = sqlite_utils.Database(conn)
            if str(path) != ":memory:":
                self.db.enable_wal()
            # WAL + NORMAL survives a process crash (the case that matters for the ledger);
            # FULL would fsync every digest and cap sending at disk speed.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations in order; returns the schema version."""
        with self.db.conn:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
            )
        version = self.db.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                # Another connection may have applied it meanwhile (processes or threads that
                # open a new database at once): look again now that we hold the write lock.
                done = self.db.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]
                if done >= number:
                    self.db.execute("COMMIT")
                    continue
                migration(self.db)
                self.db.execute("INSERT INTO migrations VALUES (?, ?)", [number, _utcnow()])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return len(MIGRATIONS)

    # -- papers ---------------------------------------------------------------------------

    def upsert_papers(self, papers: Iterable[Paper]) -> int:
        """Insert or merge papers; returns how many were new. One row per id across sources."""
        incoming: dict[str, Paper] = {}
        for paper in papers:
            previous = incoming.get(paper.id)
            incoming[paper.id] = merge_papers(previous, paper) if previous else paper
        if not incoming:
            return 0
        existing = {row["id"]: row for row in self._rows_by_id(list(incoming))}
        now = _utcnow()
        # to the microsecond: the corpus signature (below) must change with any change, even
        # one in the same second as the change the stored related model was learned after
        changed_at = _stamp(datetime.now(timezone.utc))
        rows = []
        for paper_id, paper in incoming.items():
            old = existing.get(paper_id)
            merged = merge_papers(row_to_paper(old), paper) if old else paper
            row = paper_to_row(merged)
            row["first_seen"] = old["first_seen"] if old else now
            row["first_listed"] = min(old["first_listed"], row["listed"]) if old else row["listed"]
            row["sources"] = json.dumps(sorted(set(json.loads(old["sources"]) if old else []) | {paper.source}))
            if old and all(old.get(k) == v for k, v in row.items()):
                continue  # unchanged (a re-fetched day): updated_at, and so the corpus signature, stay
            row["updated_at"] = changed_at
            rows.append(row)
        if rows:
            with self.db.conn:
                self.db["papers"].upsert_all(rows, pk="id")
        return len(incoming) - len(existing)

    def _rows_by_id(self, ids: Sequence[str]) -> Iterable[dict]:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.query(f"SELECT * FROM papers WHERE id IN ({marks})", chunk)

    def papers_listed(self, since: date, until: date) -> list[Paper]:
        """Papers whose latest listing date lies in [since, until], most upvoted first."""
        rows = self.db.query(
            "SELECT * FROM papers WHERE listed BETWEEN ? AND ? ORDER BY upvotes DESC, id",
            [since.isoformat(), until.isoformat()],
        )
        return [row_to_paper(row) for row in rows]

    def papers_by_id(self, ids: Sequence[str]) -> dict[str, Paper]:
        """The stored papers among ``ids``, by id (unknown ids are left out)."""
        return {row["id"]: row_to_paper(row) for row in self._rows_by_id(list(ids))}

    def paper_count(self) -> int:
        return self.db["papers"].count

    def paper(self, paper_id: str) -> Paper | None:
        """One stored paper, or None."""
        rows = list(self._rows_by_id([paper_id]))
        return row_to_paper(rows[0]) if rows else None

    def corpus_signature(self) -> str:
        """Names the stored corpus as it is now: how many papers, and the latest change to one."""
        # two statements: MAX alone is one probe of its index, beside COUNT it reads all of it
        count = self.db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
        latest = self.db.execute("SELECT MAX(updated_at) FROM papers").fetchone()[0]
        return f"{count}:{latest or ''}"

    def paper_texts(self, chunk: int = 2000) -> Iterator[tuple[str, str]]:
        """(title, abstract) of every stored paper, read a chunk at a time (by rowid)."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT rowid, title, abstract FROM papers WHERE rowid > ? ORDER BY rowid LIMIT ?", [last, chunk]
            ).fetchall()
            if not rows:
                return
            for _, title, abstract in rows:
                yield title or "", abstract or ""
            last = rows[-1][0]

    # -- feedback -------------------------------------------------------------------------

    def record_feedback(self, subscriber: str, paper_id: str, verdict: str) -> None:
        """Keep a subscriber's "more" or "less" for a paper (a later verdict replaces it)."""
        if verdict not in ("more", "less"):
            raise ValueError(f"verdict {verdict!r}: use 'more' or 'less'")
        with self.db.conn:
            self.db.execute(
                "INSERT INTO feedback (subscriber, paper_id, verdict, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (subscriber, paper_id) DO UPDATE SET verdict = excluded.verdict,"
                " created_at = excluded.created_at",
                [subscriber.lower(), paper_id, verdict, _stamp(datetime.now(timezone.utc))],
            )

    def remove_feedback(self, subscriber: str, paper_id: str) -> bool:
        """Forget a verdict (undo); True if there was one."""
        with self.db.conn:
            cursor = self.db.execute("DELETE FROM feedback WHERE subscriber = ? AND paper_id = ?",
                                     [subscriber.lower(), paper_id])
        return cursor.rowcount > 0

    def feedback_of(self, subscriber: str) -> list[dict]:
        """A subscriber's verdicts, newest first: paper_id, verdict, created_at, title, url."""
        rows = self.db.execute(
            "SELECT f.paper_id, f.verdict, f.created_at, p.title, p.url FROM feedback f "
            "LEFT JOIN papers p ON p.id = f.paper_id WHERE f.subscriber = ? "
            "ORDER BY f.created_at DESC, f.paper_id",
            [subscriber.lower()],
        ).fetchall()
        return [{"paper_id": r[0], "verdict": r[1], "created_at": r[2], "title": r[3] or r[0], "url": r[4] or ""}
                for r in rows]

    def all_feedback(self, kept: int = FEEDBACK_KEPT) -> dict[str, list[tuple[str, str, str, str]]]:
        """Per subscriber (lower case) with any: their latest ``kept`` verdicts as (paper_id,
        verdict, title, abstract), for ranking; papers no longer stored are left out."""
        found: dict[str, list[tuple[str, str, str, str]]] = {}
        rows = self.db.execute(
            "SELECT f.subscriber, f.paper_id, f.verdict, p.title, p.abstract FROM feedback f "
            "JOIN papers p ON p.id = f.paper_id ORDER BY f.subscriber, f.created_at DESC, f.paper_id"
        )
        for subscriber, paper_id, verdict, title, abstract in rows:
            items = found.setdefault(subscriber, [])
            if len(items) < kept:
                items.append((paper_id, verdict, title or "", abstract or ""))
        return found

    # -- related-terms model --------------------------------------------------------------

    def related_model(self) -> tuple[str, bytes] | None:
        """The stored related-terms model: (corpus signature it was learned from, blob)."""
        row = self.db.execute("SELECT signature, model FROM related_models ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def save_related_model(self, signature: str, blob: bytes, *, papers: int, seconds: float) -> None:
        """Keep this model (and only this one) for the corpus named by ``signature``."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM related_models")
            self.db.execute(
                "INSERT INTO related_models (signature, papers, seconds, learned_at, model) VALUES (?, ?, ?, ?, ?)",
                [signature, papers, seconds, _utcnow(), blob],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- fetches --------------------------------------------------------------------------

    def record_fetch(self, source: str, listed: date, *, papers: int, skipped: int = 0,
                     error: str = "") -> None:
        with self.db.conn:
            self.db["fetches"].upsert({
                "source": source, "listed": listed.isoformat(),
                "status": "failed" if error else "ok", "papers": papers, "skipped": skipped,
                "error": error, "fetched_at": _utcnow(),
            }, pk=("source", "listed"))

    def fetched_dates(self, source: str) -> set[date]:
        """Listing dates this source was fetched for successfully."""
        rows = self.db.query(
            "SELECT listed FROM fetches WHERE source = ? AND status = 'ok'", [source]
        )
        return {date.fromisoformat(row["listed"]) for row in rows}

    def last_fetched(self, source: str, until: date | None = None) -> date | None:
        """The latest listing date fetched successfully (not after ``until``, if given)."""
        row = self.db.execute(
            "SELECT MAX(listed) FROM fetches WHERE source = ? AND status = 'ok' AND listed <= ?",
            [source, (until or date.max).isoformat()],
        ).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def future_rows(self, after: date) -> dict[str, list[dict]]:
        """Fetches and digests recorded for dates after ``after``: state a run with a future
        date (or a clock or timezone since changed) left behind."""
        day = after.isoformat()
        return {
            "fetches": list(self.db.query(
                "SELECT source, listed, status FROM fetches WHERE listed > ? ORDER BY listed", [day])),
            "digests": list(self.db.query(
                "SELECT subscriber, digest_date, status FROM digests WHERE digest_date > ? "
                "ORDER BY digest_date, subscriber", [day])),
        }

    def stale_in_flight(self, before: datetime) -> list[dict]:
        """Digests still marked in flight (a message handed to the server, its answer never
        recorded) since before ``before``: left by a run that was killed."""
        return list(self.db.query(
            "SELECT subscriber, digest_date, status, updated_at FROM digests WHERE status = 'in_flight'"
            " AND updated_at < ? ORDER BY digest_date, subscriber",
            [before.astimezone(timezone.utc).isoformat(timespec="seconds")]))

    def forget_future(self, after: date) -> dict[str, int]:
        """Delete the fetches and digests recorded for dates after ``after`` (`paperboy doctor
        --repair`). Papers and deliveries stay: a paper already sent is never sent again."""
        day = after.isoformat()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            fetches = self.db.execute("DELETE FROM fetches WHERE listed > ?", [day]).rowcount
            digests = self.db.execute("DELETE FROM digests WHERE digest_date > ?", [day]).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {"fetches": fetches, "digests": digests}

    # -- sign-up rate limit ----------------------------------------------------------------

    def claim_signup(self, address: str, now: datetime, *, limit: int, window: timedelta,
                     min_gap: timedelta, client: str | None = None, client_limit: int | None = None,
                     total_limit: int | None = None, short_window: timedelta = timedelta(hours=1)) -> bool:
        """:meth:`admit_signup` as a yes or no."""
        return not self.admit_signup(address, now, limit=limit, window=window, min_gap=min_gap,
                                     client=client, client_limit=client_limit,
                                     total_limit=total_limit, short_window=short_window)

    def admit_signup(self, address: str, now: datetime, *, limit: int, window: timedelta,
                     min_gap: timedelta, client: str | None = None, client_limit: int | None = None,
                     total_limit: int | None = None, short_window: timedelta = timedelta(hours=1)) -> str:
        """Record a confirmation mail for ``address`` (asked for by ``client``) unless a limit
        stops it; "" when recorded, else the limit: "address" (``limit`` within ``window``, or
        one less than ``min_gap`` ago), "client" (``client_limit`` within ``short_window``),
        "total" (``total_limit`` from everyone within ``short_window``). Check and insert are
        one transaction, so concurrent sign-ups cannot both slip under a limit."""
        # One fixed format (UTC, microseconds) so the stored text compares like the time.
        since, stamp = _stamp(now - max(window, short_window)), _stamp(now)
        recent = _stamp(now - short_window)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM signups WHERE requested_at < ?", [since])  # forget old ones
            refused = self._signup_limit(address, now, recent, limit, window, min_gap,
                                         client, client_limit, total_limit)
            if not refused:
                self.db.execute("INSERT INTO signups (address, client, requested_at) VALUES (?, ?, ?)",
                                [address, client, stamp])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return refused

    def _signup_limit(self, address: str, now: datetime, recent: str, limit: int, window: timedelta,
                      min_gap: timedelta, client: str | None, client_limit: int | None,
                      total_limit: int | None) -> str:
        if total_limit is not None and self.db.execute(
                "SELECT COUNT(*) FROM signups WHERE requested_at >= ?", [recent]).fetchone()[0] >= total_limit:
            return "total"
        if client is not None and client_limit is not None and self.db.execute(
                "SELECT COUNT(*) FROM signups WHERE client = ? AND requested_at >= ?",
                [client, recent]).fetchone()[0] >= client_limit:
            return "client"
        count, last = self.db.execute(
            "SELECT COUNT(*), MAX(requested_at) FROM signups WHERE address = ? AND requested_at >= ?",
            [address, _stamp(now - window)],
        ).fetchone()
        if count >= limit or (last is not None and datetime.fromisoformat(last) > now - min_gap):
            return "address"
        return ""

    # -- single-use links ------------------------------------------------------------------

    def use_link(self, nonce: str, now: datetime, *, forget_before: datetime) -> bool:
        """Mark a link's ``nonce`` used; False if it was used already. Nonces used before
        ``forget_before`` (their links have expired anyway) are forgotten."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM used_links WHERE used_at < ?", [_stamp(forget_before)])
            fresh = self.db.execute("INSERT OR IGNORE INTO used_links (nonce, used_at) VALUES (?, ?)",
                                    [nonce, _stamp(now)]).rowcount == 1
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return fresh

    def link_used(self, nonce: str) -> bool:
        return self.db.execute("SELECT 1 FROM used_links WHERE nonce = ?", [nonce]).fetchone() is not None

    def release_link(self, nonce: str) -> None:
        """Make a link usable again: what it was to do could not be done."""
        with self.db.conn:
            self.db.execute("DELETE FROM used_links WHERE nonce = ?", [nonce])

    def signups_since(self, address: str, since: datetime) -> int:
        """How many confirmation mails ``address`` was sent since ``since``."""
        return self.db.execute(
            "SELECT COUNT(*) FROM signups WHERE address = ? AND requested_at >= ?",
            [address, _stamp(since)],
        ).fetchone()[0]

    # -- ledger ---------------------------------------------------------------------------

    def finished_subscribers(self, digest_date: date, *, uncertain_final: bool = False,
                             among: Sequence[str] | None = None) -> set[str]:
        """Subscribers whose digest for this date is final (sent or permanently failed; with
        ``uncertain_final``, uncertain too: PAPERBOY_UNCERTAIN=skip); with ``among``, only
        those of these (a batch: one index probe each, where the whole day, read by each of
        a run's batches, made planning grow with the square of the subscribers)."""
        statuses = "('sent', 'failed', 'uncertain')" if uncertain_final else "('sent', 'failed')"
        if among is None:
            rows = self.db.execute(  # tuples, not sqlite_utils' dicts
                f"SELECT subscriber FROM digests WHERE digest_date = ? AND status IN {statuses}",
                [digest_date.isoformat()],
            )
            return {row[0] for row in rows}
        found: set[str] = set()
        keys = sorted({ledger_key(s) for s in among})
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT subscriber FROM digests WHERE subscriber IN ({','.join('?' * len(chunk))})"
                f" AND digest_date = ? AND +status IN {statuses}", [*chunk, digest_date.isoformat()])
            found.update(row[0] for row in rows)
        return found

    # -- the delivery window ----------------------------------------------------------------

    def record_in_flight(self, subscriber: str, digest_date: date, message_id: str,
                         paper_ids: Sequence[str]) -> None:
        """Mark a digest as on its way: its data is about to go to the SMTP server, and until
        its outcome replaces this row nobody knows whether the server took it. A sent
        digest is never marked again."""
        now = _utcnow()
        self.db.execute(
            "INSERT INTO digests (subscriber, digest_date, status, message_id, papers, attempts,"
            " error, paper_ids, in_flight_at, updated_at) VALUES (?, ?, 'in_flight', ?, ?, 0, '', ?, ?, ?) "
            "ON CONFLICT (subscriber, digest_date) DO UPDATE SET status = 'in_flight',"
            " message_id = excluded.message_id, papers = excluded.papers, paper_ids = excluded.paper_ids,"
            " in_flight_at = excluded.in_flight_at, updated_at = excluded.updated_at"
            " WHERE digests.status != 'sent'",
            [ledger_key(subscriber), digest_date.isoformat(), message_id, len(paper_ids),
             json.dumps(list(paper_ids)), now, now],
        )

    def settle_in_flight(self) -> int:
        """Turn the in-flight rows a killed run left behind into ``uncertain`` (call before
        sending, never while a run of this database is sending); how many there were."""
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE digests SET status = 'uncertain', error = ?, updated_at = ? WHERE status = 'in_flight'",
                [CRASH_REASON, _utcnow()])
        return cursor.rowcount

    def uncertain_digests(self, digest_date: date | None = None) -> list[dict]:
        """Digests whose fate is unknown (and in-flight ones), oldest date first."""
        where, params = ("AND digest_date = ?", [digest_date.isoformat()]) if digest_date else ("", [])
        return list(self.db.query(
            "SELECT subscriber, digest_date, status, message_id, error, in_flight_at, updated_at"
            f" FROM digests WHERE status IN ('uncertain', 'in_flight') {where}"
            " ORDER BY digest_date, subscriber", params))

    def take_uncertain_as_sent(self, digest_date: date, subscribers: Sequence[str]) -> None:
        """PAPERBOY_UNCERTAIN=skip: these uncertain digests are not sent again, and their
        papers count as seen (a paper reaches a person at most once). Status stays uncertain."""
        if not subscribers:
            return
        day, now = digest_date.isoformat(), _utcnow()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for subscriber in map(ledger_key, subscribers):
                row = self.db.execute(
                    "SELECT paper_ids FROM digests WHERE subscriber = ? AND digest_date = ? AND status = 'uncertain'",
                    [subscriber, day]).fetchone()
                if row is None:
                    continue
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO deliveries (subscriber, paper_id, digest_date, delivered_at)"
                    " VALUES (?, ?, ?, ?)",
                    [(subscriber, pid, day, now) for pid in json.loads(row[0] or "[]")])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def digest_counts(self, last_dates: int = 7) -> list[dict]:
        """Per digest date (the newest ``last_dates`` of them) and status: how many digests,
        and when the first and last of them were written. What `paperboy status` shows."""
        # The newest dates one index probe each (a DISTINCT over the index read all of it).
        return list(self.db.query(
            "WITH RECURSIVE dates (day, n) AS (SELECT MAX(digest_date), 1 FROM digests"
            " UNION ALL SELECT (SELECT MAX(digest_date) FROM digests WHERE digest_date < dates.day), n + 1"
            " FROM dates WHERE n < ? AND day IS NOT NULL)"
            " SELECT digest_date, status, COUNT(*) AS digests, MIN(updated_at) AS first, MAX(updated_at) AS last"
            " FROM digests WHERE digest_date IN (SELECT day FROM dates WHERE day IS NOT NULL)"
            " GROUP BY digest_date, status ORDER BY digest_date DESC, status",
            [last_dates]))

    def deferred_digests(self, since: date) -> list[dict]:
        """Digests deferred (transient failure or the daily cap) for dates from ``since``."""
        return list(self.db.query(
            "SELECT subscriber, digest_date, error, attempts, updated_at FROM digests"
            " WHERE status = 'deferred' AND digest_date >= ? ORDER BY digest_date DESC, subscriber",
            [since.isoformat()]))

    def relayed_since(self, moment: datetime) -> int:
        """Messages the relay took (or may have) since ``moment``: the daily cap's count."""
        marks = ",".join("?" * len(RELAYED_STATUSES))
        # "+status": by the time index (the last 24 hours), never by the status index, which
        # would read every digest ever sent
        return self.db.execute(
            f"SELECT COUNT(*) FROM digests WHERE updated_at >= ? AND +status IN ({marks})",
            [moment.astimezone(timezone.utc).isoformat(timespec="seconds"), *RELAYED_STATUSES],
        ).fetchone()[0]

    def delivered_ids(self, subscribers: Sequence[str], paper_ids: Sequence[str]) -> dict[str, set[str]]:
        """For each subscriber, which of these papers they were already sent."""
        seen: dict[str, set[str]] = {s: set() for s in subscribers}
        if not subscribers or not paper_ids:
            return seen
        spellings: dict[str, list[str]] = {}
        for subscriber in subscribers:
            spellings.setdefault(ledger_key(subscriber), []).append(subscriber)
        keys = list(spellings)
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS _ids (id TEXT PRIMARY KEY)")
        # One transaction: in autocommit mode each insert was one, 50 ms for 2,000 candidates.
        self.db.execute("BEGIN")
        try:
            self.db.execute("DELETE FROM _ids")
            self.db.conn.executemany("INSERT OR IGNORE INTO _ids VALUES (?)", [(p,) for p in paper_ids])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            # Either look up every (subscriber, candidate) pair in the primary key, which SQLite
            # does unless told otherwise, or read each subscriber's deliveries and keep the
            # candidates ("+" hides paper_id from the index). Reading wins while a history is
            # under about 3x the candidates: 500 subscribers with 20 deliveries each against
            # 2,000 candidates took 0.31 s by lookups, 0.004 s by reading.
            column = "+paper_id" if self._history(chunk) <= 3 * len(paper_ids) else "paper_id"
            rows = self.db.execute(
                f"SELECT subscriber, paper_id FROM deliveries WHERE subscriber IN ({marks}) "
                f"AND {column} IN (SELECT id FROM _ids)", chunk,
            )
            for key, paper_id in rows:
                for subscriber in spellings[key]:
                    seen[subscriber].add(paper_id)
        return seen

    def _history(self, subscribers: Sequence[str], sample: int = 20) -> float:
        """Deliveries per subscriber, averaged over the first ``sample`` of them."""
        some = list(subscribers[:sample])
        marks = ",".join("?" * len(some))
        count = self.db.execute(
            f"SELECT COUNT(*) FROM deliveries WHERE subscriber IN ({marks})", some).fetchone()[0]
        return count / len(some)

    def record_outcome(self, outcome: Outcome) -> None:
        """Write one digest's outcome, and its deliveries if sent, in a single transaction."""
        status = outcome.status
        if status == "failed" and not outcome.permanent:
            status = "deferred"
        at = (outcome.at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        day = outcome.digest_date.isoformat()
        subscriber = ledger_key(outcome.subscriber)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            current = self.db.execute(
                "SELECT status FROM digests WHERE subscriber = ? AND digest_date = ?",
                [subscriber, day],
            ).fetchone()
            if current and current[0] == "sent":
                self.db.execute("ROLLBACK")  # a sent digest is never overwritten
                return
            self.db.execute(
                "INSERT INTO digests (subscriber, digest_date, status, message_id, papers, attempts,"
                " error, sent_at, updated_at, paper_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (subscriber, digest_date) DO UPDATE SET status = excluded.status,"
                " message_id = excluded.message_id, papers = excluded.papers,"
                " attempts = digests.attempts + excluded.attempts, error = excluded.error,"
                " sent_at = excluded.sent_at, updated_at = excluded.updated_at,"
                " paper_ids = excluded.paper_ids",
                [subscriber, day, status, outcome.message_id, len(outcome.paper_ids),
                 outcome.attempts, outcome.error, at if status == "sent" else None, at,
                 json.dumps(list(outcome.paper_ids)) if status == "uncertain" else None],
            )
            if status == "sent":
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO deliveries (subscriber, paper_id, digest_date, delivered_at)"
                    " VALUES (?, ?, ?, ?)",
                    [(subscriber, pid, day, at) for pid in outcome.paper_ids],
                )
                if outcome.contents:
                    self.db.execute(
                        "INSERT OR REPLACE INTO digest_views (subscriber, digest_date, contents, sent_at)"
                        " VALUES (?, ?, ?, ?)", [subscriber, day, outcome.contents, at])


            if outcome.hard_bounce:  # counted towards suppression unless about the message or the sender
                self._insert_bounce(Bounce(
                    f"smtp:{outcome.subscriber.lower()}:{day}", outcome.subscriber, outcome.digest_date,
                    bounce_kind(outcome.smtp_status, outcome.error), bad_address(outcome.smtp_status), outcome.smtp_code,
                    outcome.smtp_status,
                    "smtp", f"{outcome.smtp_stage}: {outcome.error}"), at)

            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def digest_contents(self, subscriber: str, digest_date: date) -> str | None:
        """What a sent digest held (see flows.archive), or None if it was not kept."""
        row = self.db.execute(
            "SELECT contents FROM digest_views WHERE subscriber = ? AND digest_date = ?",
            [ledger_key(subscriber), digest_date.isoformat()],
        ).fetchone()
        return row[0] if row else None

    def prune_digest_views(self, before: date) -> int:
        """Forget what digests dated before ``before`` held (their web views); how many."""
        with self.db.conn:
            cursor = self.db.execute("DELETE FROM digest_views WHERE digest_date < ?",
                                     [before.isoformat()])
        return cursor.rowcount


    # -- bounces and suppressions ---------------------------------------------------------

    def record_bounce(self, bounce: Bounce) -> bool:
        """Record one bounce event; False when this event was recorded before (same DSN)."""
        with self.db.conn:
            return self._insert_bounce(bounce, _utcnow())

    def _insert_bounce(self, bounce: Bounce, at: str) -> bool:
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO bounces (event, subscriber, digest_date, kind, bad_address, code, status,"
            " source, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [bounce.event, ledger_key(bounce.subscriber), bounce.digest_date.isoformat(), bounce.kind,
             int(bounce.bad_address), bounce.code, bounce.status, bounce.source, bounce.detail[:500], at],
        )
        return cursor.rowcount == 1

    def bounce_counts(self) -> list[BounceCount]:
        """Per subscriber, the digests that hard-bounced since their last suppression (each
        digest counts once, however many events it had), with the latest event's detail."""
        rows = self.db.execute(
            "SELECT b.subscriber, COUNT(DISTINCT b.digest_date),"
            " COUNT(DISTINCT CASE WHEN b.bad_address THEN b.digest_date END), MAX(b.digest_date),"
            " (SELECT detail FROM bounces l WHERE l.subscriber = b.subscriber AND l.kind = 'hard'"
            "  ORDER BY l.digest_date DESC, l.id DESC LIMIT 1)"
            " FROM bounces b WHERE b.kind = 'hard' AND b.digest_date > COALESCE("
            "  (SELECT MAX(s.digest_date) FROM suppressions s WHERE s.subscriber = b.subscriber), '')"
            " GROUP BY b.subscriber ORDER BY b.subscriber"
        ).fetchall()
        return [BounceCount(subscriber, hard, bad, date.fromisoformat(last), detail or "")
                for subscriber, hard, bad, last, detail in rows]

    def record_suppression(self, subscriber: str, digest_date: date, reason: str) -> None:
        with self.db.conn:
            self.db.execute(
                "INSERT INTO suppressions (subscriber, digest_date, reason, suppressed_at) VALUES (?, ?, ?, ?)",
                [ledger_key(subscriber), digest_date.isoformat(), reason, _utcnow()])

    def suppressions(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM suppressions ORDER BY suppressed_at, id"))

    def reclassify_hard_bounces(self, is_sender: Callable[[dict], bool]) -> int:
        """Turn the hard bounces that ``is_sender`` (given the row) now reads as refusals of
        the sender into kind "sender" (no longer counted); how many. Only that way round: a
        change of the rules never makes anybody more suppressible after the fact."""
        ids = [row["id"] for row in self.db.query("SELECT * FROM bounces WHERE kind = 'hard'") if is_sender(row)]
        if ids:
            with self.db.conn:
                self.db.conn.executemany("UPDATE bounces SET kind = 'sender' WHERE id = ?", [(i,) for i in ids])
        return len(ids)

    def bounces_since(self, moment: datetime) -> list[dict]:
        """Bounce events recorded since ``moment`` (every kind), oldest first: what `paperboy
        status` sums up."""
        return list(self.db.query(
            "SELECT * FROM bounces WHERE recorded_at >= ? ORDER BY recorded_at, id",
            [moment.astimezone(timezone.utc).isoformat(timespec="seconds")]))

    def bounce_rows(self, subscriber: str | None = None) -> list[dict]:
        where, params = ("WHERE subscriber = ?", [ledger_key(subscriber)]) if subscriber else ("", [])
        return list(self.db.query(f"SELECT * FROM bounces {where} ORDER BY digest_date, id", params))

    def digest_subscribers(self, digest_date: date) -> list[str]:
        """Everyone with a digest row for this date (whatever its status)."""
        rows = self.db.execute("SELECT subscriber FROM digests WHERE digest_date = ?", [digest_date.isoformat()])
        return [row[0] for row in rows]


    def digest_rows(self, digest_date: date | None = None) -> list[dict]:
        where, params = ("WHERE digest_date = ?", [digest_date.isoformat()]) if digest_date else ("", [])
        return list(self.db.query(
            f"SELECT * FROM digests {where} ORDER BY digest_date, subscriber", params
        ))

    def delivered_count(self, subscriber: str | None = None) -> int:
        if subscriber is None:
            return self.db["deliveries"].count
        return self.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE subscriber = ?", [ledger_key(subscriber)]
        ).fetchone()[0]


@dataclass(frozen=True, slots=True)
class FtsPhrase:
    """Words to find next to each other, in one field (``title``/``abstract``) or in either."""

    words: str
    field: str | None = None


FTS_FIELDS = ("title", "abstract")
_FTS_WORD = re.compile(r"\w", re.UNICODE)


class FullTextIndex:
    """Papers' titles and abstracts in an in-memory SQLite FTS5 table, searched by BM25.

    The plain baseline the evaluation compares the ranker with (``make eval``): FTS5's
    own tokenizer with Porter stemming, no acronyms or variants, both fields weighted alike.
    """

    def __init__(self, papers: Iterable[Paper]) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(
            "CREATE VIRTUAL TABLE papers_fts USING fts5("
            "id UNINDEXED, title, abstract, tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        with self.conn:
            self.conn.executemany(
                "INSERT INTO papers_fts (id, title, abstract) VALUES (?, ?, ?)",
                ((p.id, p.title, p.abstract) for p in papers),
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "FullTextIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, any_of: Sequence[FtsPhrase], none_of: Sequence[FtsPhrase] = (),
               limit: int | None = None) -> list[str]:
        """Ids of the papers matching any phrase of ``any_of`` and none of ``none_of``, best
        BM25 first (ties by id). Phrases without a word character are left out."""
        wanted = [_fts_phrase(p) for p in any_of if _FTS_WORD.search(p.words)]
        if not wanted:
            return []
        expression = "(" + " OR ".join(wanted) + ")"
        unwanted = [_fts_phrase(p) for p in none_of if _FTS_WORD.search(p.words)]
        if unwanted:
            expression += " NOT (" + " OR ".join(unwanted) + ")"
        rows = self.conn.execute(
            "SELECT id FROM papers_fts WHERE papers_fts MATCH ? ORDER BY bm25(papers_fts), id LIMIT ?",
            [expression, -1 if limit is None else limit],
        )
        return [row[0] for row in rows]


def _fts_phrase(phrase: FtsPhrase) -> str:
    if phrase.field is not None and phrase.field not in FTS_FIELDS:
        raise ValueError(f"unknown field {phrase.field!r}; use one of {', '.join(FTS_FIELDS)}")
    quoted = '"' + phrase.words.replace('"', '""') + '"'
    return f"{phrase.field} : {quoted}" if phrase.field else quoted


def merge_papers(old: Paper, new: Paper) -> Paper:
    """One paper seen twice (or from two sources): keep the richest value of each field."""
    return replace(
        old,
        title=new.title or old.title,
        abstract=new.abstract if len(new.abstract) >= len(old.abstract) else old.abstract,
        authors=new.authors or old.authors,
        published=old.published or new.published,
        listed=max(old.listed, new.listed),
        upvotes=max(old.upvotes, new.upvotes),
        comments=max(old.comments, new.comments),
        ai_keywords=new.ai_keywords or old.ai_keywords,
        github_repo=new.github_repo or old.github_repo,
        project_page=new.project_page or old.project_page,
        ai_summary=new.ai_summary or old.ai_summary,
        github_stars=max(old.github_stars, new.github_stars),
        # the Hugging Face page carries upvotes and discussion: prefer it as the link
        url=old.url if old.source == "huggingface" and old.url else (new.url or old.url),
        source=old.source if old.source == "huggingface" else new.source,
        categories=tuple(sorted(set(old.categories) | set(new.categories))),
    )


def paper_to_row(paper: Paper) -> dict:
    return {
        "id": paper.id, "title": paper.title, "abstract": paper.abstract,
        "authors": json.dumps(list(paper.authors), ensure_ascii=False),
        "published": paper.published.isoformat() if paper.published else None,
        "listed": paper.listed.isoformat(), "upvotes": paper.upvotes, "comments": paper.comments,
        "ai_keywords": json.dumps(list(paper.ai_keywords), ensure_ascii=False),
        "github_repo": paper.github_repo, "project_page": paper.project_page, "url": paper.url,
        "sources": json.dumps([paper.source]),
        "categories": json.dumps(list(paper.categories)),
        "ai_summary": paper.ai_summary or None, "github_stars": paper.github_stars,
    }


def row_to_paper(row: dict) -> Paper:
    sources = json.loads(row.get("sources") or "[]")
    return Paper(
        id=row["id"], title=row["title"], abstract=row["abstract"] or "",
        listed=date.fromisoformat(row["listed"]),
        authors=tuple(json.loads(row["authors"] or "[]")),
        published=date.fromisoformat(row["published"]) if row["published"] else None,
        upvotes=row["upvotes"] or 0, comments=row["comments"] or 0,
        ai_keywords=tuple(json.loads(row["ai_keywords"] or "[]")),
        github_repo=row["github_repo"], project_page=row["project_page"], url=row["url"] or "",
        source="huggingface" if "huggingface" in sources else (sources[0] if sources else ""),
        categories=tuple(json.loads(row["categories"] or "[]")),
        ai_summary=row.get("ai_summary") or "", github_stars=row.get("github_stars") or 0,
    )
