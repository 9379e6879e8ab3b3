"""Double opt-in: a rate-limited confirmation mail, then a subscriber file once confirmed.

Limits (all at once; the page answers the same whichever one stopped a mail):

- per mailbox: 3 mails a day, 5 minutes apart, counted on the *canonical* mailbox
  (:func:`canonical_mailbox`), so "A.Da+x@gmail.com" and "ada@gmail.com" share one count;
- per client: ``PAPERBOY_SIGNUP_PER_CLIENT`` an hour from one network address (an IPv6
  client: its /64, which one subscriber line usually gets whole);
- for everyone: ``PAPERBOY_SIGNUP_PER_HOUR`` an hour.

Mails go out from an :class:`Outbox`: one thread with a bounded queue, off the request
path, so a slow relay delays confirmation mails but never the pages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from jinja2 import Environment

from flows.deliver import Outgoing, RelayError, deliver_sync
from flows.links import MAX_AGE, digest_links, make_confirm_token
from flows.models import Outcome
from flows.render import ascii_html, digest_css, inline_css
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import SubscriberExists, add, update

log = logging.getLogger(__name__)

MAILS_PER_DAY = 3  # confirmation mails one address can be sent in SIGNUP_WINDOW
SIGNUP_WINDOW = timedelta(hours=24)
SIGNUP_GAP = timedelta(minutes=5)  # between two confirmation mails to one address
CLIENT_WINDOW = timedelta(hours=1)  # for the per-client and overall limits
CONFIRM_HOURS = MAX_AGE["confirm"] // 3600
OUTBOX_CAPACITY = 200  # confirmation mails waiting to be sent; more are dropped (and logged)

# Providers whose mailboxes ignore dots in the local part (Gmail's documented rule).
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


@dataclass(frozen=True)
class RateLimit:
    per_window: int = MAILS_PER_DAY
    window: timedelta = SIGNUP_WINDOW
    gap: timedelta = SIGNUP_GAP
    per_client: int = 5  # per CLIENT_WINDOW, from one client address
    per_hour: int = 100  # per CLIENT_WINDOW, from everyone

    @classmethod
    def of(cls, settings: Settings) -> "RateLimit":
        return cls(per_client=settings.signup_per_client, per_hour=settings.signup_per_hour)


def canonical_mailbox(email: str) -> str:
    """The mailbox an address reaches, as far as the rate limit is concerned.

    Case is folded everywhere (the domain is case-insensitive by RFC 5321, and the local
    part in practice at every large provider). A "+tag" is dropped everywhere: "+" is the
    sub-address separator of Gmail, Outlook.com/Microsoft 365, iCloud, Fastmail, Proton,
    Yahoo (which also offers "-" aliases, not folded) and of Postfix and Exim by default.
    Dots in the local part are dropped for Gmail (gmail.com, googlemail.com), the one large
    provider that ignores them. Folding an address too much only makes its limit stricter.
    """
    local, at, domain = email.strip().lower().rpartition("@")
    if not at:
        return email.strip().lower()
    domain = DOMAIN_ALIASES.get(domain, domain)
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def address_key(key: str, email: str) -> str:
    """What the signups table stores for an address: a keyed hash of its canonical mailbox."""
    return hmac.new(key.encode(), f"signup:{canonical_mailbox(email)}".encode(), hashlib.sha256).hexdigest()


def client_key(key: str, host: str | None) -> str | None:
    """What the signups table stores for a client: a keyed hash of its address (IPv6: the /64)."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        network = host.lower()
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if isinstance(address, ipaddress.IPv6Address):
            network = str(ipaddress.ip_network(f"{address}/64", strict=False))
        else:
            network = str(address)
    return hmac.new(key.encode(), f"client:{network}".encode(), hashlib.sha256).hexdigest()


def claim(settings: Settings, key: str, email: str, limit: RateLimit,
          now: datetime | None = None, client: str | None = None) -> str:
    """Record a confirmation mail for this address asked for by ``client`` (its network
    address), unless a limit stops it: "" when it may be sent, else the limit's name."""
    with Store(settings.db_path) as store:
        return store.admit_signup(
            address_key(key, email), now or datetime.now(UTC), limit=limit.per_window,
            window=limit.window, min_gap=limit.gap, client=client_key(key, client),
            client_limit=limit.per_client, total_limit=limit.per_hour, short_window=CLIENT_WINDOW)


