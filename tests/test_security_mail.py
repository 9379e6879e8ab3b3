"""Issue 12, V10: control characters from a listing never make an invalid MIME part.

The attack run found raw NUL and ESC bytes from titles in ``7bit`` parts (RFC 2045 forbids
NUL there, RFC 5322 every control but tab). Here a digest whose every source-given field
holds control characters goes through the real renderer and a real SMTP server.
"""

from __future__ import annotations

import re
from datetime import date
from email import message_from_bytes
from email import policy as email_policy

import pytest

from flows.deliver import Outgoing, deliver_sync
from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper
from flows.render import Renderer, encode_body
from flows.settings import PROJECT_ROOT
from flows.subscribers import Subscriber
from tests.support.smtp import settings_for

DAY = date(2026, 11, 21)
CONTROLS = "".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127]))
LINKS = DigestLinks(preferences="https://paperboy.example.org/preferences/t",
                    unsubscribe="https://paperboy.example.org/unsubscribe/t",
                    unsubscribe_mailto="mailto:paperboy@example.org?subject=unsubscribe")
FORBIDDEN = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # in any line of a message
BARE_LINE_END = re.compile(rb"(?<!\r)\n|\r(?!\n)")


def hostile_digest(text: str) -> tuple[Digest, Subscriber]:
    paper = Paper(id="2611.00001", title=f"Attention{text} is all\x1b[31m you need\x00",
                  abstract=f"We study reward models.{text}\x00 More text\x1b here.", listed=DAY,
                  authors=(f"Ada{text}Lovelace",), url="https://huggingface.co/papers/2611.00001",
                  source="huggingface", ai_keywords=(f"reward{text}",))
    match = Match(keyword="reward model", fields=("abstract",), terms=("reward",))
    subscriber = Subscriber(email="ada@example.org", name="Ada", keywords=["reward model"])
    return Digest("ada@example.org", DAY, [RankedPaper(paper, 1.0, (match,))]), subscriber


def check_every_part(raw: bytes) -> None:
    head, _, _ = raw.partition(b"\r\n\r\n")
    message = message_from_bytes(raw, policy=email_policy.SMTP)
    parts = [part for part in message.walk() if not part.is_multipart()]
    assert len(parts) == 2
    for part in parts:
        encoding = part["Content-Transfer-Encoding"]
        payload = part.get_payload(decode=False).encode("ascii")
        assert encoding in ("7bit", "quoted-printable")
        bad = FORBIDDEN.findall(payload)
        assert not bad, f"{part.get_content_type()} ({encoding}) carries raw controls {bad[:5]}"
        assert all(len(line) <= 998 for line in payload.split(b"\r\n"))
    assert not FORBIDDEN.search(raw), "a raw control character in the message"
    assert not BARE_LINE_END.search(raw)


@pytest.mark.parametrize("text", [CONTROLS, "\x00", "\x1b[2J", "\x7f"])
def test_controls_in_titles_go_out_as_valid_mime(text, smtp_server, tmp_path):
    settings = settings_for(smtp_server, tmp_path)
    renderer = Renderer(PROJECT_ROOT / "templates", settings=settings)
    digest, subscriber = hostile_digest(text)
    as_bytes = renderer.render_bytes(digest, subscriber, LINKS)
    as_message = renderer.render_message(digest, subscriber, LINKS)
    check_every_part(as_bytes)
    outcomes = []
    deliver_sync([Outgoing("ada@example.org", DAY, as_bytes, ("2611.00001",)),
                  Outgoing("ada@example.org", DAY, as_message, ("2611.00001",))],
                 settings, on_outcome=outcomes.append)
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert smtp_server.wait_for(2)
    for received in smtp_server.received:
        check_every_part(received.raw)
        body = received.message.get_body(("plain",)).get_content()
        assert "is all" in body  # the title is still there, readable


@pytest.mark.parametrize("text", ["plain ascii\n", "tab\tand line\n", "NUL\x00here", "ESC\x1b[0m", "DEL\x7f"])
def test_encode_body_uses_7bit_only_for_clean_text(text):
    encoding, payload = encode_body(text)
    clean = not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)
    assert encoding == ("7bit" if clean else "quoted-printable")
    assert not FORBIDDEN.search(payload)
