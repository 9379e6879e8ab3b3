"""Signed, expiring links that let a subscriber act from their digest without a password.

Tokens are itsdangerous signatures over the subscriber's email and a purpose
("prefs", "unsubscribe", "confirm"); the key comes from ``PAPERBOY_SECRET_KEY``.
A sign-up's "confirm" token carries the keywords too (:func:`make_confirm_token`), so
nothing about an unconfirmed address is stored before its owner clicks.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import secrets
import tempfile
import hmac
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import quote
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from flows.redact import protect

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings

log = logging.getLogger(__name__)

PURPOSES = ("prefs", "unsubscribe", "confirm", "view", "feedback")
# "view": a digest's web view, as long as the digest is kept (settings.web_view_days is shorter)
MAX_AGE = {"prefs": 60 * 86400, "unsubscribe": 365 * 86400, "confirm": 2 * 86400, "view": 366 * 86400,
           "feedback": 60 * 86400}
FEEDBACK_VERDICTS = ("more", "less")


class TokenError(Exception):
    """A link token is tampered with, expired, or meant for something else."""


@dataclass(frozen=True)
class DigestLinks:
    preferences: str
    unsubscribe: str
    unsubscribe_mailto: str
    web_view: str = ""  # this digest in a browser ("" : no link)
    # Per-paper feedback: "{feedback}/{paper id}/more" and ".../less" ("" : no feedback links);
    # with a key, each link also carries a MAC over the address, the paper and the verdict.
    feedback: str = ""
    feedback_key: bytes = field(default=b"", repr=False)
    email: str = ""

    def feedback_link(self, paper_id: str, verdict: str) -> str:
        """The link that marks ``paper_id`` "more" or "less" like this ("" without feedback)."""
        if not self.feedback:
            return ""
        url = f"{self.feedback}/{_quoted(paper_id)}/{verdict}"
        if self.feedback_key:
            url += f"?sig={feedback_mac(self.feedback_key, self.email, paper_id, verdict)}"
        return url

    def feedback_links(self, paper_id: str) -> tuple[str, str]:
        """`feedback_link` "more" and "less" (a card has both): the address and the paper
        are hashed once for the two MACs."""
        if not self.feedback:
            return "", ""
        base = f"{self.feedback}/{_quoted(paper_id)}/"
        if not self.feedback_key:
            return base + "more", base + "less"
        mac = _feedback_hmac(self.feedback_key, self.email, paper_id)
        more, less = mac.copy(), mac
        more.update(b"more")
        less.update(b"less")
        return f"{base}more?sig={_mac_text(more)}", f"{base}less?sig={_mac_text(less)}"


@functools.lru_cache(maxsize=4096)  # a run's papers recur in every digest
def _quoted(paper_id: str) -> str:
    return quote(paper_id, safe="")


class SecretKeyError(ValueError):
    """The signing key is missing, unreadable or too weak to sign links with."""


def key_file(settings: Settings) -> Path:
    """Where a generated signing key is kept: ``secret_key`` beside the database."""
    return Path(settings.db_path).with_name("secret_key")


def secret_key(settings: Settings) -> str:
    """The signing key: PAPERBOY_SECRET_KEY, else a random key kept beside the database.

    The file is created atomically and exclusively: the key is written to a private
    temporary file that is then hard-linked into place, so two processes starting at
    once never see a half-written key; the one that loses the race reads the winner's.
    A weak key (short, empty, few distinct characters) is refused, never used.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()  # the settings refuse weak ones
    keyfile = key_file(settings)
    key = read_key_file(keyfile)
    if key is None:
        key = _create_key_file(keyfile)
    protect(key)
    return key


def read_key_file(keyfile: Path) -> str | None:
    """The key in ``keyfile``; None when there is no such file; SecretKeyError if it is weak."""
    try:
        key = keyfile.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read the signing key file {keyfile}: {exc}") from None
    from flows.settings import KEY_ADVICE, key_weakness  # the flow's process: settings are loaded

    if problem := key_weakness(key):
        raise SecretKeyError(
            f"the signing key file {keyfile} {problem}: delete it to have a new one generated, "
            f"or set PAPERBOY_SECRET_KEY ({KEY_ADVICE})")
    return key


