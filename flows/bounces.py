"""Bounces: which digests the receiving side refused, and who stops getting mail because of it.

Takes the settings, the store and bounce reports (SMTP refusals recorded with the ledger,
delivery status notifications read from a mailbox); gives the bounce events in the store
and the subscribers suppressed (``active: false`` plus ``suppressed:`` date and reason,
written to their file through the subscribers library).

The rules:

* A hard bounce is a 5xx answer to RCPT or DATA while sending (store.record_outcome records
  it with the outcome), or a DSN whose recipient has ``Action: failed`` and a 5.x.x status.
  Anything else (4.x.x, ``delayed``) is soft: recorded, never counted; so are refusals of the
  message itself (5.3.4 too big for the system, 5.2.3 over a length limit: store.MESSAGE_REFUSALS),
  which every subscriber behind that server would get alike.
* A refusal that says the *sender* is at fault (SPF, DKIM or DMARC failed, the relay's IP on a
  blocklist, a receiver's policy against our mail: flows/refusals.py) is recorded as kind
  ``sender`` and never counted: it hits every subscriber at that provider at once, and nothing
  is wrong with their addresses. What was read says so apart, with what to check.
* A subscriber is suppressed after PAPERBOY_BOUNCE_LIMIT_NO_USER hard bounces with a 5.1.x
  status (the address itself is wrong: no such user or domain), or PAPERBOY_BOUNCE_LIMIT
  hard bounces of any kind. Each digest counts once (the same DSN read twice, or a DSN for a
  digest already refused while sending, adds nothing), and only digests after the
  subscriber's last suppression count: set active again, they start from zero.
* Asynchronous bounces find their digest by VERP (flows/verp.py): each digest's envelope
  sender carries a token naming it, keyed so nobody can forge a bounce that suppresses
  someone. A report without a valid token is reported as unmatched, never guessed.

Reports come from a Maildir or an IMAP folder (imaplib), each marked seen once its bounces
are recorded. They are parsed with the standard library's email package where they follow
RFC 3464 (multipart/report with a message/delivery-status part: Postfix, Exim, Exchange,
Gmail and most others), and with flufl.bounce's detectors for the older free-text shapes
(qmail, old Exim, ...), where the status comes from the text when it gives one.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import os
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flows.models import bad_address
from flows.settings import LOCAL_HOSTS, Settings
from flows.refusals import advice, quoted, sender_domains, sender_problem
from flows.store import Bounce, BounceCount, Store, bounce_kind
from flows.subscribers import Suppression, SubscriberError, SubscriberNotFound, locate_each, modify
from flows.verp import TokenMap, find_token

log = logging.getLogger(__name__)

MAX_REPORT = 10 * 1024 * 1024  # bytes of one message read; a bounce is a few KB
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


class BounceError(Exception):
    """A bounce mailbox cannot be read (names the directory or server and what to do)."""


# -- reading delivery status notifications -------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One recipient a report says was not delivered."""

    recipient: str
    action: str  # "failed" or "delayed"
    status: str  # "5.1.1"; "" when the report gives none
    code: int  # the SMTP reply code from the diagnostic, 0 when none
    diagnostic: str

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5.")


@dataclass
class Report:
    """What one message in the bounce mailbox says."""

    id: str  # Message-ID, or a hash of the message: the same report read twice has the same id
    shape: str  # "rfc3464", "flufl:<detector>", or "" when it is no bounce at all
    failures: list[Failure] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)  # where it was delivered: the VERP token is here


def read_report(raw: bytes) -> Report:
    """Parse one message from the bounce mailbox. Never raises on bad input: a message that
    is not a bounce (or cannot be parsed) gives a report without failures."""
    report_id = hashlib.sha256(raw).hexdigest()[:32]
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw[:MAX_REPORT])
        report = Report(_message_id(message) or f"sha256:{report_id}", "")
        report.addresses = _envelope_addresses(message)
        statuses = [part for part in message.walk() if part.get_content_type() == "message/delivery-status"]
        if statuses:
            report.shape = "rfc3464"
            report.failures = [failure for part in statuses for failure in _rfc3464(part)]
        else:
            report.shape, report.failures = _free_text(raw[:MAX_REPORT])
    except Exception as exc:  # hostile input: one bad message is skipped, never the run
        log.warning("cannot parse a message in the bounce mailbox (%s: %s)", type(exc).__name__, exc)
        return Report(f"sha256:{report_id}", "")
    return report


