"""Bounces and suppression (flows/bounces.py, flows/verp.py): 5xx refusals from the real aiosmtpd
server with fault injection, DSNs in real formats (RFC 3464 from Postfix, Exchange and Gmail,
qmail's free text) read from a Maildir, VERP tokens, the limits, and undoing a suppression."""

from __future__ import annotations

import itertools
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import bounces
from flows.cli import app
from flows.compose import renderer_for
from flows.corpus import Corpus
from flows.daily import daily_digest as daily_flow
from flows.tasks import summary_of
from flows.fetch import fetch_dates
from flows.links import secret_key
from flows.models import message_id_for
from flows.send import run_batch
from flows.settings import Settings
from flows.sources import build_source
from flows.store import Bounce, Store
from flows.subscribers import Subscriber, SubscriberError, find, load_all, set_active, update
from flows.verp import TokenMap, find_token, mac, return_path

DSN_DIR = Path(__file__).parent / "data" / "dsn"
KEY = "test-secret-key-0123456789-abcdefghij"
_serial = itertools.count()


def daily_digest(**parameters) -> dict:
    """The daily flow's summary also when it ends Failed (a refused digest makes it so)."""
    return summary_of(daily_flow(**parameters, return_state=True))


def dsn(name: str, *, verp: str, rcpt: str, message_id: str = "<x@example.org>") -> bytes:
    text = (DSN_DIR / f"{name}.eml").read_text(encoding="utf-8")
    text = text.replace("{verp}", verp).replace("{rcpt}", rcpt).replace("{message_id}", message_id)
    return text.replace("\n", "\r\n").encode("utf-8")


