"""A refusal about the sender (DMARC, SPF, DKIM, a blocklisted relay) is no reason to stop mailing
the subscriber it happened to hit.

Before: every 5.x.x refusal but 5.3.4/5.2.3 counted as a hard bounce. A receiving provider that
refuses *our* mail ("550 5.7.26 ... the sender is unauthenticated" at Gmail, "554 5.7.1 ... blocked
using zen.spamhaus.org", Microsoft's "550 5.7.606 ... banned sending IP") refuses every subscriber
it hosts at once, so after PAPERBOY_BOUNCE_LIMIT (3) mornings all of them were suppressed
(active: false written into their files), although nothing is wrong with their addresses; and the
run went on refusing through the whole list. Now such refusals are recorded as kind "sender" and
never counted, the run's summary says what to check, a provider that keeps refusing us is not
tried again in that batch, and a relay that refuses everything of ours trips the breaker.

Real components: the aiosmtpd server on loopback refusing whole domains at RCPT or DATA, the real
ledger, DSNs in real formats read by `paperboy bounces --maildir`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import zip_longest

import pytest
from typer.testing import CliRunner

from flows import bounces
from flows.cli import app
from flows.deliver import RelayError, deliver
from flows.fetch import FetchReport
from flows.links import secret_key
from flows.models import Outcome
from flows.report import RunSummary
from flows.settings import Settings
from flows.store import Bounce, Store
from flows.verp import return_path
from tests.support.smtp import settings_for
from tests.test_bounces import DSN_DIR, daily_digest, drop, make_maildir, send_batch, subscriber
from tests.test_delivery_faults import items_for

GMAIL_UNAUTHENTICATED = ("5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
                         "requires all senders to authenticate with either SPF or DKIM.")
GMAIL_DMARC = ("5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. "
               "Please contact the administrator of example.org domain if this was a legitimate mail.")
SPAMHAUS = ("5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
            "https://www.spamhaus.org/query/ip/192.0.2.10")
MICROSOFT_BANNED_IP = ("5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this "
                       "list please visit https://sender.office.com/ and follow the directions.")
MICROSOFT_BLOCK_LIST = ("5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your "
                        "Internet service provider since part of their network is on our block list (S3150).")
POLICYD_SPF = "5.7.23 <{rcpt}>: Recipient address rejected: Message rejected due to: SPF fail - not authorized."
NO_PTR = ("5.7.25 [192.0.2.10] The IP address sending this message does not have a PTR record setup, or the "
          "corresponding forward DNS entry does not point to the sending IP.")
ACCESS_DENIED = "5.7.1 <{rcpt}>: Recipient address rejected: Access denied"  # the recipient's: stays hard

KEYWORDS = "keywords: [reward model, reward modeling]\n"
PROVIDER_PEOPLE = ["li@gmail.com", "mo@gmail.com", "noor@outlook.com", "oda@outlook.com"]


def add_subscribers(workspace, emails: list[str]) -> None:
    for email in emails:
        name = email.replace("@", "_at_").replace(".", "_")
        (workspace.subscribers_dir / f"{name}.yaml").write_text(f"email: {email}\n{KEYWORDS}", encoding="utf-8")


@pytest.mark.parametrize(("domain", "code", "text", "stage"), [
    ("gmail.com", 550, GMAIL_UNAUTHENTICATED, "RCPT"),
    ("gmail.com", 550, GMAIL_DMARC, "DATA"),
    ("outlook.com", 554, SPAMHAUS, "RCPT"),
    ("outlook.com", 550, MICROSOFT_BANNED_IP, "RCPT"),
    ("outlook.com", 550, MICROSOFT_BLOCK_LIST, "DATA"),
    ("gmail.com", 550, NO_PTR, "RCPT"),
], ids=["gmail-unauthenticated-rcpt", "gmail-dmarc-data", "spamhaus-rcpt", "microsoft-banned-ip",
        "microsoft-block-list-data", "no-ptr"])
def test_three_mornings_of_sender_refusals_suppress_nobody(workspace, domain, code, text, stage):
    """A provider refusing us for three mornings: its subscribers stay active, each digest is
    recorded failed with the reply; an address refusal in the same runs still suppresses."""
    server, settings = workspace.server, Settings()
    add_subscribers(workspace, PROVIDER_PEOPLE)
    server.refuse_domain(domain, code, text, stage=stage)
    server.reject_recipient("alan@example.org", 550, ACCESS_DENIED.format(rcpt="alan@example.org"))
    hit = [e for e in PROVIDER_PEOPLE if e.endswith("@" + domain)]
    for offset in range(3):
        report = send_batch(settings, workspace.day + timedelta(days=offset))
        assert sorted(report.failed) == sorted([*hit, "alan@example.org"])
        for email in hit:  # failed, not lost: the reply is with the digest
            assert report.failed[email] == f"{code} {text}"
        if offset == 0:
            assert report.sent == 4  # ada, grace and the other provider's two (later mornings: nothing new for them)
    with Store(settings.db_path) as store:
        suppressed = bounces.apply_suppressions(store, settings)
        kinds = {(r["subscriber"], r["kind"]) for r in store.bounce_rows()}
    assert [s.subscriber for s in suppressed] == ["alan@example.org"]  # 3 hard bounces of his address
    assert kinds == {*((e, "sender") for e in hit), ("alan@example.org", "hard")}
    for email in hit:
        assert subscriber(settings, email).active, f"{email} was suppressed for a refusal of the sender"
    assert "suppressed" not in "".join(p.read_text() for p in workspace.subscribers_dir.glob("*_com.yaml"))


def test_a_policy_service_saying_recipient_rejected_for_spf_is_the_senders(workspace):
    """Postfix with policyd-spf answers at RCPT with "Recipient address rejected: ... SPF fail":
    the status (5.7.23, RFC 7372) and the words say it is about us."""
    server, settings = workspace.server, Settings()
    server.reject_recipient("grace@example.org", 550, POLICYD_SPF.format(rcpt="grace@example.org"))
    for offset in range(3):
        send_batch(settings, workspace.day + timedelta(days=offset), only=["grace@example.org"])
    with Store(settings.db_path) as store:
        assert [r["kind"] for r in store.bounce_rows()] == ["sender"] * 3
        assert bounces.apply_suppressions(store, settings) == []


# -- late bounces: DSNs saying the receiver refused the sender ------------------------------------------


def policy_dsn(template: str, *, verp: str, rcpt: str, status: str, reply: str, report_id: str) -> bytes:
    """A real DSN (Postfix's or Gmail's shape) whose Status and Diagnostic-Code are these."""
    text = (DSN_DIR / f"{template}.eml").read_text(encoding="utf-8")
    text = text.replace("{verp}", verp).replace("{rcpt}", rcpt).replace("{message_id}", f"<{report_id}@x>")
    text = re.sub(r"(?m)^Status: .*$", f"Status: {status}", text)
    text = re.sub(r"(?m)^Diagnostic-Code: .*(\n[ \t]+.*)*", f"Diagnostic-Code: smtp; {reply}", text)
    text = re.sub(r"(?m)^(Message-I[Dd]): .*$", rf"\1: <{report_id}@reporting.example>", text, count=1)
    return text.replace("\n", "\r\n").encode("utf-8")


def test_dsns_saying_the_sender_was_refused_are_read_as_such_and_suppress_nobody(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBOY_BOUNCE_ADDRESS", "bounces@example.org")
    settings = Settings()
    key = secret_key(settings)
    days = [workspace.day + timedelta(days=n) for n in range(3)]
    for day in days:
        send_batch(settings, day)
    box = make_maildir(tmp_path / "bounces")
    late = {  # who, in which shape, with which reply: the relay took them, the provider refused later
        "ada@example.org": ("gmail", "5.7.26", f"550-{GMAIL_DMARC}"),
        "grace@example.org": ("postfix", "5.7.1", f"554 {SPAMHAUS}"),
        "alan@example.org": ("postfix", "5.7.1", "550 " + ACCESS_DENIED.format(rcpt="alan@example.org")),
    }
    for day in days:
        for email, (shape, status, reply) in late.items():
            drop(box, policy_dsn(shape, verp=return_path(settings, key, email, day), rcpt=email, status=status,
                                 reply=reply, report_id=f"{email}-{day}"))

    result = CliRunner().invoke(app, ["bounces", "--maildir", str(box)])
    assert result.exit_code == 0, result.output
    assert "read 9 message(s): 3 new hard bounce(s), 0 soft" in result.output
    assert "6 refused as a sender problem" in result.output  # said apart from the address bounces
    assert "check SPF, DKIM and DMARC for example.org" in result.output
    assert "suppressed 1" in result.output and "suppressed alan@example.org: 3 hard bounces" in result.output
    assert subscriber(settings, "ada@example.org").active and subscriber(settings, "grace@example.org").active
    with Store(settings.db_path) as store:
        kinds = {(r["subscriber"], r["kind"], r["status"]) for r in store.bounce_rows()}
    assert kinds == {("ada@example.org", "sender", "5.7.26"), ("grace@example.org", "sender", "5.7.1"),
                     ("alan@example.org", "hard", "5.7.1")}

    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert "Address bounces in the last 7 days: 3 hard (1 subscriber), 0 soft" in status.output
    assert ("Refused as a sender problem in the last 7 days (not counted towards suppression): "
            "6 digests at 1 domain") in status.output
    assert "  554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org" in status.output
    assert "  550-5.7.26 Unauthenticated email from example.org" in status.output


# -- a provider (or the relay) refusing us again and again: stop trying it for this run -----------------


async def test_a_provider_that_keeps_refusing_us_is_held_back_for_the_rest_of_the_batch(smtp_server, tmp_path):
    """gmail.com refuses every digest as a sender problem: after five in a row it is not tried
    again in this batch. hotmail.com refuses some subscribers (the same words) but takes the
    others' digests: it stays in play, each refusal is that digest's."""
    gmail = [f"reader{i:02d}@gmail.com" for i in range(30)]
    others = [f"reader{i:02d}@example.org" for i in range(10)]
    hotmail = [f"reader{i:02d}@hotmail.com" for i in range(12)]
    smtp_server.refuse_domain("gmail.com", 550, GMAIL_UNAUTHENTICATED)
    unwanted = hotmail[::2]  # every other one: accepted mail in between keeps the provider in play
    for address in unwanted:
        smtp_server.reject_recipient(address, 550, "5.7.1 Message rejected as spam by Content Filtering.")
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1)
    outcomes: list[Outcome] = []
    order = [a for group in zip_longest(gmail, others, hotmail) for a in group if a]  # taken in turn
    await deliver(items_for(order), settings, outcomes.append)

    tried = [rcpt for _, rcpt in smtp_server.refusals]
    assert len(tried) == 5, f"gmail.com was tried {len(tried)} times after refusing us as a sender"
    by = {o.subscriber: o for o in outcomes}
    assert len(by) == 52 and all(by[a].status == "sent" for a in others)
    refused = [a for a in gmail if by[a].permanent]
    held = [a for a in gmail if not by[a].permanent]
    assert sorted(refused) == sorted(tried) and len(held) == 25
    assert all(by[a].error == f"550 {GMAIL_UNAUTHENTICATED}" for a in refused)
    for address in held:  # deferred: never tried, a rerun tries them again
        assert by[address].status == "failed" and not by[address].permanent
        assert by[address].error.startswith("held back: gmail.com refused 5 digests in a row as a sender problem")
        assert "550 5.7.26" in by[address].error
    assert [by[a].status for a in hotmail] == ["failed", "sent"] * 6
    assert all(by[a].permanent for a in unwanted)  # every one tried: 6 refusals, never 5 in a row


@pytest.mark.parametrize(("stage", "code", "text"), [
    ("MAIL", 553, "5.7.1 <paperboy@example.org>: Sender address rejected: not owned by user paperboy"),
    ("DATA", 554, SPAMHAUS),
])
async def test_a_relay_refusing_all_our_mail_as_a_sender_problem_trips_the_breaker_marking_nothing(
        smtp_server, tmp_path, stage, code, text):
    smtp_server.fail_next(code, times=100, stage=stage, text=text)
    addresses = [f"reader{i:02d}@{domain}" for i in range(8) for domain in ("a.example", "b.example", "c.example")]
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1)
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError) as raised:
        await deliver(items_for(addresses), settings, outcomes.append)
    message = str(raised.value)
    assert "10 digests in a row were refused as a sender problem and none was accepted" in message
    assert f"{code} {text}" in message and "nobody was suppressed" in message
    assert outcomes == []  # nothing marked failed: once fixed, the rerun sends every one


# -- what the run and `paperboy status` say --------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_the_run_summary_says_in_one_line_what_happened_and_what_to_check(workspace):
    add_subscribers(workspace, PROVIDER_PEOPLE)
    workspace.server.refuse_domain("gmail.com", 550, GMAIL_UNAUTHENTICATED)
    result = daily_digest(digest_date=workspace.day)

    assert sorted(result["failed"]) == ["li@gmail.com", "mo@gmail.com"]
    line = result["line"]
    assert "\n" not in line
    assert ("2 digests refused by the receiving servers as a sender problem (550 5.7.26 This mail has been "
            "blocked because the sender is unauthenticated.") in line
    assert "check SPF, DKIM and DMARC for example.org" in line and "nobody was suppressed" in line
    assert all(subscriber(Settings(), e).active for e in PROVIDER_PEOPLE)


@pytest.mark.usefixtures("prefect_harness")
def test_a_provider_held_back_stays_held_in_the_runs_later_batches(workspace, monkeypatch):
    """Batches of 4: gmail.com refuses every digest of ours. Each batch counted its own
    refusals, so a provider was held back only within one batch: with batches smaller than
    the limit (5) it was never held, and with the default 500 each batch of a 10,000-person
    list probed it 5 times more. Now the run keeps the count and the hold across batches."""
    gmail = [f"g{i:02d}@gmail.com" for i in range(12)]
    others = [f"z{i}@example.org" for i in range(3)]
    add_subscribers(workspace, gmail + others)
    monkeypatch.setenv("PAPERBOY_BATCH_SIZE", "4")
    monkeypatch.setenv("PAPERBOY_SMTP_CONNECTIONS", "1")
    workspace.server.refuse_domain("gmail.com", 550, GMAIL_UNAUTHENTICATED)
    result = daily_digest(digest_date=workspace.day)

    tried = [rcpt for _, rcpt in workspace.server.refusals]
    assert len(tried) == 5, f"gmail.com was tried {len(tried)} times in one run after refusing us"
    assert sorted(result["failed"]) == sorted(tried)
    assert sorted(result["deferred"]) == sorted(set(gmail) - set(tried))
    assert all(why.startswith("held back: gmail.com refused 5 digests in a row") for why in result["deferred"].values())
    assert not set(others) & (set(result["failed"]) | set(result["deferred"]))
    assert result["sent"] >= len(others)  # and the workspace's own subscribers


def test_status_shows_sender_refusals_apart_from_address_bounces(workspace):
    server, settings = workspace.server, Settings()
    add_subscribers(workspace, PROVIDER_PEOPLE)
    server.refuse_domain("gmail.com", 550, GMAIL_UNAUTHENTICATED)
    server.reject_recipient("alan@example.org", 550, "5.1.1 <alan@example.org>: User unknown")
    send_batch(settings, workspace.day)  # recorded now: "the last 7 days" are those of recording

    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Address bounces in the last 7 days: 1 hard (1 subscriber)" in out
    assert ("Refused as a sender problem in the last 7 days (not counted towards suppression): "
            "2 digests at 1 domain") in out
    assert f"550 5.7.26 This mail has been blocked because the sender is unauthenticated" in out
    assert "gmail.com" in out and "check SPF, DKIM and DMARC for example.org" in out


def test_the_summary_line_counts_the_held_back_digests_too(workspace):
    """Seven subscribers at a provider that refuses us: five refused, two held back (deferred)."""
    people = [f"reader{i}@gmail.com" for i in range(7)]
    add_subscribers(workspace, people)
    workspace.server.refuse_domain("gmail.com", 550, GMAIL_DMARC, stage="DATA")
    settings = Settings(smtp_connections=1)
    report = send_batch(settings, workspace.day)
    line = RunSummary(digest_date=workspace.day, dry_run=False, fetch=FetchReport(), batch=report,
                      sender_domains="example.org").line()

    assert len([e for e in people if e in report.failed]) == 5 and len(report.deferred) == 2
    assert ("failed 5; 5 digests refused by the receiving servers as a sender problem (550 5.7.26 "
            "Unauthenticated email from example.org is not accepted due to domain's DMARC policy.") in line
    assert (", 2 more held back untried at gmail.com (a rerun tries them): check SPF, DKIM and DMARC for "
            "example.org") in line
    assert "nobody was suppressed for these; deferred 2 (will retry on rerun)" in line
    with Store(settings.db_path) as store:
        statuses = {r["subscriber"]: r["status"] for r in store.digest_rows(workspace.day)}
    assert sorted(statuses[e] for e in people) == ["deferred"] * 2 + ["failed"] * 5


def test_sender_refusals_counted_as_hard_by_an_earlier_version_no_longer_count(workspace):
    """An operator upgrading in the middle of a DMARC incident: the two mornings an earlier
    version recorded as hard bounces must not make the third refusal of anything suppress."""
    settings = Settings()
    with Store(settings.db_path) as store:
        for n, (source, detail) in enumerate([
            ("smtp", f"RCPT: 550 {GMAIL_UNAUTHENTICATED}"),
            ("dsn", f"DSN (rfc3464) for grace@example.org: failed 5.7.1 (smtp; 554 {SPAMHAUS})"),
        ]):
            status = "5.7.26" if source == "smtp" else "5.7.1"
            store.record_bounce(Bounce(f"{source}:old{n}", "grace@example.org", workspace.day + timedelta(days=n),
                                       "hard", False, 550, status, source, detail))
        store.record_bounce(Bounce("dsn:new", "grace@example.org", workspace.day + timedelta(days=2), "hard",
                                   False, 552, "5.2.2", "dsn", "DSN (rfc3464) for grace@example.org: failed 5.2.2"))
        assert bounces.apply_suppressions(store, settings) == []
        assert [r["kind"] for r in store.bounce_rows("grace@example.org")] == ["sender", "sender", "hard"]
    assert subscriber(settings, "grace@example.org").active


def test_status_points_at_a_suppression_that_reads_as_a_sender_problem(workspace):
    with Store(workspace.db_path) as store:
        store.record_bounce(Bounce("smtp:x", "ada@example.org", workspace.day, "hard", False, 554, "5.7.1",
                                   "smtp", "RCPT: 554 5.7.1 rejected"))  # a ledger with something in it
    (workspace.subscribers_dir / "li.yaml").write_text(
        f"email: li@gmail.com\n{KEYWORDS}active: false\n"
        f"suppressed: {{date: 2026-12-01, reason: '3 hard bounces; last: RCPT: 550 {GMAIL_UNAUTHENTICATED}'}}\n",
        encoding="utf-8")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "li@gmail.com: since 2026-12-01: 3 hard bounces; last: RCPT: 550 5.7.26" in result.output
    assert ("(suppressed by an earlier version for what reads as a refusal of the sender: "
            "`paperboy subscribers set li@gmail.com --active` resumes them)") in result.output
