"""Send rendered digests over a few long-lived SMTP connections, reporting every outcome.

`deliver` opens up to ``settings.smtp_connections`` aiosmtplib connections. Each
connection's worker pulls the next `Outgoing` from one shared, lazy iterator, sends it,
and hands the `Outcome` to ``on_outcome`` before pulling again: the caller writes the
ledger there, so a crash loses at most the digests in flight (one per connection), and a
rerun sends each remaining digest exactly once.

Faults:

- 4xx replies, dropped connections and timeouts are transient: the same message is sent
  again (reconnecting when needed) after an exponential backoff with jitter, up to
  ``settings.smtp_retries`` times. A message whose fate is unknown (the connection died
  before the server's final answer) is sent again, never dropped.
- 5xx replies, for the recipient or the message, are permanent for that digest only
  (``Outcome.permanent``); connection-level trouble never is, since the next run may
  well succeed.
- A connection that cannot be (re)established within its retries gives up: its digest
  goes back to the others and its worker stops. When the last connection gives up the
  server counts as unreachable: that digest and every remaining one are reported failed
  at once with the reason, without further network attempts (the iterator is still
  drained, so each of them gets a ledger entry and the report shows why). Retries of
  all connections run concurrently, so an unreachable server costs one backoff
  schedule of wall time, not one per digest. Errors that retrying cannot fix (a 5xx
  login refusal, no STARTTLS, a certificate that does not verify) skip the backoff.

Exceptions raised by the iterator or by ``on_outcome`` stop the whole run and propagate:
the caller's ledger is the truth, and sending without recording would break it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import ssl
import time
from collections import deque
from contextlib import suppress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from flows.models import Outcome
from flows.redact import redact, redact_values
from flows.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0  # seconds; one step of the exponential backoff never waits longer
MAX_REASON = 200  # characters of an error kept in the ledger


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


@dataclass(slots=True)
class DeliveryStats:
    """What one `deliver` call did."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    reconnects: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Fault:
    reason: str
    permanent: bool = False  # retrying cannot help (5xx, unsendable address, bad config)
    reconnect: bool = False  # the connection is gone or unusable
    code: int = 0  # the server's reply, when it refused: code, enhanced status, command
    status: str = ""
    stage: str = ""


class _CannotConnect(Exception):
    """A connection (or its TLS/AUTH setup) could not be established."""

    def __init__(self, fault: _Fault) -> None:
        super().__init__(fault.reason)
        self.fault = fault