def make_maildir(path: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def drop(maildir: Path, raw: bytes) -> Path:
    path = maildir / "new" / f"1749798131.M{next(_serial)}P{os.getpid()}.paperboy-test"
    path.write_bytes(raw)
    return path


def subscriber(settings: Settings, email: str) -> Subscriber:
    return find(settings.subscribers_dir, email)[1]


def send_batch(settings: Settings, day: date, only: list[str] | None = None):
    """Fetch the workspace's listings, then one batch for `day` (all subscribers, or `only`)."""
    with Store(settings.db_path) as store:
        fetch_dates(store, build_source("snapshot", settings), [day - timedelta(days=1), day])
        people, _ = load_all(settings.subscribers_dir)
        people = [p for p in people if only is None or p.email in only]
        corpus = Corpus.load(store, settings, day)
        return run_batch(people, store=store, corpus=corpus, renderer=renderer_for(settings), settings=settings)


# -- refusals while sending (the real server answers 5xx) -------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_no_such_user_is_suppressed_after_one_refusal_and_set_active_undoes_it(workspace):
    server = workspace.server
    server.reject_recipient("ada@example.org", 550, "5.1.1 <ada@example.org>: Recipient address rejected")
    result = daily_digest(digest_date=workspace.day)

    assert "ada@example.org" in result["failed"]
    settings = Settings()
    ada = subscriber(settings, "ada@example.org")
    assert ada.active is False and ada.suppressed is not None
    assert ada.suppressed.date.isoformat() and "5.1.1" in ada.suppressed.reason
    assert "does not exist" in ada.suppressed.reason
    assert all(subscriber(settings, e).active for e in ("grace@example.org", "alan@example.org"))
    text = (workspace.subscribers_dir / "ada.yaml").read_text()
    assert text.startswith("# Ada follows model-based RL\n")  # the file kept its comment
    assert re.search(r"^active: false\nsuppressed:\n  date: \d{4}-\d\d-\d\d\n  reason: ", text, re.M)
    with Store(settings.db_path) as store:
        (row,) = store.bounce_rows("ada@example.org")
        assert (row["kind"], row["source"], row["code"], row["status"], row["bad_address"]) == \
            ("hard", "smtp", 550, "5.1.1", 1)
        assert [s["subscriber"] for s in store.suppressions()] == ["ada@example.org"]

    listed = CliRunner().invoke(app, ["subscribers", "list"])
    line = next(line for line in listed.output.splitlines() if line.startswith("ada@"))
    assert "no: suppressed" in line and str(ada.suppressed.date) in line

    # the next day ada gets nothing; set active again, the same day's rerun mails her
    server.received.clear()
    quiet = daily_digest(digest_date=workspace.day + timedelta(days=1))
    assert "ada@example.org" not in server.recipients() and quiet["not_due"] == 1

    resumed = CliRunner().invoke(app, ["subscribers", "set", "ada@example.org", "--active"])
    assert resumed.exit_code == 0, resumed.output
    ada = subscriber(settings, "ada@example.org")
    assert ada.active and ada.suppressed is None
    assert "suppressed" not in (workspace.subscribers_dir / "ada.yaml").read_text()
    server.accept_recipient("ada@example.org")
    server.received.clear()
    daily_digest(digest_date=workspace.day + timedelta(days=1))
    assert server.recipients() == ["ada@example.org"]


def test_other_hard_bounces_suppress_at_the_limit_one_per_digest(workspace):
    server, settings = workspace.server, Settings()
    days = [workspace.day + timedelta(days=n) for n in range(3)]
    for number, day in enumerate(days, 1):
        # a 5.7.1 about the recipient (Exchange: they take no mail from outside); one about the
        # sender ("rejected by policy", DMARC, a blocklist) is never counted: tests/test_sender_refusals.py
        server.fail_next(554, stage="DATA", text="5.7.1 Delivery not authorized, message refused")
        report = send_batch(settings, day, only=["grace@example.org"])
        assert list(report.failed) == ["grace@example.org"]
        with Store(settings.db_path) as store:
            (count,) = store.bounce_counts()
            assert (count.hard, count.bad_address) == (number, 0)
            if number == 2:  # a lower limit would have acted already
                assert bounces.apply_suppressions(store, settings.model_copy(update={"bounce_limit": 2}),
                                                  today=day) != []
                set_active(settings.subscribers_dir, "grace@example.org", True)
                store.db.execute("DELETE FROM suppressions")
            done = bounces.apply_suppressions(store, settings, today=day)
        assert (done != []) == (number == 3)
    grace = subscriber(settings, "grace@example.org")
    assert not grace.active and grace.suppressed.reason.startswith("3 hard bounces; last: DATA: 554 5.7.1")


def test_a_refused_sender_or_a_4xx_is_no_bounce(workspace):
    server, settings = workspace.server, Settings(smtp_retries=1)
    server.fail_next(553, stage="MAIL", text="5.1.8 sender address rejected")
    server.fail_next(451, times=2, stage="RCPT", text="4.2.2 mailbox full")
    report = send_batch(settings, workspace.day, only=["grace@example.org", "alan@example.org"])

    assert len(report.failed) == 1 and len(report.deferred) == 1
    with Store(settings.db_path) as store:
        assert store.bounce_rows() == []
        assert bounces.apply_suppressions(store, settings) == []


def test_reactivated_subscriber_starts_from_zero(workspace):
    server, settings = workspace.server, Settings()
    for offset in (0, 1, 2):
        server.fail_next(554, stage="DATA", text="5.7.1 rejected")
        send_batch(settings, workspace.day + timedelta(days=offset), only=["alan@example.org"])
    with Store(settings.db_path) as store:
        assert len(bounces.apply_suppressions(store, settings)) == 1
        update(settings.subscribers_dir, "alan@example.org", active=True)
        assert store.bounce_counts() == []
        store.record_bounce(Bounce("dsn:<later@x>:alan@example.org", "alan@example.org",
                                   workspace.day + timedelta(days=3), "hard", False, 554, "5.7.1", "dsn", "later"))
        assert store.bounce_counts()[0].hard == 1  # the three before the suppression no longer count
        assert bounces.apply_suppressions(store, settings) == []
    assert subscriber(settings, "alan@example.org").active


# -- late bounces: VERP and DSNs in a Maildir ------------------------------------------------------------


@pytest.fixture
def verp_settings(workspace, monkeypatch) -> Settings:
    monkeypatch.setenv("PAPERBOY_BOUNCE_ADDRESS", "bounces@example.org")
    return Settings()


def test_each_digest_goes_out_with_its_own_verp_return_path(workspace, verp_settings):
    send_batch(verp_settings, workspace.day)

    senders = {r.rcpt_tos[0]: r.mail_from for r in workspace.server.received}
    assert len(senders) == 3 and len(set(senders.values())) == 3
    for rcpt, sender in senders.items():
        assert re.fullmatch(r"bounces\+20250613\.[a-z2-7]{16}@example\.org", sender)
        assert sender == return_path(verp_settings, secret_key(verp_settings), rcpt, workspace.day)
        assert rcpt.split("@")[0] not in sender  # the token does not carry the address


def test_late_bounces_are_read_mapped_and_counted_once(workspace, verp_settings, tmp_path):
    send_batch(verp_settings, workspace.day)
    verp = {r.rcpt_tos[0]: r.mail_from for r in workspace.server.received}
    ids = {e: message_id_for(e, workspace.day) for e in verp}
    box = make_maildir(tmp_path / "bounces")
    forged = re.sub(r"\.[a-z2-7]{16}@", ".aaaaaaaaaaaaaaaa@", verp["alan@example.org"])
    gmail = dsn("gmail", verp=verp["grace@example.org"], rcpt="grace@example.org")
    messages = [
        dsn("postfix", verp=verp["ada@example.org"], rcpt="ada@example.org", message_id=ids["ada@example.org"]),
        gmail,
        gmail.replace(b"0001.GMR@mx.google.com", b"0002.GMR@mx.google.com"),  # another report, same digest
        dsn("delayed", verp=verp["alan@example.org"], rcpt="alan@example.org"),
        dsn("exchange", verp=forged, rcpt="alan@example.org"),
        dsn("autoreply", verp=verp["alan@example.org"], rcpt="alan@example.org"),
        b"\x00\xff\xfe not a message at all \r\n\r\n\x80",
    ]
    paths = [drop(box, raw) for raw in messages]

    first = CliRunner().invoke(app, ["bounces", "--maildir", str(box)])
    assert first.exit_code == 0, first.output
    assert ("read 7 message(s): 3 new hard bounce(s), 1 soft, 0 already counted, 2 not a bounce, "
            "1 unmatched; suppressed 1") in first.output
    assert "suppressed ada@example.org: hard bounce, the address does not exist" in first.output
    assert "unmatched" in first.stderr and "token matches no digest" in first.stderr
    settings = verp_settings
    assert not subscriber(settings, "ada@example.org").active
    assert subscriber(settings, "grace@example.org").active  # one digest bounced, twice: counts once
    assert subscriber(settings, "alan@example.org").active
    with Store(settings.db_path) as store:
        counts = {c.subscriber: (c.hard, c.bad_address) for c in store.bounce_counts()}
        assert counts == {"grace@example.org": (1, 0)}  # ada's count starts over after her suppression
        assert [(r["kind"], r["status"], r["source"]) for r in store.bounce_rows("ada@example.org")] == \
            [("hard", "5.1.1", "dsn")]
        soft = [r for r in store.bounce_rows("alan@example.org")]
        assert [(r["kind"], r["status"]) for r in soft] == [("soft", "4.2.2")]
    # every message read is marked seen, as a mail reader would
    assert not any(p.exists() for p in paths)
    assert len(list((box / "cur").glob("*:2,S"))) == 7

    again = CliRunner().invoke(app, ["bounces", "--maildir", str(box)])
    assert "read 0 message(s)" in again.output
    everything = CliRunner().invoke(app, ["bounces", "--maildir", str(box), "--all"])
    assert ("read 7 message(s): 0 new hard bounce(s), 0 soft, 4 already counted, 2 not a bounce, "
            "1 unmatched; suppressed 0") in everything.output
    with Store(settings.db_path) as store:
        assert len(store.bounce_rows()) == 4


def test_a_late_bounce_of_a_digest_refused_while_sending_counts_once(workspace, verp_settings, tmp_path):
    workspace.server.reject_recipient("grace@example.org", 554, "5.7.1 blocked")
    send_batch(verp_settings, workspace.day)
    key = secret_key(verp_settings)
    box = make_maildir(tmp_path / "bounces")
    drop(box, dsn("gmail", verp=return_path(verp_settings, key, "grace@example.org", workspace.day),
                  rcpt="grace@example.org"))
    with Store(verp_settings.db_path) as store:
        run = bounces.process_maildir(box, store, verp_settings, key)
        assert run.hard == 1
        (count,) = store.bounce_counts()
        assert (count.subscriber, count.hard) == ("grace@example.org", 1)
        assert {r["source"] for r in store.bounce_rows()} == {"smtp", "dsn"}


def test_bounces_command_says_what_is_missing(workspace, tmp_path, monkeypatch):
    runner = CliRunner()
    no_dir = runner.invoke(app, ["bounces"])
    assert no_dir.exit_code == 2 and "--maildir" in no_dir.output
    no_verp = runner.invoke(app, ["bounces", "--maildir", str(tmp_path)])
    assert no_verp.exit_code == 2 and "PAPERBOY_BOUNCE_ADDRESS is not set" in no_verp.output
    monkeypatch.setenv("PAPERBOY_BOUNCE_ADDRESS", "bounces@example.org")
    not_maildir = runner.invoke(app, ["bounces", "--maildir", str(tmp_path)])
    assert not_maildir.exit_code == 2 and f"{tmp_path} is not a Maildir" in not_maildir.output


# -- the parser, on real formats and hostile input ------------------------------------------------------


@pytest.mark.parametrize(("name", "shape", "action", "status", "code", "hard", "bad"), [
    ("postfix", "rfc3464", "failed", "5.1.1", 550, True, True),
    ("exchange", "rfc3464", "failed", "5.1.10", 550, True, True),
    ("gmail", "rfc3464", "failed", "5.2.2", 552, True, False),
    ("delayed", "rfc3464", "delayed", "4.2.2", 452, False, False),
    ("qmail", "flufl", "failed", "5.1.1", 550, True, True),
])
def test_reports_in_real_formats(name, shape, action, status, code, hard, bad):
    verp = "bounces+20250613.abcdefghijklmnop@example.org"
    report = bounces.read_report(dsn(name, verp=verp, rcpt="ada@example.org"))

    assert report.shape == shape
    (failure,) = report.failures
    assert (failure.recipient, failure.action, failure.status, failure.code) == ("ada@example.org", action, status, code)
    assert failure.hard is hard and bounces.bad_address(failure.status) is bad
    assert find_token(report.addresses, "bounces@example.org").mac == "abcdefghijklmnop"
    assert report.id.startswith("<") and report.id.endswith(">")


def test_token_found_in_the_returned_headers_when_the_envelope_is_lost():
    raw = dsn("postfix", verp="bounces+20250613.abcdefghijklmnop@example.org", rcpt="ada@example.org")
    raw = re.sub(rb"(?m)^(Delivered-To|To): .*\r\n", b"", raw, count=2)
    report = bounces.read_report(raw)
    assert report.addresses == ["bounces+20250613.abcdefghijklmnop@example.org"]  # the Return-Path


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00" * 1000,
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: x400; C=US\r\nAction: failed\r\n",  # cut off
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
    b"Final-Recipient: rfc822; <>\r\nAction: failed\r\nStatus: 9.9.9\r\n",
    b"Subject: =?utf-8?b?!!!?=\r\nContent-Type: text/plain; charset=klingon\r\n\r\n\xff\xfe permanent error\r\n",
    b"From: MAILER-DAEMON\r\nContent-Type: multipart/mixed; boundary=\"" + b"a" * 5000 + b"\"\r\n\r\n",
])
def test_hostile_messages_are_skipped_never_fatal(raw):
    report = bounces.read_report(raw)
    assert all(f.recipient for f in report.failures)
    assert not any(f.hard for f in report.failures)


