"""What deliver() tells the bounce rules: the refusing command, reply code and enhanced status
of a 5xx, and the per-digest envelope sender. Real aiosmtpd server with faults on loopback."""

from __future__ import annotations

from datetime import date

import pytest

from flows.deliver import Outgoing, deliver
from flows.models import Outcome
from tests.support.smtp import digest_message, settings_for

DAY = date(2025, 6, 13)


def item(address: str, envelope_from: str = "") -> Outgoing:
    message = digest_message(address, DAY).as_bytes().replace(b"\n", b"\r\n")
    return Outgoing(address, DAY, message, ("2506.00001",), message_id="<x@example.org>",
                    envelope_from=envelope_from)


async def send(items: list[Outgoing], settings) -> dict[str, Outcome]:
    outcomes: list[Outcome] = []
    await deliver(items, settings, outcomes.append)
    return {o.subscriber: o for o in outcomes}


async def test_rcpt_refusal_carries_code_status_and_stage(smtp_server, tmp_path):
    smtp_server.reject_recipient("gone@example.org", 550, "5.1.1 <gone@example.org>: user unknown")
    outcomes = await send([item("gone@example.org"), item("ada@example.org")],
                          settings_for(smtp_server, tmp_path, smtp_connections=1))

    gone = outcomes["gone@example.org"]
    assert (gone.status, gone.permanent) == ("failed", True)
    assert (gone.smtp_code, gone.smtp_status, gone.smtp_stage) == (550, "5.1.1", "RCPT")
    ok = outcomes["ada@example.org"]
    assert (ok.status, ok.smtp_code, ok.smtp_status, ok.smtp_stage) == ("sent", 0, "", "")


@pytest.mark.parametrize(("stage", "code", "text", "status"), [
    ("DATA", 554, "5.7.1 message content rejected", "5.7.1"),
    ("MAIL", 553, "5.1.8 sender address rejected", "5.1.8"),
    ("DATA", 552, "message too big", ""),  # no enhanced status given
])
async def test_refusal_at_each_command(smtp_server, tmp_path, stage, code, text, status):
    smtp_server.fail_next(code, stage=stage, text=text)
    outcomes = await send([item("ada@example.org")], settings_for(smtp_server, tmp_path))

    ada = outcomes["ada@example.org"]
    assert ada.permanent and ada.error.startswith(str(code))
    assert (ada.smtp_code, ada.smtp_status, ada.smtp_stage) == (code, status, stage)


async def test_transient_failure_keeps_the_last_reply(smtp_server, tmp_path):
    smtp_server.fail_next(451, times=3, stage="RCPT", text="4.2.2 mailbox full")
    outcomes = await send([item("ada@example.org")], settings_for(smtp_server, tmp_path, smtp_retries=2))

    ada = outcomes["ada@example.org"]
    assert ada.status == "failed" and not ada.permanent
    assert (ada.smtp_code, ada.smtp_status, ada.smtp_stage) == (451, "4.2.2", "RCPT")


async def test_envelope_sender_per_digest(smtp_server, tmp_path):
    verp = "bounces+20250613.abc@example.org"
    await send([item("ada@example.org", envelope_from=verp), item("alan@example.org")],
               settings_for(smtp_server, tmp_path, smtp_connections=1))

    senders = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.received}
    assert senders == {"ada@example.org": verp, "alan@example.org": "paperboy@example.org"}