def _create_key_file(keyfile: Path) -> str:
    keyfile.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd, temp = tempfile.mkstemp(dir=keyfile.parent, prefix=".secret_key.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, keyfile)  # atomic, and fails if another process got there first
        except FileExistsError:
            winner = read_key_file(keyfile)
            if winner is None:  # deleted again in between: nothing sensible to do but retry
                return _create_key_file(keyfile)
            return winner
    finally:
        os.unlink(temp)
    log.warning("PAPERBOY_SECRET_KEY is not set; generated one in %s (set it in production)", keyfile)
    return key


@functools.lru_cache(maxsize=16)  # one per key and purpose: building one costs more than signing
def _serializer(key: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(key, salt=f"paperboy-{purpose}")


def make_token(key: str, email: str, purpose: str) -> str:
    return _serializer(key, purpose).dumps(email.lower())


def read_token(key: str, token: str, purpose: str, max_age: int | None = None) -> str:
    """The email a token was issued for; TokenError if tampered, expired or of another purpose."""
    try:
        return _serializer(key, purpose).loads(token, max_age=max_age or MAX_AGE[purpose])
    except SignatureExpired:
        raise TokenError("this link has expired; use the link in your latest digest") from None
    except BadSignature:
        raise TokenError("this link is not valid") from None


def make_confirm_token(key: str, email: str, keywords: list[str]) -> str:
    """A sign-up confirmation token carrying the address, the keywords asked for, and a
    random nonce that makes the link single-use (the nonce is recorded when it is used)."""
    return _serializer(key, "confirm").dumps(
        {"email": email.lower(), "keywords": list(keywords), "nonce": secrets.token_urlsafe(16)})


@dataclass(frozen=True)
class ConfirmLink:
    """What a confirmation link says: who, which keywords, and its single-use nonce."""

    email: str
    keywords: list[str]
    nonce: str


def read_confirm_link(key: str, token: str, max_age: int | None = None) -> ConfirmLink:
    """The :class:`ConfirmLink` of a token; TokenError as for :func:`read_token`."""
    try:
        payload, signed_at = _serializer(key, "confirm").loads(
            token, max_age=max_age or MAX_AGE["confirm"], return_timestamp=True)
    except SignatureExpired:  # no digest yet to take a newer link from
        raise TokenError("this confirmation link has expired; sign up again to get a new one") from None
    except BadSignature:
        raise TokenError("this link is not valid") from None
    if not (isinstance(payload, dict) and isinstance(payload.get("email"), str)
            and isinstance(payload.get("keywords"), list)
            and all(isinstance(k, str) for k in payload["keywords"])):
        raise TokenError("this link is not valid")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not nonce:  # a link mailed before links carried one
        what = json.dumps([payload["email"], payload["keywords"], signed_at.isoformat()])
        nonce = "legacy-" + hashlib.sha256(what.encode()).hexdigest()[:32]
    return ConfirmLink(payload["email"], payload["keywords"], nonce)


def read_confirm_token(key: str, token: str, max_age: int | None = None) -> tuple[str, list[str]]:
    """(email, keywords) of a confirmation token; TokenError as for :func:`read_token`."""
    link = read_confirm_link(key, token, max_age)
    return link.email, link.keywords


def make_view_token(key: str, email: str, digest_date: date) -> str:
    """The token of one digest's web view: the address and the digest's date."""
    return _serializer(key, "view").dumps([email.lower(), digest_date.isoformat()])


def read_view_token(key: str, token: str, max_age: int | None = None) -> tuple[str, date]:
    """(email, digest date) of a web view token; TokenError as for :func:`read_token`."""
    payload = read_token(key, token, "view", max_age)
    try:
        email, day = payload
        if not isinstance(email, str) or not isinstance(day, str):
            raise TypeError
        return email, date.fromisoformat(day)
    except (TypeError, ValueError):
        raise TokenError("this link is not valid") from None


def digest_links(settings: Settings, key: str, email: str, digest_date: date | None = None) -> DigestLinks:
    """The signed links of one subscriber's digest; with ``digest_date``, its web view too."""
    base = settings.public_base_url
    mail_from = settings.mail_from.rsplit("<", 1)[-1].rstrip(">").strip()
    return DigestLinks(
        preferences=f"{base}/preferences/{make_token(key, email, 'prefs')}",
        unsubscribe=f"{base}/unsubscribe/{make_token(key, email, 'unsubscribe')}",
        unsubscribe_mailto=f"mailto:{mail_from}?subject=unsubscribe",
        web_view=f"{base}/digest/{make_view_token(key, email, digest_date)}" if digest_date else "",
        feedback=f"{base}/feedback/{make_token(key, email, 'feedback')}",
        feedback_key=_feedback_key(key),
        email=email.lower(),
    )


@functools.lru_cache(maxsize=16)
def _feedback_key(key: str) -> bytes:
    """The key of the per-paper MACs, derived from the signing key (never the key itself)."""
    return hashlib.sha256(f"paperboy-feedback-mac|{key}".encode()).digest()


@functools.lru_cache(maxsize=16)
def _keyed(mac_key: bytes) -> hmac.HMAC:
    return hmac.new(mac_key, digestmod=hashlib.sha256)


def feedback_mac(mac_key: bytes, email: str, paper_id: str, verdict: str) -> str:
    """22 characters that bind a feedback link to one address, paper and verdict."""
    mac = _feedback_hmac(mac_key, email, paper_id)
    mac.update(verdict.encode())
    return _mac_text(mac)


def _feedback_hmac(mac_key: bytes, email: str, paper_id: str) -> hmac.HMAC:
    """The MAC of a feedback link's message up to its verdict ("ADDRESS␟PAPER␟"): the key's
    pads are hashed once (hmac.new did it per link, 40 a digest), and a card's two links
    share the rest."""
    mac = _keyed(mac_key).copy()
    mac.update(f"{email.lower()}\x1f{paper_id}\x1f".encode())
    return mac


def _mac_text(mac: hmac.HMAC) -> str:
    return base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")


@dataclass(frozen=True)
class FeedbackLink:
    """What a "more / less like this" link says: who, which paper, which way."""

    email: str
    paper_id: str
    verdict: str


def read_feedback_link(key: str, token: str, verdict: str, paper_id: str, mac: str) -> FeedbackLink:
    """Check a feedback link (its signed token, then the MAC over address, paper and
    verdict); TokenError when anything is tampered with, expired or unknown."""
    email = read_token(key, token, "feedback")
    if verdict not in FEEDBACK_VERDICTS or not paper_id or len(paper_id) > 200:
        raise TokenError("this link is not valid")
    expected = feedback_mac(_feedback_key(key), email, paper_id, verdict)
    if not hmac.compare_digest(expected, mac or ""):
        raise TokenError("this link is not valid")
    return FeedbackLink(email, paper_id, verdict)
