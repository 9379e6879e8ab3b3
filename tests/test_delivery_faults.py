"""Issues 16 and 15 against real components: aiosmtpd on loopback (slow replies, no SMTPUTF8,
a private CA, refusals), a real SQLite ledger, the real pipeline stages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import Parser

import pytest
from pydantic import ValidationError

from flows.corpus import Corpus
from flows.deliver import RELAY_4XX_LIMIT, Outgoing, RelayError, deliver
from flows.models import Outcome, message_id_for
from flows.send import plan_batch
from flows.settings import PROJECT_ROOT, Settings
from flows.stopping import clear_stop, request_stop
from flows.store import Store
from flows.subscribers import load_all
from tests.support.smtp import digest_message, make_private_ca, settings_for
from tests.test_pipeline import batch, ready  # noqa: F401  (ready: a fixture)

DAY = date(2025, 6, 13)


@pytest.fixture(autouse=True)
def no_stop_left_behind():
    clear_stop()
    yield
    clear_stop()


def readers(n: int) -> list[str]:
    return [f"reader{i:03d}@example.org" for i in range(n)]


def items_for(addresses: list[str]):
    return (Outgoing(a, DAY, digest_message(a, DAY), ("2406.00001",), message_id=message_id_for(a, DAY))
            for a in addresses)


async def send(addresses: list[str], settings: Settings, **kwargs) -> list[Outcome]:
    outcomes: list[Outcome] = []
    await deliver(items_for(addresses), settings, outcomes.append, **kwargs)
    return outcomes


# ------------------------------------------------------------------ pipeline fixtures

def statuses(settings: Settings, day: date = DAY) -> dict[str, str]:
    with Store(settings.db_path) as store:
        return {row["subscriber"]: row["status"] for row in store.digest_rows(day)}


ZOE = "email: zoë@example.org\nname: Zoë Müller\nkeywords: [reward model, curriculum learning]\n"


# ------------------------------------------------------------------ issue 16, bug 1: SMTPUTF8

def test_a_non_ascii_subscriber_mid_batch_fails_alone_where_the_server_lacks_smtputf8(ready, workspace):
    (workspace.subscribers_dir / "b-zoe.yaml").write_text(ZOE, encoding="utf-8")  # between ada and grace
    report = batch(ready)

    assert report.sent == 3 and list(report.failed) == ["zoë@example.org"]
    assert "SMTPUTF8" in report.failed["zoë@example.org"]
    assert sorted(workspace.server.recipients()) == ["ada@example.org", "alan@example.org", "grace@example.org"]
    assert statuses(ready) == {"ada@example.org": "sent", "alan@example.org": "sent",
                               "grace@example.org": "sent", "zoë@example.org": "failed"}


def test_a_non_ascii_subscriber_is_sent_where_the_server_offers_smtputf8(ready, workspace, smtp_server_factory):
    (workspace.subscribers_dir / "b-zoe.yaml").write_text(ZOE, encoding="utf-8")
    server = smtp_server_factory(smtputf8=True)
    settings = ready.model_copy(update={"smtp_port": server.port})
    report = batch(settings)

    assert report.sent == 4 and not report.failed
    (zoe,) = [r for r in server.received if r.rcpt_tos == ("zoë@example.org",)]
    message = Parser(policy=policy.default).parsestr(zoe.raw.decode("utf-8"))
    (address,) = message["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Zoë Müller", "zoë@example.org")
    assert message["Message-ID"] == message_id_for("zoë@example.org", DAY, "example.org")


def test_a_message_that_cannot_be_made_is_only_that_subscribers_outcome(ready, workspace):
    templates = workspace.path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    text = templates / "digest.txt.j2"  # fails for alan only (his keyword: curriculum learning)
    text.write_text('{% if "curriculum" in reason %}{{ no_such_value }}{% endif %}' + text.read_text())
    report = batch(ready.model_copy(update={"templates_dir": templates, "smtp_connections": 1}))

    assert report.sent == 2 and list(report.deferred) == ["alan@example.org"]
    assert "cannot be made" in report.deferred["alan@example.org"]
    assert statuses(ready)["alan@example.org"] == "deferred"  # not final: the next run tries again


# ------------------------------------------------------------------ issue 16, bug 2: slow final reply

async def test_a_slow_reply_to_the_final_dot_is_waited_for_not_resent(smtp_server, tmp_path):
    smtp_server.delay_replies(0.6)  # slower than the command timeout, within the DATA timeout
    settings = settings_for(smtp_server, tmp_path, smtp_timeout=0.2, smtp_data_timeout=5, smtp_connections=2)
    outcomes = await send(readers(4), settings)

    assert [o.status for o in outcomes] == ["sent"] * 4 and {o.attempts for o in outcomes} == {1}
    assert Counter(smtp_server.recipients()) == Counter(readers(4))  # each once


async def test_no_reply_to_the_final_dot_is_uncertain_and_never_resent(smtp_server, tmp_path):
    smtp_server.delay_replies(1.0)
    settings = settings_for(smtp_server, tmp_path, smtp_data_timeout=0.3, smtp_connections=1)
    outcomes = await send(readers(3), settings)

    assert [o.status for o in outcomes] == ["uncertain"] * 3
    assert all("PAPERBOY_SMTP_DATA_TIMEOUT" in o.error and o.attempts == 1 for o in outcomes)
    assert Counter(smtp_server.recipients()) == Counter(readers(3))  # the server has each, exactly once


def test_an_uncertain_digest_is_reported_then_resent_with_the_same_message_id(ready, workspace):
    server = workspace.server
    server.delay_replies(0.8)
    settings = ready.model_copy(update={"smtp_data_timeout": 0.3})
    report = batch(settings)
    assert sorted(report.uncertain) == ["ada@example.org", "alan@example.org", "grace@example.org"]
    assert set(statuses(ready).values()) == {"uncertain"}
    assert len(server.received) == 3

    server.delay_replies(0)
    again = batch(ready)  # PAPERBOY_UNCERTAIN=resend, the default
    assert again.sent == 3
    assert all("sent again with the same Message-ID" in why for why in again.uncertain.values())
    ids = Counter(r.message["Message-ID"] for r in server.received)
    assert len(ids) == 3 and set(ids.values()) == {2}  # two copies, one Message-ID: receivers drop one
    assert set(statuses(ready).values()) == {"sent"}


def test_uncertain_skip_sends_nothing_again_and_counts_the_papers_seen(ready, workspace):
    workspace.server.delay_replies(0.8)
    batch(ready.model_copy(update={"smtp_data_timeout": 0.3}))
    workspace.server.delay_replies(0)
    with Store(ready.db_path) as store:
        assert store.delivered_count() == 0

    again = batch(ready.model_copy(update={"uncertain": "skip"}))
    assert again.sent == 0 and again.already == 3
    assert all("PAPERBOY_UNCERTAIN=skip" in why for why in again.uncertain.values())
    assert len(workspace.server.received) == 3
    with Store(ready.db_path) as store:
        assert store.delivered_count() > 0  # the papers count as seen: never in a later digest


# ------------------------------------------------------------------ issue 15.2: the crash window

def test_a_digest_is_in_flight_while_the_server_has_not_answered(ready, workspace):
    server = workspace.server
    server.hold_after(0)
    settings = ready.model_copy(update={"smtp_connections": 1})
    worker = threading.Thread(target=batch, args=(settings,))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while server.held < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.held == 1
        with Store(ready.db_path) as store:
            rows = store.uncertain_digests(DAY)
        assert [(r["subscriber"], r["status"]) for r in rows] == [("ada@example.org", "in_flight")]
        assert rows[0]["message_id"] == message_id_for("ada@example.org", DAY, "example.org")
    finally:
        server.release()
        worker.join(30)
    assert set(statuses(ready).values()) == {"sent"}


def test_in_flight_rows_left_by_a_killed_run_become_uncertain(tmp_path):
    with Store(tmp_path / "p.db") as store:
        store.record_in_flight("ada@example.org", DAY, "<a@example.org>", ["2406.1", "2406.2"])
        store.record_in_flight("bob@example.org", DAY, "<b@example.org>", ["2406.1"])
        store.record_outcome(Outcome("bob@example.org", DAY, "sent", "<b@example.org>", ("2406.1",)))
        store.record_in_flight("bob@example.org", DAY, "<b@example.org>", ["2406.1"])  # never over "sent"
        assert store.settle_in_flight() == 1
        (row,) = store.uncertain_digests()
        assert (row["subscriber"], row["status"]) == ("ada@example.org", "uncertain")
        assert "between sending the message and recording" in row["error"]
        assert {r["subscriber"]: r["status"] for r in store.digest_rows(DAY)}["bob@example.org"] == "sent"
        assert store.relayed_since(datetime.now(UTC) - timedelta(hours=24)) == 2


# ------------------------------------------------------------------ issue 15.1: graceful stop

async def test_a_stop_lets_each_connection_finish_and_record_its_transaction(smtp_server, tmp_path):
    smtp_server.delay_replies(0.005, 0.02)
    outcomes: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 5:
            request_stop("SIGTERM")

    settings = settings_for(smtp_server, tmp_path, smtp_connections=4)
    stats = await deliver(items_for(readers(60)), settings, on_outcome)

    assert stats.stopped == "SIGTERM"
    assert 5 <= len(outcomes) <= 5 + 3  # at most the other connections' transactions in hand
    assert Counter(smtp_server.recipients()) == Counter(o.subscriber for o in outcomes)  # all recorded


def test_a_stopped_batch_leaves_the_rest_for_the_rerun(ready, workspace):
    request_stop("SIGINT")
    report = batch(ready)
    assert (report.sent, report.left, report.stopped) == (0, 3, "SIGINT")
    assert workspace.server.received == [] and statuses(ready) == {}
    clear_stop()
    assert batch(ready).sent == 3


# ------------------------------------------------------------------ issue 15.3: TLS and the breaker

async def test_a_private_ca_is_trusted_with_smtp_ca_file(smtp_server_factory, tmp_path):
    ca_file, cert = make_private_ca(tmp_path / "pki")
    server = smtp_server_factory(tls="starttls", cert=cert)
    settings = settings_for(server, tmp_path, smtp_tls="starttls", smtp_ca_file=ca_file)
    outcomes = await send(readers(2), settings)
    assert [o.status for o in outcomes] == ["sent"] * 2 and [r.tls for r in server.received] == [True] * 2

    with pytest.raises(RelayError) as raised:
        await send(readers(2), settings_for(server, tmp_path, smtp_tls="starttls"))
    assert f"127.0.0.1:{server.port} (STARTTLS)" in str(raised.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value) and "PAPERBOY_SMTP_CA_FILE" in str(raised.value)


def test_a_missing_ca_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ValidationError, match="smtp_ca_file") as raised:
        Settings(smtp_ca_file=tmp_path / "nope.pem")
    assert "nope.pem is not a file" in str(raised.value)


async def test_temporary_refusals_of_everything_trip_the_breaker_marking_nothing(smtp_server, tmp_path):
    smtp_server.refuse_after(0, 451, "4.3.2 system not accepting network messages")
    outcomes: list[Outcome] = []
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1, smtp_retries=3)
    with pytest.raises(RelayError, match=rf"{RELAY_4XX_LIMIT} attempts in a row.*451 4\.3\.2"):
        await deliver(items_for(readers(20)), settings, outcomes.append)
    assert outcomes == []  # the two digests that used up their retries meanwhile are not marked either


async def test_one_digests_trouble_is_recorded_once_others_get_through(smtp_server, tmp_path):
    smtp_server.fail_next(452, times=3, stage="RCPT", text="4.2.2 mailbox full")
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1, smtp_retries=2)
    outcomes = await send(readers(3), settings)
    assert [(o.subscriber, o.status) for o in outcomes] == [
        ("reader001@example.org", "sent"), ("reader000@example.org", "failed"), ("reader002@example.org", "sent")]
    assert outcomes[1].error == "452 4.2.2 mailbox full" and not outcomes[1].permanent


# ------------------------------------------------------------------ issue 16: EHLO name; 15.8: Message-ID

async def test_ehlo_name_defaults_to_the_from_domain_and_can_be_set(smtp_server, tmp_path):
    await send(readers(1), settings_for(smtp_server, tmp_path))
    await send(readers(1), settings_for(smtp_server, tmp_path, smtp_helo="mx1.example.net"))
    await send(readers(1), settings_for(smtp_server, tmp_path, mail_from="Paperboy <paperboy@localhost>"))
    assert smtp_server.helo_names == ["example.org", "mx1.example.net", socket.getfqdn()]
    with pytest.raises(ValidationError, match="not a host name"):
        Settings(smtp_helo="mail example org")


def test_message_ids_carry_the_sender_domain(ready, workspace):
    batch(ready)
    assert {r.message["Message-ID"].split("@")[1] for r in workspace.server.received} == {"example.org>"}


# ------------------------------------------------------------------ issue 15.5: pacing

async def test_the_send_rate_holds_within_5_percent(smtp_server, tmp_path):
    # 8 connections and finished bytes: capacity far above the rate even on a busy machine,
    # so what is measured is the pacing
    rate, count = 25.0, 150
    raw = digest_message("x@example.org", DAY).as_bytes().replace(b"\n", b"\r\n")
    items = [Outgoing(a, DAY, raw, ("2406.00001",), message_id=f"<{a}>") for a in readers(count)]
    settings = settings_for(smtp_server, tmp_path, smtp_connections=8, smtp_rate=rate)
    outcomes: list[Outcome] = []
    await deliver(items, settings, outcomes.append)
    times = sorted(r.at for r in smtp_server.received)
    measured = (len(times) - 1) / (times[-1] - times[0])
    print(f"rate: asked {rate:g}/s, measured {measured:.2f}/s over {count} messages")
    assert len(times) == count and abs(measured / rate - 1) <= 0.05


async def test_a_stop_does_not_wait_for_a_slow_rate_and_sends_nothing_more(smtp_server, tmp_path):
    """A slow PAPERBOY_SMTP_RATE keeps connections waiting for their slots; a stop meanwhile
    ends the wait at once and sends nothing more (found by the demo's Ctrl-C test: at 0.25/s
    the stop took 9.4 s and every waiting message still went out)."""
    outcomes: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        threading.Timer(0.3, request_stop, ("SIGINT",)).start()

    settings = settings_for(smtp_server, tmp_path, smtp_connections=4, smtp_rate=0.25)
    started = time.monotonic()
    stats = await deliver(items_for(readers(6)), settings, on_outcome)
    took = time.monotonic() - started

    assert stats.stopped == "SIGINT" and took < 2.5, took  # the next slot was 4 s away
    assert len(outcomes) == 1 and smtp_server.recipients() == [outcomes[0].subscriber]


def test_the_daily_cap_defers_the_rest_counting_the_last_24_hours(ready, workspace):
    with Store(ready.db_path) as store:  # one sent by yesterday's run, within 24 hours
        store.record_outcome(Outcome("someone@example.org", DAY - timedelta(days=1), "sent", "<x@example.org>"))
    report = batch(ready.model_copy(update={"daily_cap": 3, "smtp_connections": 1}))

    assert report.sent == 2 and list(report.deferred) == ["grace@example.org"]
    assert "PAPERBOY_DAILY_CAP=3" in report.deferred["grace@example.org"]
    assert statuses(ready)["grace@example.org"] == "deferred"  # recorded, never lost
    assert batch(ready.model_copy(update={"daily_cap": 3})).sent == 0  # still capped
    assert batch(ready.model_copy(update={"daily_cap": 10})).sent == 1


def test_plan_is_read_only_in_a_dry_run(ready):
    with Store(ready.db_path) as store:
        store.record_in_flight("ada@example.org", DAY, "<a@example.org>", ["x"])
        corpus = Corpus.load(store, ready, DAY)
        subscribers, _ = load_all(ready.subscribers_dir)
        plan = plan_batch(subscribers, store, corpus, write=False)
        assert [r["status"] for r in store.uncertain_digests(DAY)] == ["in_flight"]
        assert len(plan.todo) == 3


@pytest.mark.usefixtures("prefect_harness")
def test_the_cli_stops_with_one_message_and_exit_1_when_the_relay_refuses_everything(workspace, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("PAPERBOY_SMTP_TLS", "starttls")  # the test server offers no STARTTLS
    result = CliRunner().invoke(app, ["run", "--date", DAY.isoformat()])
    assert result.exit_code == 1, result.output
    assert f"127.0.0.1:{workspace.server.port} (STARTTLS)" in result.output
    assert "Nothing was marked failed" in result.output
    with Store(workspace.db_path) as store:
        assert store.digest_rows(DAY) == []  # every digest left for the rerun


@pytest.mark.slow
def test_a_relay_the_run_cannot_use_is_one_message_without_tracebacks(workspace):
    """What most newcomers meet in their first real run (PAPERBOY_SMTP_TLS left at starttls
    against a relay without it): the one-line error, not Prefect's task and flow tracebacks
    in front of it (a raised RelayError crossed both)."""
    env = {**os.environ, **workspace.environ, "PAPERBOY_SMTP_TLS": "starttls"}
    env.pop("PREFECT_API_URL", None)  # the real command: its own temporary Prefect server
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--date", DAY.isoformat()], env=env,
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, cwd=workspace.path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert f"127.0.0.1:{workspace.server.port} (STARTTLS)" in output
    assert "Nothing was marked failed" in output
    assert "Traceback" not in output and "RelayError" not in output, output[-3000:]
    with Store(workspace.db_path) as store:
        assert store.digest_rows(DAY) == []  # every digest left for the rerun