def _message_id(message: Message) -> str:
    value = str(message.get("Message-ID", "") or "").strip()
    return value[:200] if value.isascii() and value.isprintable() else ""


def _envelope_addresses(message: EmailMessage) -> list[str]:
    """Where the report was delivered (the VERP address), in the order worth trying: the
    headers the delivering MTA adds, then To, then the Return-Path of the returned message."""
    found: list[str] = []
    for name in _ENVELOPE_HEADERS:
        for value in message.get_all(name, []) or []:
            found += [address for _, address in getaddresses([str(value)]) if address]
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            headers = _returned_headers(part)
            if headers is not None:
                found += [parseaddr(str(value))[1] for value in headers.get_all("Return-Path", []) or []]
    return found


def _returned_headers(part: Message) -> Message | None:
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        return payload[0] if isinstance(payload, list) and payload else None
    text = part.get_payload(decode=True) or b""
    return HeaderParser(policy=policy.compat32).parsestr(text.decode("utf-8", "replace"))


def _rfc3464(part: Message) -> list[Failure]:
    """The per-recipient fields of a message/delivery-status part (RFC 3464 section 2.3)."""
    blocks = part.get_payload()
    if not isinstance(blocks, list):  # not parsed into blocks: split the text ourselves
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        blocks = [HeaderParser(policy=policy.compat32).parsestr(block)
                  for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]
    failures = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:  # the first block is per message
        recipient = _typed_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        action = str(block.get("Action", "")).strip().lower()
        if not recipient or action not in ("failed", "delayed"):
            continue  # delivered, relayed, expanded: not a bounce
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        status = _status(str(block.get("Status", ""))) or _status(diagnostic)
        failures.append(Failure(recipient, action, status, _code(diagnostic), diagnostic[:400]))
    return failures


def _typed_address(value: object) -> str:
    """``rfc822; ada@example.org`` → ``ada@example.org``."""
    text = str(value or "").strip()
    if ";" in text:
        kind, _, text = text.partition(";")
        if kind.strip().lower() not in ("rfc822", "x-unknown", ""):
            return ""
    return parseaddr(text.strip())[1] or text.strip().strip("<>")


def _status(text: str) -> str:
    found = _STATUS.search(text)
    return ".".join(found.groups()) if found else ""


def _code(diagnostic: str) -> int:
    _, _, reply = diagnostic.partition(";") if ";" in diagnostic[:12] else ("", "", diagnostic)
    found = _CODE.search(reply.strip())
    return int(found.group(1)) if found else 0


def _free_text(raw: bytes) -> tuple[str, list[Failure]]:
    """A bounce without a delivery-status part: flufl.bounce's detectors find the failed
    addresses; the status (hard or soft) comes from the text when it gives one."""
    from email import message_from_bytes

    from flufl.bounce import all_failures

    message = message_from_bytes(raw)  # flufl.bounce reads compat32 messages
    # It logs a traceback for every detector that trips over odd input, then raises: the
    # warning below says it once, without the trace.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector tripped over this message
        log.warning("bounce detectors failed on a message (%s: %s)", type(exc).__name__, exc)
        return "", []
    if not (temporary or permanent):
        return "", []
    text = _plain_text(message)
    failures = []
    for addresses, action in ((permanent, "failed"), (temporary, "delayed")):
        for address in sorted(addresses):
            recipient = address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address)
            status, code, diagnostic = _status_near(text, recipient)
            if action == "failed" and not status:
                status = "5.0.0" if not code or code >= 500 else "4.0.0"  # "permanent error" said in words
            failures.append(Failure(recipient, action, status, code, diagnostic))
    return "flufl", failures


def _plain_text(message: Message) -> str:
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


def _status_near(text: str, recipient: str) -> tuple[str, int, str]:
    """The first enhanced status and reply code after the recipient is named (or anywhere)."""
    at = text.lower().find(recipient.lower())
    window = text[at:at + 1500] if at >= 0 else text[:4000]
    status = _status(window)
    code = _CODE.search(window)
    line = next((line.strip() for line in window.splitlines() if status and status in line), "")
    return status, int(code.group(1)) if code else 0, " ".join(line.split())[:400]


