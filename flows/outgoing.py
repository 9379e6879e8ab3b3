"""A rendered digest on its way out (`Outgoing`) and its bytes as they go on the wire.

Takes nothing but the message; gives the bytes `flows.deliver` sends. Kept apart from
deliver.py, which imports aiosmtplib and asyncio (≈ 8 MB): a render process makes
`Outgoing` messages and signs their bytes (flows/dkim.py) but never sends, so it does
not import them (aiosmtplib only for an `EmailMessage`, flattened as aiosmtplib does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered digest on its way out; `subscriber` is the envelope recipient.

    ``message`` is an EmailMessage, or the finished bytes (`Renderer.render_bytes`), sent
    as they are; bytes carry their Message-ID alongside, for the ledger.
    """

    subscriber: str
    digest_date: date
    message: EmailMessage | bytes
    paper_ids: tuple[str, ...]
    message_id: str = ""
    envelope_from: str = ""  # MAIL FROM (e.g. a VERP bounce address); "" = PAPERBOY_MAIL_FROM's address
    contents: str = ""  # the digest as its web view keeps it; recorded with the "sent" outcome

    def id(self) -> str:
        if self.message_id or isinstance(self.message, bytes):
            return self.message_id
        return str(self.message.get("Message-ID", ""))


def wire_bytes(message: EmailMessage | bytes, *, utf8: bool = False) -> bytes:
    """The message as `deliver` puts it on the wire (before SMTP's dot-stuffing); ``utf8``
    as aiosmtplib sends a message to a non-ASCII address (SMTPUTF8: headers in UTF-8)."""
    if isinstance(message, bytes):
        return message
    import aiosmtplib.email

    return aiosmtplib.email.flatten_message(message, utf8=utf8)
