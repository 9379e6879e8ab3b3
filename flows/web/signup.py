"""Double opt-in: a rate-limited confirmation mail, then a subscriber file once confirmed."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from jinja2 import Environment

from flows.deliver import Outgoing, deliver_sync
from flows.links import MAX_AGE, make_confirm_token
from flows.models import Outcome
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import SubscriberExists, add, update

log = logging.getLogger(__name__)

MAILS_PER_DAY = 3  # confirmation mails one address can be sent in SIGNUP_WINDOW
SIGNUP_WINDOW = timedelta(hours=24)
SIGNUP_GAP = timedelta(minutes=5)  # between two confirmation mails to one address
CONFIRM_HOURS = MAX_AGE["confirm"] // 3600


@dataclass(frozen=True)
class RateLimit:
    per_window: int = MAILS_PER_DAY
    window: timedelta = SIGNUP_WINDOW
    gap: timedelta = SIGNUP_GAP


def address_key(key: str, email: str) -> str:
    """What the signups table stores for an address: a keyed hash, not the address."""
    return hmac.new(key.encode(), f"signup:{email.lower()}".encode(), hashlib.sha256).hexdigest()


def claim(settings: Settings, key: str, email: str, limit: RateLimit,
          now: datetime | None = None) -> bool:
    """True (and recorded) if this address may be sent a confirmation mail now."""
    with Store(settings.db_path) as store:
        return store.claim_signup(address_key(key, email), now or datetime.now(UTC),
                                  limit=limit.per_window, window=limit.window, min_gap=limit.gap)


def confirmation_message(env: Environment, settings: Settings, email: str,
                         confirm_url: str) -> EmailMessage:
    """A small plain-text + HTML message carrying the confirm link.

    The keywords stay inside the signed link (the confirm page shows them): text typed by
    a stranger never goes out in a mail from this server.
    """
    context = {"email": email, "confirm_url": confirm_url, "hours": CONFIRM_HOURS}
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = email
    message["Subject"] = "Confirm your Paperboy subscription"
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "paperboy.localhost"
    message["Message-ID"] = make_msgid("confirm", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template("confirm_mail.txt.j2").render(context),
                        charset="utf-8", cte="quoted-printable")
    message.add_alternative(env.get_template("confirm_mail.html.j2").render(context),
                            subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def send_confirmation(env: Environment, settings: Settings, key: str, email: str,
                      keywords: list[str]) -> bool:
    """Mail the confirm link through the configured SMTP server; True if it was accepted."""
    url = f"{settings.public_base_url}/confirm/{make_confirm_token(key, email, keywords)}"
    message = confirmation_message(env, settings, email, url)
    outcomes: list[Outcome] = []
    item = Outgoing(email, date.today(), message, ())
    deliver_sync([item], settings, on_outcome=outcomes.append)
    sent = bool(outcomes) and outcomes[0].status == "sent"
    if sent:
        log.info("sent a subscription confirmation to %s", email)
    else:
        log.warning("could not send a subscription confirmation to %s: %s", email,
                    outcomes[0].error if outcomes else "no outcome")
    return sent


def confirm(directory: Path, email: str, keywords: list[str]) -> str:
    """Create the subscriber's file, or reactivate it with these keywords; "added" or "reactivated"."""
    try:
        add(directory, email, keywords=keywords)
        return "added"
    except SubscriberExists:
        update(directory, email, active=True, keywords=keywords)
        return "reactivated"