# -- from reports to bounce events -------------------------------------------------------------------


@dataclass
class BounceRun:
    """What one pass over a bounce mailbox found."""

    messages: int = 0
    hard: int = 0  # new hard bounce events
    soft: int = 0
    repeated: int = 0  # events recorded before (the same report read again)
    not_bounces: int = 0  # auto-replies, reports without failed recipients, unreadable
    unmatched: list[str] = field(default_factory=list)  # reports without a valid VERP token
    suppressed: list[Suppressed] = field(default_factory=list)
    # New refusals of the sender (never counted), by kind of problem: (how many, the last reply).
    sender: dict[str, tuple[int, str]] = field(default_factory=dict)
    domains: str = ""  # the From domain (and the envelope sender's): what the advice names

    def line(self) -> str:
        refused = sum(n for n, _ in self.sender.values())
        text = (f"read {self.messages} message(s): {self.hard} new hard bounce(s), {self.soft} soft, "
                + (f"{refused} refused as a sender problem (not counted), " if refused else "")
                + f"{self.repeated} already counted, {self.not_bounces} not a bounce, "
                f"{len(self.unmatched)} unmatched; suppressed {len(self.suppressed)}")
        for problem, (count, reply) in sorted(self.sender.items()):
            text += (f"\n  {count} refused as a sender problem ({quoted(reply)}): "
                     f"{advice(problem, self.domains)}; nobody was suppressed for these")
        return text


def record_report(report: Report, store: Store, tokens: TokenMap, settings: Settings, run: BounceRun) -> None:
    """Record the bounce events of one report, mapped to their subscriber and digest."""
    run.messages += 1
    if not report.failures:
        run.not_bounces += 1
        return
    token = find_token(report.addresses, settings.bounce_address or "")
    subscriber = tokens.subscriber(token) if token else None
    if token is None or subscriber is None:
        why = "no VERP token" if token is None else "token matches no digest (other key or database?)"
        run.unmatched.append(f"{report.id}: {why}; recipients {', '.join(f.recipient for f in report.failures)}")
        return
    # One event per report: its worst failure (the digest had one recipient; a report that
    # lists several is about that one message after forwarding or expansion).
    failure = max(report.failures, key=lambda f: (f.hard, bad_address(f.status)))
    kind = bounce_kind(failure.status, failure.diagnostic) if failure.hard else "soft"
    detail = f"DSN ({report.shape}) for {failure.recipient}: {failure.action} {failure.status}"
    if failure.diagnostic:
        detail += f" ({failure.diagnostic})"
    bounce = Bounce(f"dsn:{report.id}:{subscriber.lower()}", subscriber, token.digest_date, kind,
                    bad_address(failure.status), failure.code, failure.status, "dsn", detail)
    if not store.record_bounce(bounce):
        run.repeated += 1
    elif kind == "hard":
        run.hard += 1
    elif kind == "sender":
        problem = sender_problem(failure.status, failure.diagnostic)
        count, _ = run.sender.get(problem, (0, ""))
        run.sender[problem] = (count + 1, failure.diagnostic or failure.status)
    else:
        run.soft += 1


# -- suppression -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suppressed:
    subscriber: str
    reason: str


def over_limit(count: BounceCount, settings: Settings) -> str:
    """Why this subscriber is to be suppressed now, or "" while under the limits."""
    if count.bad_address >= settings.bounce_limit_no_user:
        what = "hard bounce" if count.bad_address == 1 else f"{count.bad_address} hard bounces"
        return f"{what}, the address does not exist; last: {count.last_detail}"
    if count.hard >= settings.bounce_limit:
        return f"{count.hard} hard bounces; last: {count.last_detail}"
    return ""