def use_confirm_link(settings: Settings, nonce: str, now: datetime | None = None) -> bool:
    """Mark a confirmation link used; False if it had been used already."""
    now = now or datetime.now(UTC)
    with Store(settings.db_path) as store:
        return store.use_link(nonce, now, forget_before=now - timedelta(seconds=MAX_AGE["confirm"]))


def confirm_link_used(settings: Settings, nonce: str) -> bool:
    with Store(settings.db_path) as store:
        return store.link_used(nonce)


def release_confirm_link(settings: Settings, nonce: str) -> None:
    with Store(settings.db_path) as store:
        store.release_link(nonce)


@dataclass(frozen=True)
class Confirmation:
    """One confirmation mail waiting in the :class:`Outbox`."""

    email: str
    keywords: tuple[str, ...]
    queued_at: float
    kind: str = "confirm"  # or "welcome", "welcome back": the mail after a confirmed sign-up


class Outbox:
    """Confirmation mails sent one at a time by one worker thread, never by a request.

    The queue is bounded: past ``capacity`` waiting mails a new one is dropped and logged
    (its sign-up was counted; the person can ask again later). :meth:`health` says whether
    mail is moving: a send stuck for longer than ``stall_after`` seconds, a full queue, or
    several failures in a row make the app's /healthz answer 503.
    """

    def __init__(self, send: Callable[[Confirmation], bool], *, capacity: int = OUTBOX_CAPACITY,
                 stall_after: float = 60.0, failures_allowed: int = 3) -> None:
        self._send = send
        self._queue: queue.Queue[Confirmation | None] = queue.Queue(maxsize=capacity)
        self.capacity = capacity
        self.stall_after = stall_after
        self.failures_allowed = failures_allowed
        self.sent = self.failed = self.dropped = self.failing = 0
        self.busy_since: float | None = None
        self.last_error = ""
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, email: str, keywords: list[str], kind: str = "confirm") -> bool:
        """Queue a mail; False (and logged) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(Confirmation(email, tuple(keywords), time.monotonic(), kind))
        except queue.Full:
            self.dropped += 1
            log.warning("sign-up: %d confirmation mails are waiting already; dropped the one to %s",
                        self.capacity, email)
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="confirmation-outbox", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            self.busy_since = time.monotonic()
            try:
                ok = self._send(item)
            except Exception as exc:  # noqa: BLE001 - one mail's failure must not stop the worker
                log.exception("sign-up: sending the confirmation to %s failed", item.email)
                ok, self.last_error = False, type(exc).__name__
            finally:
                self.busy_since = None
            if ok:
                self.sent, self.failing = self.sent + 1, 0
            else:
                self.failed, self.failing = self.failed + 1, self.failing + 1

    def waiting(self) -> int:
        return self._queue.qsize()

    def health(self) -> tuple[bool, str]:
        """(healthy, one line saying how the outbox is doing)."""
        problems = []
        busy = time.monotonic() - self.busy_since if self.busy_since is not None else 0.0
        if busy > self.stall_after:
            problems.append(f"one send has taken {busy:.0f} s (the SMTP relay is slow or stuck)")
        if self.waiting() >= self.capacity:
            problems.append("the queue is full")
        if self.failing >= self.failures_allowed:
            problems.append(f"the last {self.failing} sends failed")
        line = (f"confirmation mails: {self.waiting()} waiting, {self.sent} sent, {self.failed} failed, "
                f"{self.dropped} dropped")
        return not problems, line + ("; " + "; ".join(problems) if problems else "")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the mails already queued, waiting at most ``timeout`` seconds."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


SHOWN_KEYWORDS = 12  # named in a confirmation mail; the rest are counted
# What a confirmation mail may repeat of what a stranger typed into the sign-up form: plain
# research terms. Anything that looks like a link, an address or a phone number is only
# counted (the confirm page shows it), so the form cannot be used to mail such text to anyone.
_PLAIN_KEYWORD = re.compile(r'[-\w "^.:+/()]{1,60}')
_LINK_LIKE = re.compile(r"https?|\bwww\b|@|\.[^\W\d_]{2,}\b|\d{5,}|/{2}", re.IGNORECASE)


def keywords_to_show(keywords: Sequence[str]) -> tuple[list[str], int]:
    """(the keywords a confirmation mail names, how many more there are)."""
    shown = [k for k in keywords if _PLAIN_KEYWORD.fullmatch(k) and not _LINK_LIKE.search(k)]
    shown = shown[:SHOWN_KEYWORDS]
    return shown, len(keywords) - len(shown)


def styled_mail(env: Environment, template: str, context: dict, settings: Settings) -> str:
    """A mail's HTML in the digest's look: digest.css inlined (premailer, once per mail:
    these mails are few), non-ASCII as character references."""
    html = env.get_template(template).render(context)
    return ascii_html(inline_css(html, digest_css(Path(settings.templates_dir))))


def _message(settings: Settings, email: str, subject: str, text: str, html: str, kind: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = email
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "paperboy.localhost"
    message["Message-ID"] = make_msgid(kind, domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def confirmation_message(env: Environment, settings: Settings, email: str,
                         confirm_url: str, keywords: Sequence[str] = ()) -> EmailMessage:
    """The confirmation mail: the keywords asked for (plain terms only, see
    `keywords_to_show`) and the confirm link, in the digest's look."""
    shown, hidden = keywords_to_show(keywords)
    context = {"email": email, "confirm_url": confirm_url, "hours": CONFIRM_HOURS,
               "shown": shown, "hidden": hidden}
    return _message(settings, email, "Confirm your Paperboy subscription",
                    env.get_template("confirm_mail.txt.j2").render(context),
                    styled_mail(env, "confirm_mail.html.j2", context, settings), "confirm")


