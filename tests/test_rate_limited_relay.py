"""A relay that rate-limits with 4xx once a client is over its limit.

Reproduced on Postfix (smtpd_client_message_rate_limit = 2): two digests were accepted, then
every attempt got "450 4.7.1 Error: too much mail from 127.0.0.1" and the circuit breaker
stopped the run with "10 attempts in a row failed with a temporary error and none succeeded":
untrue (two had), and no word of the settings that avoid it. Now the message says how many
were accepted first and, for a reply that reads like a sending limit, names
PAPERBOY_SMTP_RATE and PAPERBOY_DAILY_CAP. Nothing else changes: the accepted digests are
recorded, none is marked failed, the rerun sends the rest."""

from __future__ import annotations

import pytest

from flows.deliver import RelayError, deliver
from flows.models import Outcome
from tests.support.smtp import settings_for
from tests.test_delivery_faults import items_for, readers

TOO_MUCH = "4.7.1 Error: too much mail from 127.0.0.1"  # Postfix's anvil reply, as received


async def test_a_rate_limit_trips_the_breaker_saying_what_got_through_and_what_to_set(smtp_server, tmp_path):
    smtp_server.refuse_after(2, 450, TOO_MUCH)
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1, smtp_retries=3)  # 1: a fixed order
    outcomes: list[Outcome] = []
    with pytest.raises(RelayError) as raised:
        await deliver(items_for(readers(12)), settings, outcomes.append)
    message = str(raised.value)
    assert "after 2 digest(s) were accepted" in message and "none succeeded" not in message
    assert "450 4.7.1 Error: too much mail" in message
    assert "PAPERBOY_SMTP_RATE" in message and "PAPERBOY_DAILY_CAP" in message
    assert [o.status for o in outcomes] == ["sent", "sent"]  # recorded; nothing marked failed
    assert len(smtp_server.received) == 2


async def test_a_relay_refusing_everything_for_another_reason_gets_no_rate_advice(smtp_server, tmp_path):
    smtp_server.refuse_after(0, 451, "4.3.2 system not accepting network messages")
    settings = settings_for(smtp_server, tmp_path, smtp_connections=1, smtp_retries=3)
    with pytest.raises(RelayError) as raised:
        await deliver(items_for(readers(12)), settings, lambda outcome: None)
    assert "none succeeded" in str(raised.value) and "PAPERBOY_SMTP_RATE" not in str(raised.value)