def apply_suppressions(store: Store, settings: Settings, today: date | None = None) -> list[Suppressed]:
    """Suppress every subscriber over a bounce limit: ``active: false`` and ``suppressed:``
    in their file, then a row in the store (file first: a crash in between is repaired by
    the next call, which finds the file already suppressed and only adds the row)."""
    done = []
    # Hard bounces an earlier version recorded for what now reads as a refusal of the sender
    # (flows/refusals.py) stop counting, so an upgrade in the middle of a DMARC incident helps.
    store.reclassify_hard_bounces(lambda row: bounce_kind(row["status"] or "", bounce_reply(row)) == "sender")
    over = [(count, reason[:480]) for count in store.bounce_counts() if (reason := over_limit(count, settings))]
    # Their files, found in one pass over the folder: a morning when a thousand addresses of
    # ten thousand bounce must not read the folder a thousand times (≈ 3 minutes).
    files = locate_each(settings.subscribers_dir, [count.subscriber for count, _ in over])
    for count, reason in over:
        mark = Suppression(date=today or datetime.now(UTC).date(), reason=reason)
        # No file: removed meanwhile; the suppression row below still resets their count,
        # should they come back.
        path = files.get(count.subscriber)
        try:
            if path is not None:
                modify(settings.subscribers_dir, count.subscriber,
                       lambda current: {} if _suppressed(current) else {"active": False, "suppressed": mark},
                       at=path)
        except SubscriberNotFound:
            pass  # removed between the lookup and the edit: as above
        except SubscriberError as exc:  # a broken file: retried on the next call
            log.warning("cannot suppress %s: %s", count.subscriber, exc)
            continue
        store.record_suppression(count.subscriber, count.last_digest, reason)
        log.info("suppressed %s: %s", count.subscriber, reason)
        done.append(Suppressed(count.subscriber, reason))
    return done


def bounce_reply(row: dict) -> str:
    """The server's reply a bounce row keeps: after "RCPT: " for a refusal while sending
    (store.record_outcome); the diagnostic in "DSN (shape) for ADDRESS: failed STATUS (REPLY)"
    (`record_report`), "smtp;" dropped."""
    detail = row["detail"] or ""
    reply = detail.partition(": ")[2] or detail
    if row["source"] != "smtp":
        reply = reply.partition(" (")[2].removesuffix(")")
        reply = reply[5:].strip() if reply[:5].lower() == "smtp;" else reply
    return reply


def _suppressed(subscriber) -> bool:
    return not subscriber.active and subscriber.suppressed is not None


# -- mailboxes -------------------------------------------------------------------------------------------


def maildir_messages(directory: Path, include_seen: bool = False) -> Iterator[tuple[Path, bytes]]:
    """Each message of a Maildir not yet marked seen (with include_seen: every message)."""
    if not all((directory / sub).is_dir() for sub in ("new", "cur", "tmp")):
        raise BounceError(f"{directory} is not a Maildir (it needs new/, cur/ and tmp/); point --maildir "
                          "at the mailbox your MTA delivers bounces+*@ to")
    for sub in ("new", "cur"):
        for path in sorted((directory / sub).iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if sub == "cur" and not include_seen and "S" in _flags(path.name):
                continue
            try:
                with path.open("rb") as handle:
                    yield path, handle.read(MAX_REPORT)
            except FileNotFoundError:
                continue  # another reader moved it meanwhile


def _flags(name: str) -> str:
    return name.partition(":2,")[2]


def mark_seen(path: Path) -> None:
    """Move a Maildir message to cur/ with the S (seen) flag, as mail readers do."""
    base, _, flags = path.name.partition(":2,")
    target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}"
    if target != path:
        try:
            os.replace(path, target)
        except FileNotFoundError:
            pass


def process_maildir(directory: Path, store: Store, settings: Settings, key: str,
                    include_seen: bool = False) -> BounceRun:
    """Read every unseen message of the Maildir, record its bounces, mark it seen, and apply
    the suppression rules."""
    return process(maildir_messages(directory, include_seen), mark_seen, store, settings, key)


def process(messages: Iterable[tuple[Any, bytes]], mark: Callable[[Any], None], store: Store,
            settings: Settings, key: str) -> BounceRun:
    """Record the bounces of each (handle, message), mark each one seen once recorded, then
    apply the suppression rules."""
    run = BounceRun(domains=sender_domains(settings.from_domain, settings.bounce_address))
    tokens = TokenMap(key, store.digest_subscribers)
    for handle, raw in messages:
        record_report(read_report(raw), store, tokens, settings, run)
        mark(handle)
    run.suppressed = apply_suppressions(store, settings)
    return run