async def deliver(
    items: Iterable[Outgoing],
    settings: Settings,
    on_outcome: Callable[[Outcome], None],
    *,
    progress: Callable[[int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> DeliveryStats:
    """Send every item, calling `on_outcome` for each as soon as its fate is known.

    `progress` gets the running count of finished items (sent + failed). `tls_context`
    replaces the default certificate verification (e.g. a private CA).
    """
    started = time.monotonic()
    run = _Run(items, settings, on_outcome, progress)
    local_hostname = await asyncio.to_thread(socket.getfqdn)
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(settings.smtp_connections):
                connection = _Connection(run, _client(settings, tls_context, local_hostname))
                run.alive += 1
                group.create_task(connection.work())
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    run.fail_leftovers()
    run.stats.seconds = time.monotonic() - started
    _log_summary(run.stats)
    return run.stats


def deliver_sync(
    items: Iterable[Outgoing],
    settings: Settings,
    on_outcome: Callable[[Outcome], None],
    *,
    progress: Callable[[int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> DeliveryStats:
    """`deliver` for synchronous callers (e.g. a worker thread without an event loop)."""
    return asyncio.run(
        deliver(items, settings, on_outcome, progress=progress, tls_context=tls_context)
    )


async def transmit(client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
    """One SMTP transaction for a finished message: aiosmtplib's sendmail for one recipient,
    minus its second pass over the whole message to work out the SIZE it announces
    (a third of the client's work for a 50 KB digest); `data` with CRLF line ends needs none."""
    aiosmtplib.email.parse_address(recipient)  # ValueError before any command, like sendmail
    options = [f"size={_wire_size(data)}"] if client.supports_extension("size") else []
    try:
        await client.mail(sender, options=options)
        await client.rcpt(recipient)
        await client.data(data)
    except aiosmtplib.SMTPResponseException:
        with suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()  # reset the envelope for the next attempt, as sendmail does
        raise


def _wire_size(data: bytes) -> int:
    lines = data.count(b"\n")
    if data.endswith(b"\r\n") and lines == data.count(b"\r\n") == data.count(b"\r"):
        return len(data)
    return len(normalize_message_line_endings(data))


def wire_bytes(message: EmailMessage | bytes, *, utf8: bool = False) -> bytes:
    """The message as `deliver` puts it on the wire (before SMTP's dot-stuffing); ``utf8``
    as aiosmtplib sends a message to a non-ASCII address (SMTPUTF8: headers in UTF-8)."""
    if isinstance(message, bytes):
        return message
    return aiosmtplib.email.flatten_message(message, utf8=utf8)


class _Run:
    """State shared by the connections of one `deliver` call."""

    def __init__(
        self,
        items: Iterable[Outgoing],
        settings: Settings,
        on_outcome: Callable[[Outcome], None],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.source = iter(items)
        self.handed_back: deque[Outgoing] = deque()
        self.settings = settings
        self.sender = parseaddr(settings.mail_from)[1]
        self.on_outcome = on_outcome
        self.progress = progress
        self.stats = DeliveryStats()
        self.alive = 0  # connection workers still running
        self.unreachable = ""  # why the last connection gave up

    def next_item(self) -> Outgoing | None:
        if self.handed_back:
            return self.handed_back.popleft()
        return next(self.source, None)

    def record(self, outcome: Outcome, *, quiet: bool = False) -> None:
        if outcome.status == "sent":
            self.stats.sent += 1
        else:
            self.stats.failed += 1
            if not quiet:
                log.warning(
                    "digest %s for %s failed after %d attempt(s): %s",
                    outcome.digest_date, outcome.subscriber, outcome.attempts, outcome.error,
                )
        self.on_outcome(outcome)
        if self.progress is not None:
            self.progress(self.stats.sent + self.stats.failed)

    def fail_leftovers(self) -> None:
        reason = self.unreachable or "no SMTP connection left"
        failed_before = self.stats.failed
        while (item := self.next_item()) is not None:
            self.record(_failed(item, reason, attempts=0), quiet=True)
        if left := self.stats.failed - failed_before:
            log.warning("%d digest(s) not attempted, no SMTP connection could be made: %s", left, reason)

    def redact(self, text: str) -> str:
        """The password out, as typed and as AUTH sends it in base64 (a relay may quote it)."""
        secret = self.settings.smtp_password
        if secret is not None and secret.get_secret_value():
            text = redact_values(text, [secret.get_secret_value()])
        return redact(text)[:MAX_REASON]


class _Connection:
    """One long-lived SMTP connection and the worker loop that feeds it."""

    def __init__(self, run: _Run, client: aiosmtplib.SMTP) -> None:
        self.run = run
        self.client = client
        self.opened = 0

    async def work(self) -> None:
        try:
            await self.feed()
        except BaseException:
            self.client.close()  # cancelled or failing: no polite QUIT
            raise
        finally:
            self.run.alive -= 1
        await self.close()

    async def feed(self) -> None:
        while (item := self.run.next_item()) is not None:
            outcome = await self.send(item)
            if outcome is None:
                return
            self.run.record(outcome)

    async def send(self, item: Outgoing) -> Outcome | None:
        """Send one item with retries; None when this connection gave up (see `give_up`)."""
        settings = self.run.settings
        fault = _Fault("not attempted")
        for attempt in range(1, settings.smtp_retries + 2):
            if attempt > 1:
                self.run.stats.retried += 1
                await asyncio.sleep(_backoff(settings.smtp_retry_delay, attempt - 1))
            try:
                await self.connect()
            except _CannotConnect as exc:
                fault = exc.fault
                if fault.permanent or attempt > settings.smtp_retries:
                    self.give_up(item, attempt, fault.reason)
                    return None
                continue
            sender = item.envelope_from or self.run.sender
            try:
                if isinstance(item.message, bytes):
                    await transmit(self.client, sender, item.subscriber, item.message)
                else:
                    await self.client.send_message(
                        item.message, sender=sender, recipients=[item.subscriber]
                    )
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                fault = self.classify(exc)
                if fault.reconnect:
                    self.client.close()
                if fault.permanent:
                    return _failed(item, fault.reason, attempt, permanent=True, fault=fault)
                log.info("retrying digest for %s: %s", item.subscriber, fault.reason)
                continue
            return _sent(item, attempt)
        return _failed(item, fault.reason, settings.smtp_retries + 1, fault=fault)

    async def connect(self) -> None:
        if self.client.is_connected:
            return
        try:
            await self.client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _CannotConnect(self.classify_connect(exc)) from None
        if self.opened:
            self.run.stats.reconnects += 1
        self.opened += 1

    def give_up(self, item: Outgoing, attempts: int, reason: str) -> None:
        """Retire this connection; the last one to retire declares the server unreachable."""
        if self.run.alive > 1:
            self.run.handed_back.append(item)
            log.warning("an SMTP connection gave up, %d left: %s", self.run.alive - 1, reason)
            return
        self.run.unreachable = reason
        self.run.record(_failed(item, reason, attempts))

    def classify(self, exc: BaseException) -> _Fault:
        fault = _classify(exc)
        return replace(fault, reason=self.run.redact(fault.reason))

    def classify_connect(self, exc: BaseException) -> _Fault:
        fault = _classify(exc)
        fatal = _fatal_on_connect(exc)
        return _Fault(self.run.redact(fault.reason), permanent=fatal, reconnect=True)

    async def close(self) -> None:
        if not self.client.is_connected:
            return
        try:
            await self.client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.client.close()


def _client(settings: Settings, tls_context: ssl.SSLContext | None, local_hostname: str) -> aiosmtplib.SMTP:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=settings.smtp_timeout,
        username=settings.smtp_user,
        password=password if settings.smtp_user else None,
        tls_context=tls_context,
        local_hostname=local_hostname,
    )


def _classify(exc: BaseException) -> _Fault:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return _reply_fault(refused.code, refused.message, "RCPT")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply_fault(exc.code, exc.message, _STAGES.get(type(exc), ""))
    if isinstance(exc, (aiosmtplib.SMTPNotSupported, ValueError)):
        return _Fault(f"cannot be sent: {exc}", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return _Fault(f"connection lost: {exc}", reconnect=True)
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return _Fault(f"timeout: {exc}", reconnect=True)
    return _Fault(str(exc) or type(exc).__name__, reconnect=True)


_STAGES = {
    aiosmtplib.SMTPSenderRefused: "MAIL",
    aiosmtplib.SMTPRecipientRefused: "RCPT",
    aiosmtplib.SMTPDataError: "DATA",
}
_ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _reply_fault(code: int, message: str, stage: str = "") -> _Fault:
    reason = f"{code} {message}".strip()
    found = _ENHANCED_STATUS.match(message)
    details = {"code": code, "status": found.group(1) if found else "", "stage": stage}
    if 500 <= code < 600:
        return _Fault(reason, permanent=True, **details)
    # 421 means the server is closing this channel; anything outside 4xx is garbage
    return _Fault(reason, reconnect=code == 421 or not 400 <= code < 500, **details)


def _fatal_on_connect(exc: BaseException) -> bool:
    """Connection errors that no amount of retrying fixes: configuration or trust problems."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    if type(exc) is aiosmtplib.SMTPException:  # no STARTTLS / no AUTH on offer
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__
    return False


def _backoff(first: float, retry: int) -> float:
    step = min(first * 2 ** (retry - 1), MAX_BACKOFF)
    return step * random.uniform(0.5, 1.5)  # jitter spreads reconnects of many workers


def _sent(item: Outgoing, attempts: int) -> Outcome:
    return Outcome(
        subscriber=item.subscriber,
        digest_date=item.digest_date,
        status="sent",
        message_id=item.id(),
        paper_ids=item.paper_ids,
        attempts=attempts,
        at=datetime.now(UTC),
        contents=item.contents,
    )


def _failed(item: Outgoing, reason: str, attempts: int, *, permanent: bool = False,
            fault: _Fault | None = None) -> Outcome:
    return Outcome(
        subscriber=item.subscriber,
        digest_date=item.digest_date,
        status="failed",
        message_id=item.id(),
        paper_ids=item.paper_ids,
        error=reason,
        attempts=attempts,
        at=datetime.now(UTC),
        permanent=permanent,
        smtp_code=fault.code if fault else 0,
        smtp_status=fault.status if fault else "",
        smtp_stage=fault.stage if fault else "",
    )


def _log_summary(stats: DeliveryStats) -> None:
    rate = (stats.sent + stats.failed) / stats.seconds if stats.seconds else 0.0
    log.info(
        "delivery: %d sent, %d failed, %d retries, %d reconnects in %.1f s (%.0f msg/s)",
        stats.sent, stats.failed, stats.retried, stats.reconnects, stats.seconds, rate,
    )
