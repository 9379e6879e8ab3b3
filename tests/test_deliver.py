"""deliver(): real aiosmtpd server on loopback, faults switched on per test."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date

import pytest

from flows.deliver import DeliveryStats, Outgoing, RelayError, deliver, deliver_sync
from flows.models import Outcome, message_id_for
from flows.settings import Settings
from tests.support.smtp import RecordingSMTPServer, digest_message, settings_for

DAY = date(2024, 6, 7)


def readers(n: int) -> list[str]:
    return [f"reader{i}@example.org" for i in range(n)]


def outgoing(address: str) -> Outgoing:
    return Outgoing(address, DAY, digest_message(address, DAY), ("2406.00001", "2406.00002"))


def items_for(addresses: list[str]) -> Iterator[Outgoing]:
    return (outgoing(address) for address in addresses)


async def send_all(addresses: list[str], settings: Settings, **kwargs) -> tuple[list[Outcome], DeliveryStats]:
    outcomes: list[Outcome] = []
    stats = await deliver(items_for(addresses), settings, outcomes.append, **kwargs)
    return outcomes, stats


def by_subscriber(outcomes: list[Outcome]) -> dict[str, Outcome]:
    assert len({o.subscriber for o in outcomes}) == len(outcomes), "one outcome per digest"
    return {o.subscriber: o for o in outcomes}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_all_delivered_once_over_reused_connections(smtp_server, tmp_path):
    addresses = readers(30)
    outcomes, stats = await send_all(addresses, settings_for(smtp_server, tmp_path, smtp_connections=3))

    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert smtp_server.connections == 3
    assert {r.connection for r in smtp_server.received} == {1, 2, 3}
    assert (stats.sent, stats.failed, stats.retried, stats.reconnects) == (30, 0, 0, 0)
    first = by_subscriber(outcomes)["reader0@example.org"]
    assert first.status == "sent" and first.attempts == 1
    assert first.message_id == message_id_for("reader0@example.org", DAY)
    assert first.paper_ids == ("2406.00001", "2406.00002")
    assert first.at is not None and first.at.tzinfo == UTC


async def test_envelope_and_message_arrive_intact(smtp_server, tmp_path):
    await send_all(["ada@example.org"], settings_for(smtp_server, tmp_path))

    (received,) = smtp_server.received
    assert received.mail_from == "paperboy@example.org"
    assert received.rcpt_tos == ("ada@example.org",)
    message = received.message
    assert message["Message-ID"] == message_id_for("ada@example.org", DAY)
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


async def test_never_more_connections_than_items(smtp_server, tmp_path):
    outcomes, _ = await send_all(readers(2), settings_for(smtp_server, tmp_path, smtp_connections=4))
    assert len(outcomes) == 2
    assert smtp_server.connections == 2


async def test_nothing_to_send_opens_no_connection(smtp_server, tmp_path):
    outcomes, stats = await send_all([], settings_for(smtp_server, tmp_path))
    assert outcomes == []
    assert (stats.sent, stats.failed) == (0, 0)
    assert smtp_server.connections == 0


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_4xx_is_retried_and_delivered_exactly_once(smtp_server, tmp_path, stage):
    smtp_server.fail_next(code=451, times=1, stage=stage)
    addresses = readers(3)
    outcomes, stats = await send_all(addresses, settings_for(smtp_server, tmp_path, smtp_connections=1))

    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert by_subscriber(outcomes)["reader0@example.org"].attempts == 2
    assert all(o.status == "sent" for o in outcomes)
    assert stats.retried == 1
    assert smtp_server.connections == 1


async def test_421_reconnects_and_delivers(smtp_server, tmp_path):
    smtp_server.fail_next(code=421, stage="MAIL", text="4.3.2 shutting down")
    outcomes, stats = await send_all(readers(2), settings_for(smtp_server, tmp_path, smtp_connections=1))

    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert stats.reconnects == 1
    assert smtp_server.connections == 2


async def test_retries_exhausted_reports_last_reason(smtp_server, tmp_path):
    smtp_server.fail_next(code=452, times=100, stage="DATA", text="4.3.1 insufficient storage")
    outcomes, stats = await send_all(["ada@example.org"], settings_for(smtp_server, tmp_path, smtp_retries=2))

    (outcome,) = outcomes
    assert outcome.status == "failed"
    assert outcome.error == "452 4.3.1 insufficient storage"
    assert outcome.attempts == 3 and not outcome.permanent
    assert stats.retried == 2 and smtp_server.received == []


async def test_5xx_recipient_fails_that_digest_only(smtp_server, tmp_path):
    smtp_server.reject_recipient("reader3@example.org", code=550, text="5.1.1 mailbox unavailable")
    addresses = readers(6)
    outcomes, stats = await send_all(addresses, settings_for(smtp_server, tmp_path, smtp_connections=2))

    rejected = by_subscriber(outcomes)["reader3@example.org"]
    assert rejected.status == "failed" and rejected.permanent
    assert rejected.error == "550 5.1.1 mailbox unavailable"
    assert rejected.attempts == 1 and stats.retried == 0
    assert sorted(smtp_server.recipients()) == sorted(set(addresses) - {"reader3@example.org"})
    assert (stats.sent, stats.failed) == (5, 1)


async def test_5xx_for_the_message_fails_that_digest_only(smtp_server, tmp_path):
    smtp_server.fail_next(code=554, stage="DATA", text="5.6.0 content rejected")
    outcomes, stats = await send_all(readers(3), settings_for(smtp_server, tmp_path, smtp_connections=1))

    assert [(o.status, o.error) for o in outcomes] == [
        ("failed", "554 5.6.0 content rejected"), ("sent", ""), ("sent", ""),
    ]
    assert len(smtp_server.received) == 2


async def test_dropped_connection_reconnects_and_delivers_each_once(smtp_server, tmp_path):
    smtp_server.drop_connection_after(4, times=2)
    addresses = readers(12)
    outcomes, stats = await send_all(addresses, settings_for(smtp_server, tmp_path, smtp_connections=2))

    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert all(o.status == "sent" for o in outcomes) and len(outcomes) == 12
    assert stats.reconnects == 2 and stats.retried == 2
    assert smtp_server.connections == 4


async def test_server_down_stops_the_run_quickly_marking_nothing_failed(tmp_path):
    port = closed_port()
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none",
        smtp_retries=3, smtp_retry_delay=0.01, smtp_connections=3, db_path=tmp_path / "db",
    )
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError, match=rf"127\.0\.0\.1:{port} \(no TLS\): cannot connect.*Connect call failed"):
        await deliver(items_for(readers(20)), settings, outcomes.append)

    assert time.monotonic() - started < 2
    assert outcomes == []  # the circuit breaker: nothing marked failed, the rerun sends all 20


async def test_server_vanishing_mid_batch_gives_every_digest_one_outcome(tmp_path):
    server = RecordingSMTPServer().start()
    server.hold_after(3)
    addresses = readers(10)
    recorded: list[Outcome] = []
    task = asyncio.create_task(deliver(items_for(addresses), settings_for(server, tmp_path, smtp_connections=2),
                                       recorded.append))
    while server.held < 2:
        await asyncio.sleep(0.005)
    await asyncio.to_thread(server.stop)
    with pytest.raises(RelayError, match="cannot connect"):
        await task

    delivered = set(server.recipients())
    assert len(delivered) == 3
    assert {o.subscriber for o in recorded} == delivered  # the other 7: no outcome, left for the rerun


async def test_held_data_waits_for_release(smtp_server, tmp_path):
    smtp_server.hold_after(2)
    task = asyncio.create_task(send_all(readers(4), settings_for(smtp_server, tmp_path, smtp_connections=1)))
    while smtp_server.held < 1:
        await asyncio.sleep(0.005)
    assert len(smtp_server.received) == 2
    smtp_server.release()
    outcomes, _ = await task
    assert [o.status for o in outcomes] == ["sent"] * 4 and len(smtp_server.received) == 4


async def test_outcome_recorded_before_the_next_send_on_one_connection(smtp_server, tmp_path):
    events = smtp_server.events  # the server appends ("received", rcpt, connection) here

    def pulled(addresses):
        for address in addresses:
            events.append(("pulled", address, 0))
            yield outgoing(address)

    addresses = readers(4)
    await deliver(
        pulled(addresses), settings_for(smtp_server, tmp_path, smtp_connections=1),
        lambda o: events.append(("outcome", o.subscriber, 0)),
    )
    expected = [(kind, a) for a in addresses for kind in ("pulled", "received", "outcome")]
    assert [(kind, who) for kind, who, _ in events] == expected


async def test_outcome_recorded_before_the_next_send_on_each_connection(smtp_server, tmp_path):
    events = smtp_server.events
    await deliver(
        items_for(readers(24)), settings_for(smtp_server, tmp_path, smtp_connections=3),
        lambda o: events.append(("outcome", o.subscriber, 0)),
    )
    position = {(kind, who): i for i, (kind, who, _) in enumerate(events)}
    for connection in (1, 2, 3):
        sent_here = [who for kind, who, conn in events if kind == "received" and conn == connection]
        assert len(sent_here) >= 2
        for earlier, later in zip(sent_here, sent_here[1:]):
            assert position[("outcome", earlier)] < position[("received", later)]


async def test_items_are_pulled_lazily(smtp_server, tmp_path):
    pulled = 0
    ahead: list[int] = []
    outcomes: list[Outcome] = []

    def lazy():
        nonlocal pulled
        for address in readers(40):
            pulled += 1
            yield outgoing(address)

    def on_outcome(outcome: Outcome) -> None:
        ahead.append(pulled - len(outcomes))
        outcomes.append(outcome)

    await deliver(lazy(), settings_for(smtp_server, tmp_path, smtp_connections=3), on_outcome)
    assert len(outcomes) == 40
    assert max(ahead) <= 3


async def test_progress_counts_finished_digests(smtp_server, tmp_path):
    seen: list[int] = []
    smtp_server.reject_recipient("reader1@example.org")
    await send_all(readers(5), settings_for(smtp_server, tmp_path), progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]


class LedgerDown(Exception):
    """Stands in for a ledger write that failed."""


async def test_failing_on_outcome_stops_sending(smtp_server, tmp_path):
    def on_outcome(outcome: Outcome) -> None:
        if outcome.subscriber == "reader1@example.org":
            raise LedgerDown

    with pytest.raises(LedgerDown):
        await deliver(items_for(readers(6)), settings_for(smtp_server, tmp_path, smtp_connections=1), on_outcome)
    assert smtp_server.recipients() == ["reader0@example.org", "reader1@example.org"]


async def test_auth_success(smtp_server, tmp_path):
    smtp_server.require_auth("paperboy", "open-sesame")
    settings = settings_for(smtp_server, tmp_path, smtp_user="paperboy", smtp_password="open-sesame")
    outcomes, _ = await send_all(readers(3), settings)
    assert [o.status for o in outcomes] == ["sent"] * 3
    assert len(smtp_server.received) == 3


async def test_auth_failure_keeps_the_password_secret(smtp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Wr0ng-horse-battery"
    smtp_server.require_auth("paperboy", "open-sesame")
    settings = settings_for(smtp_server, tmp_path, smtp_user="paperboy", smtp_password=secret, smtp_connections=2)
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError) as raised:
        await deliver(items_for(readers(4)), settings, outcomes.append)

    message = str(raised.value)
    assert f"127.0.0.1:{smtp_server.port} (no TLS): 535" in message and "PAPERBOY_SMTP_PASSWORD" in message
    assert outcomes == []  # nothing marked failed for a refused login
    assert smtp_server.connections <= 2  # a refused login is not retried
    assert secret not in message
    assert "535" in caplog.text and secret not in caplog.text


async def test_password_quoted_by_the_server_is_redacted(smtp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Wr0ng-horse-battery"
    smtp_server.require_auth("paperboy", "open-sesame", echo_on_failure=True)
    settings = settings_for(smtp_server, tmp_path, smtp_user="paperboy", smtp_password=secret)
    with pytest.raises(RelayError, match=r"535 5\.7\.8 bad password \*\*\*") as raised:
        await send_all(readers(1), settings)

    assert secret not in str(raised.value)
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]  # not the test server's
    assert any("bad password ***" in line for line in ours)
    assert not any(secret in line for line in ours)


async def test_starttls(smtp_server_factory, tls_cert, tmp_path):
    server = smtp_server_factory(tls="starttls", cert=tls_cert)
    settings = settings_for(server, tmp_path, smtp_tls="starttls")
    outcomes, _ = await send_all(readers(3), settings, tls_context=tls_cert.client_context())
    assert [o.status for o in outcomes] == ["sent"] * 3
    assert [r.tls for r in server.received] == [True] * 3


async def test_implicit_tls(smtp_server_factory, tls_cert, tmp_path):
    server = smtp_server_factory(tls="tls", cert=tls_cert)
    settings = settings_for(server, tmp_path, smtp_tls="tls")
    outcomes, _ = await send_all(readers(2), settings, tls_context=tls_cert.client_context())
    assert [o.status for o in outcomes] == ["sent"] * 2
    assert [r.tls for r in server.received] == [True] * 2


async def test_untrusted_certificate_stops_the_run_with_advice(smtp_server_factory, tls_cert, tmp_path):
    server = smtp_server_factory(tls="tls", cert=tls_cert)
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError) as raised:
        await deliver(items_for(readers(3)), settings_for(server, tmp_path, smtp_tls="tls"), outcomes.append)
    message = str(raised.value)
    assert f"127.0.0.1:{server.port} (implicit TLS)" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "PAPERBOY_SMTP_CA_FILE" in message
    assert outcomes == [] and server.received == [] and server.connections <= 4  # one try per connection


async def test_starttls_required_but_not_offered(smtp_server, tmp_path):
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError, match=r"\(STARTTLS\):.*STARTTLS.*PAPERBOY_SMTP_TLS"):
        await deliver(items_for(readers(2)), settings_for(smtp_server, tmp_path, smtp_tls="starttls"),
                      outcomes.append)
    assert outcomes == [] and smtp_server.received == []


def test_deliver_sync_from_a_worker_thread(smtp_server, tmp_path):
    results: list[DeliveryStats] = []
    outcomes: list[Outcome] = []
    settings = settings_for(smtp_server, tmp_path)
    worker = threading.Thread(target=lambda: results.append(deliver_sync(items_for(readers(3)), settings, outcomes.append)))
    worker.start()
    worker.join(10)
    assert results and results[0].sent == 3
    assert len(outcomes) == 3 and len(smtp_server.received) == 3