# -- IMAP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapTarget:
    host: str
    port: int
    user: str
    folder: str
    implicit_tls: bool

    def __str__(self) -> str:
        mode = "TLS" if self.implicit_tls else "STARTTLS"
        return f"IMAP {self.host}:{self.port} ({mode}) as {self.user}, folder {self.folder}"


def imap_target(url: str) -> ImapTarget:
    parts = urlsplit(url)
    implicit = parts.scheme == "imaps"
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapTarget(parts.hostname or "", parts.port or (993 if implicit else 143),
                      unquote(parts.username or ""), folder, implicit)


@contextmanager
def imap_mailbox(settings: Settings, tls_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0) -> Iterator[imaplib.IMAP4]:
    """A logged-in IMAP connection with the bounce folder selected (read-write). STARTTLS is
    required unless the server is this machine; errors name the server and what to do."""
    if not settings.bounce_imap_url:
        raise BounceError("set PAPERBOY_BOUNCE_IMAP_URL (e.g. imaps://bounces@imap.example.org/INBOX) "
                          "and PAPERBOY_BOUNCE_IMAP_PASSWORD, or read a Maildir with --maildir")
    target = imap_target(settings.bounce_imap_url)
    password = settings.bounce_imap_password.get_secret_value() if settings.bounce_imap_password else ""
    context = tls_context or ssl.create_default_context()
    try:
        if target.implicit_tls:
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(target.host, target.port, ssl_context=context,
                                                     timeout=timeout)
        else:
            client = imaplib.IMAP4(target.host, target.port, timeout=timeout)
            if "STARTTLS" in client.capabilities:
                client.starttls(ssl_context=context)
            elif target.host not in LOCAL_HOSTS:
                client.shutdown()
                raise BounceError(f"{target}: the server offers no STARTTLS, and the password would cross "
                                  "the network in clear; use imaps:// or a server with STARTTLS")
    except (OSError, imaplib.IMAP4.error) as exc:
        raise BounceError(f"{target}: cannot connect ({type(exc).__name__}: {exc}); check the host, the "
                          "port and the TLS mode (imaps:// = TLS on 993, imap:// = STARTTLS on 143)") from None
    try:
        try:
            client.login(target.user, password)
        except imaplib.IMAP4.error as exc:
            raise BounceError(f"{target}: login refused ({_imap_text(exc)}); check the user in "
                              "PAPERBOY_BOUNCE_IMAP_URL and PAPERBOY_BOUNCE_IMAP_PASSWORD") from None
        status, detail = client.select(_imap_quote(target.folder))
        if status != "OK":
            raise BounceError(f"{target}: cannot open the folder ({_imap_text(detail)}); name it at the "
                              "end of PAPERBOY_BOUNCE_IMAP_URL, e.g. …/INBOX")
        yield client
    except (OSError, imaplib.IMAP4.error) as exc:
        raise BounceError(f"{target}: the connection failed ({type(exc).__name__}: {exc})") from None
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            client.logout()


def imap_messages(client: imaplib.IMAP4, include_seen: bool = False) -> Iterator[tuple[bytes, bytes]]:
    """(uid, message) for each unseen message of the selected folder (every one with
    include_seen), fetched without setting \\Seen: that happens once it is recorded."""
    status, data = client.uid("SEARCH", "ALL" if include_seen else "UNSEEN")
    if status != "OK":
        raise BounceError(f"the IMAP server refused to search the folder: {_imap_text(data)}")
    for uid in (data[0] or b"").split():
        status, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = next((item[1] for item in fetched or [] if isinstance(item, tuple) and len(item) == 2), None)
        if status == "OK" and raw is not None:
            yield uid, raw[:MAX_REPORT]


def process_imap(settings: Settings, store: Store, key: str, include_seen: bool = False,
                 tls_context: ssl.SSLContext | None = None) -> BounceRun:
    """`process_maildir` for the bounce mailbox on an IMAP server: each message is flagged
    \\Seen once its bounces are recorded."""
    with imap_mailbox(settings, tls_context) as client:
        return process(imap_messages(client, include_seen),
                       lambda uid: client.uid("STORE", uid, "+FLAGS", "(\\Seen)"), store, settings, key)


def _imap_quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap_text(value: object) -> str:
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:200]