def test_a_report_with_many_recipients_and_a_huge_body():
    blocks = "".join(f"\r\nFinal-Recipient: rfc822; r{i}@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                     for i in range(2000))
    raw = ("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n"
           "Content-Type: text/plain\r\n\r\n" + "x" * 3_000_000 + "\r\n--b\r\n"
           "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; m\r\n" + blocks + "\r\n--b--\r\n").encode()
    report = bounces.read_report(raw)
    assert len(report.failures) == 2000 and report.failures[0].status == "5.1.1"


def test_maildir_messages_are_read_once_and_flags_kept(tmp_path):
    box = make_maildir(tmp_path / "box")
    drop(box, b"Subject: one\r\n\r\nbody\r\n")
    seen = box / "cur" / "old.host:2,RS"
    seen.write_bytes(b"Subject: read before\r\n\r\n")
    unseen = box / "cur" / "flagged.host:2,F"
    unseen.write_bytes(b"Subject: flagged, unread\r\n\r\n")
    names = sorted(path.name for path, _ in bounces.maildir_messages(box))
    assert len(names) == 2 and "flagged.host:2,F" in names
    for path, _ in list(bounces.maildir_messages(box)):
        bounces.mark_seen(path)
    names = {p.name for p in (box / "cur").iterdir()}
    assert {"flagged.host:2,FS", "old.host:2,RS"} <= names and len(names) == 3
    assert list(bounces.maildir_messages(box)) == []
    assert len(list(bounces.maildir_messages(box, include_seen=True))) == 3


# -- VERP tokens and settings ------------------------------------------------------------------------


def test_tokens_are_keyed_and_map_back_through_the_ledger(tmp_path):
    settings = Settings(bounce_address="bounces@example.org", db_path=tmp_path / "p.db")
    day = date(2025, 6, 13)
    path = return_path(settings, KEY, "Ada@Example.org", day)
    assert path == return_path(settings, KEY, "ada@example.org", day)  # addresses compare caseless
    assert path != return_path(settings, KEY + "x", "ada@example.org", day)
    assert path != return_path(settings, KEY, "ada@example.org", day + timedelta(days=1))
    token = find_token(["someone@else.org", path.upper()], "bounces@example.org")
    assert token is not None and token.digest_date == day
    tokens = TokenMap(KEY, lambda d: ["grace@example.org", "ada@example.org"] if d == day else [])
    assert tokens.subscriber(token) == "ada@example.org"
    assert TokenMap("another-key-0123456789-abcdefghijkl", lambda d: ["ada@example.org"]).subscriber(token) is None
    assert find_token(["bounces+20251399.abcdefghijklmnop@example.org"], "bounces@example.org") is None
    assert find_token(["bounces+20250613.abcdefghijklmnop@evil.example"], "bounces@example.org") is None
    assert len(mac(KEY, "ada@example.org", day)) == 16
    assert return_path(Settings(), KEY, "ada@example.org", day) == ""  # VERP off


@pytest.mark.parametrize("value", ["bounces+x@example.org", "bounces", "bö@example.org", "a@localhost",
                                   "<bounces@example.org>"])
def test_bounce_address_must_be_a_plain_address(value):
    with pytest.raises(ValueError, match="plain ASCII address"):
        Settings(bounce_address=value)


# -- the subscriber file -------------------------------------------------------------------------------


def test_suppressed_field_in_the_subscriber_file(tmp_path):
    directory = tmp_path / "subs"
    directory.mkdir()
    (directory / "ada.yaml").write_text(
        "email: ada@example.org\nactive: false\nsuppressed:\n  date: 2026-12-03\n  reason: hard bounce\n"
        "keywords: [diffusion]\n", encoding="utf-8")
    ada = find(directory, "ada@example.org")[1]
    assert ada.suppressed.date == date(2026, 12, 3) and ada.suppressed.reason == "hard bounce"
    set_active(directory, "ada@example.org", True)
    assert (directory / "ada.yaml").read_text() == "email: ada@example.org\nactive: true\nkeywords: [diffusion]\n"

    (directory / "ada.yaml").write_text("email: ada@example.org\nsuppressed: yesterday\nkeywords: [x]\n")
    with pytest.raises(SubscriberError, match="field 'suppressed'"):
        find(directory, "ada@example.org")


# -- the bounce mailbox over IMAP (a real IMAP server on loopback, imaplib as in production) --------


IMAP_PASSWORD = "imap-password-0123456789"


def imap_settings(workspace, monkeypatch, server, scheme: str = "imap") -> Settings:
    monkeypatch.setenv("PAPERBOY_BOUNCE_ADDRESS", "bounces@example.org")
    monkeypatch.setenv("PAPERBOY_BOUNCE_IMAP_URL", f"{scheme}://bounces@127.0.0.1:{server.port}/INBOX")
    monkeypatch.setenv("PAPERBOY_BOUNCE_IMAP_PASSWORD", IMAP_PASSWORD)
    return Settings()


def fill(server, settings: Settings, day: date) -> None:
    key = secret_key(settings)
    server.add(dsn("postfix", verp=return_path(settings, key, "ada@example.org", day), rcpt="ada@example.org"))
    server.add(dsn("delayed", verp=return_path(settings, key, "alan@example.org", day), rcpt="alan@example.org"))
    server.add(dsn("autoreply", verp=return_path(settings, key, "grace@example.org", day), rcpt="grace@example.org"))


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
def test_bounces_read_over_imap_with_tls(workspace, monkeypatch, imap_server_factory, tls_cert, scheme):
    server = imap_server_factory(context=tls_cert.server_context(), tls="tls" if scheme == "imaps" else None)
    settings = imap_settings(workspace, monkeypatch, server, scheme)
    send_batch(settings, workspace.day)
    fill(server, settings, workspace.day)

    with Store(settings.db_path) as store:
        run = bounces.process_imap(settings, store, secret_key(settings), tls_context=tls_cert.client_context())
        assert (run.messages, run.hard, run.soft, run.not_bounces) == (3, 1, 1, 1)
        assert [s.subscriber for s in run.suppressed] == ["ada@example.org"]
        assert all("\\Seen" in m.flags for m in server.messages)
        if scheme == "imap":  # the password went only after STARTTLS
            verbs = [c.split()[1].upper() for c in server.commands]
            assert verbs.index("STARTTLS") < verbs.index("LOGIN")
        assert not any(IMAP_PASSWORD in c for c in server.commands)
        again = bounces.process_imap(settings, store, secret_key(settings), tls_context=tls_cert.client_context())
        assert again.messages == 0
        everything = bounces.process_imap(settings, store, secret_key(settings), include_seen=True,
                                          tls_context=tls_cert.client_context())
        assert (everything.messages, everything.hard, everything.repeated) == (3, 0, 2)
    assert not subscriber(settings, "ada@example.org").active


def test_bounces_command_over_imap(workspace, monkeypatch, imap_server_factory):
    server = imap_server_factory()  # plain IMAP: allowed to this machine only
    settings = imap_settings(workspace, monkeypatch, server)
    send_batch(settings, workspace.day)
    fill(server, settings, workspace.day)

    result = CliRunner().invoke(app, ["bounces", "--imap"])
    assert result.exit_code == 0, result.output
    assert "read 3 message(s): 1 new hard bounce(s), 1 soft" in result.output
    assert "suppressed ada@example.org" in result.output
    both = CliRunner().invoke(app, ["bounces", "--imap", "--maildir", "x"])
    assert both.exit_code == 2 and "one of them" in both.output


def test_imap_errors_name_the_server_and_the_fix(workspace, monkeypatch, imap_server_factory, tls_cert):
    server = imap_server_factory(password="another-password-0123456789")
    settings = imap_settings(workspace, monkeypatch, server)
    refused = CliRunner().invoke(app, ["bounces", "--imap"])
    assert refused.exit_code == 2
    assert f"IMAP 127.0.0.1:{server.port} (STARTTLS) as bounces, folder INBOX: login refused" in refused.output
    assert IMAP_PASSWORD not in refused.output

    with Store(settings.db_path) as store:
        monkeypatch.setattr(bounces, "LOCAL_HOSTS", set())  # as if the server were elsewhere
        with pytest.raises(bounces.BounceError, match="offers no STARTTLS"):
            bounces.process_imap(settings, store, KEY)
        monkeypatch.undo()
        tls_server = imap_server_factory(context=tls_cert.server_context(), tls="tls")
        untrusted = settings.model_copy(update={"bounce_imap_url": f"imaps://bounces@127.0.0.1:{tls_server.port}/"})
        with pytest.raises(bounces.BounceError, match="cannot connect.*CERTIFICATE_VERIFY_FAILED"):
            bounces.process_imap(untrusted, store, KEY)
        folder = settings.model_copy(update={"bounce_imap_url": f"imap://bounces@127.0.0.1:{server.port}/Bounces",
                                             "bounce_imap_password": settings.bounce_imap_password})
        server.password = IMAP_PASSWORD
        with pytest.raises(bounces.BounceError, match="cannot open the folder"):
            bounces.process_imap(folder, store, KEY)


@pytest.mark.parametrize(("value", "message"), [
    ("imaps://bounces:secret@imap.example.org/INBOX", "keep the password out of the URL"),
    ("https://imap.example.org", "imaps://USER@HOST"),
    ("imaps://imap.example.org/INBOX", "imaps://USER@HOST"),
    ("imaps://bounces@imap.example.org:99999/", "not a URL"),
])
def test_imap_url_is_checked(value, message):
    with pytest.raises(ValueError, match=message):
        Settings(bounce_imap_url=value)
