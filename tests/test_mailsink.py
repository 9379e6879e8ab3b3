"""MaildirSink: the demo's local SMTP server, fed by real aiosmtplib clients."""

from __future__ import annotations

import mailbox
from datetime import date

import aiosmtplib
import pytest

from flows.mailsink import MaildirSink, SinkNotRunning
from flows.models import message_id_for
from tests.support.smtp import digest_message

DAY = date(2024, 6, 7)


async def send(sink: MaildirSink, *addresses: str) -> None:
    async with aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False) as client:
        for address in addresses:
            await client.send_message(digest_message(address, DAY))


async def test_messages_land_in_the_maildir_with_browsable_html(tmp_path):
    inbox = tmp_path / "inbox"
    with MaildirSink(inbox) as sink:
        assert sink.port > 0
        await send(sink, "ada@example.org", "grace@example.org")
        assert sink.received == 2

    stored = list(mailbox.Maildir(inbox, create=False))
    assert sorted(m["To"] for m in stored) == ["ada@example.org", "grace@example.org"]
    assert {m["Message-ID"] for m in stored} == {
        message_id_for("ada@example.org", DAY), message_id_for("grace@example.org", DAY),
    }
    pages = sorted(p.name for p in (inbox / "html").glob("*.html"))
    assert len(pages) == 2 and pages[0].startswith("ada@example.org--20240607.")
    html = (inbox / "html" / pages[0]).read_text(encoding="utf-8")
    assert "<h1>Papers for 2024-06-07</h1>" in html


async def test_restart_counts_only_this_session_and_keeps_old_mail(tmp_path):
    sink = MaildirSink(tmp_path / "inbox")
    with sink:
        await send(sink, "ada@example.org")
    with sink:
        await send(sink, "grace@example.org")
        assert sink.received == 1
    assert len(mailbox.Maildir(tmp_path / "inbox", create=False)) == 2


def test_port_is_unknown_until_started(tmp_path):
    with pytest.raises(SinkNotRunning):
        MaildirSink(tmp_path / "inbox").port
