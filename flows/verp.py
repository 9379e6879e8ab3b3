"""VERP: an envelope sender per digest, so a bounce that comes back later names its digest.

With PAPERBOY_BOUNCE_ADDRESS=bounces@example.org the digest of 13 June 2025 for one
subscriber goes out with ``MAIL FROM:<bounces+20250613.k3xq…@example.org>``: the digest date
and 16 base32 characters (80 bits) of an HMAC, keyed with the link-signing key, of the
subscriber's address and that date. The token says which digest bounced without carrying the
address, and nobody without the key can make one (a forged bounce cannot suppress anyone).
The MTA delivers ``bounces+anything@`` to the ``bounces@`` mailbox (Postfix's
recipient_delimiter, Exim's local_part_suffix, most hosted mail by default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings


TOKEN_CHARS = 16


def return_path(settings: Settings, key: str, subscriber: str, digest_date: date) -> str:
    """The envelope sender for this digest: PAPERBOY_BOUNCE_ADDRESS with the digest's token,
    or "" when VERP is off (then the From address is the envelope sender)."""
    if not settings.bounce_address:
        return ""
    local, _, domain = settings.bounce_address.rpartition("@")
    return f"{local}+{digest_date:%Y%m%d}.{mac(key, subscriber, digest_date)}@{domain}"


def mac(key: str, subscriber: str, digest_date: date) -> str:
    message = f"paperboy-verp|{subscriber.lower()}|{digest_date.isoformat()}".encode("utf-8")
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:TOKEN_CHARS].lower()


@dataclass(frozen=True)
class Token:
    digest_date: date
    mac: str


def find_token(addresses: Iterable[str], bounce_address: str) -> Token | None:
    """The token in the first of ``addresses`` that is ``bounce_address`` with one."""
    local, _, domain = bounce_address.rpartition("@")
    if not (local and domain):
        return None
    pattern = re.compile(rf"{re.escape(local)}\+(\d{{8}})\.([a-z2-7]{{{TOKEN_CHARS}}})@{re.escape(domain)}\Z",
                         re.IGNORECASE)
    for address in addresses:
        found = pattern.match(address.strip().strip("<>"))
        if found:
            try:
                day = datetime.strptime(found.group(1), "%Y%m%d").date()
            except ValueError:
                continue
            return Token(day, found.group(2).lower())
    return None


class TokenMap:
    """Token → subscriber among those ``candidates(day)`` names (the ledger's digests of that
    day); each day's tokens are computed once."""

    def __init__(self, key: str, candidates: Callable[[date], Iterable[str]]) -> None:
        self.key, self.candidates = key, candidates
        self._days: dict[date, dict[str, str]] = {}

    def subscriber(self, token: Token) -> str | None:
        if token.digest_date not in self._days:
            self._days[token.digest_date] = {
                mac(self.key, subscriber, token.digest_date): subscriber
                for subscriber in self.candidates(token.digest_date)}
        return self._days[token.digest_date].get(token.mac)