def welcome_message(env: Environment, settings: Settings, key: str, email: str,
                    keywords: Sequence[str], again: bool = False) -> EmailMessage:
    """The mail after a confirmed sign-up: every keyword (the address's owner confirmed them)
    and the links to change them or leave, in the digest's look."""
    links = digest_links(settings, key, email)
    context = {"email": email, "keywords": list(keywords), "again": again,
               "preferences_url": links.preferences, "unsubscribe_url": links.unsubscribe}
    subject = "Welcome back to Paperboy" if again else "Welcome to Paperboy: your keywords"
    return _message(settings, email, subject, env.get_template("welcome_mail.txt.j2").render(context),
                    styled_mail(env, "welcome_mail.html.j2", context, settings), "welcome")


def send_welcome(env: Environment, settings: Settings, key: str, email: str,
                 keywords: Sequence[str], again: bool = False) -> bool:
    """Mail the welcome through the configured SMTP server; True if it was accepted."""
    return _deliver(settings, welcome_message(env, settings, key, email, keywords, again), "welcome mail")


def _deliver(settings: Settings, message: EmailMessage, what: str) -> bool:
    email = str(message["To"])
    outcomes: list[Outcome] = []
    try:
        deliver_sync([Outgoing(email, date.today(), message, ())], settings, on_outcome=outcomes.append)
    except RelayError as exc:  # the relay refuses everything (TLS, login, unreachable)
        log.warning("could not send a %s to %s: %s", what, email, exc)
        return False
    sent = bool(outcomes) and outcomes[0].status == "sent"
    if sent:
        log.info("sent a %s to %s", what, email)
    else:
        log.warning("could not send a %s to %s: %s", what, email,
                    outcomes[0].error if outcomes else "no outcome")
    return sent


def send_confirmation(env: Environment, settings: Settings, key: str, email: str,
                      keywords: list[str]) -> bool:
    """Mail the confirm link through the configured SMTP server; True if it was accepted."""
    url = f"{settings.public_base_url}/confirm/{make_confirm_token(key, email, keywords)}"
    return _deliver(settings, confirmation_message(env, settings, email, url, keywords),
                    "subscription confirmation")


def confirm(directory: Path, email: str, keywords: list[str]) -> str:
    """Create the subscriber's file, or reactivate it with these keywords; "added" or "reactivated"."""
    try:
        add(directory, email, keywords=keywords)
        return "added"
    except SubscriberExists:
        update(directory, email, active=True, keywords=keywords)
        return "reactivated"
