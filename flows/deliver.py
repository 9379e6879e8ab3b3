"""Send rendered digests over a few long-lived SMTP connections, reporting every outcome.

`deliver` opens up to ``settings.smtp_connections`` aiosmtplib connections. Each
connection's worker pulls the next `Outgoing` from one shared, lazy iterator, sends it,
and hands the `Outcome` to ``on_outcome`` before pulling again: the caller writes the
ledger there, so a rerun sends each remaining digest exactly once.

The one window SMTP cannot close is between the final dot and the server's reply: the
server may have taken the message while we do not know it. ``on_in_flight`` is called
just before the message data goes out (after the server's 354), so the caller can record
the digest as *in flight*; a process killed in that window leaves that record, and the
next run knows the digest is uncertain (at most one per connection), instead of
believing it was never sent.

Faults:

- 4xx replies, dropped connections and timeouts before the final dot are transient: the
  same message is sent again (reconnecting when needed) after an exponential backoff
  with jitter, up to ``settings.smtp_retries`` times. A connection lost after the final
  dot (the server closed it without answering) is sent again too: a server that drops a
  transaction has, in practice, not queued it.
- No reply to the final dot within ``settings.smtp_data_timeout`` (RFC 5321 §4.5.3.2:
  10 minutes) is *uncertain*: the server may still deliver it, so it is never sent again
  blindly; the outcome says so and the next run applies PAPERBOY_UNCERTAIN.
- 5xx replies, for the recipient or the message, are permanent for that digest only
  (``Outcome.permanent``). So is an address that needs SMTPUTF8 when the server does not
  offer it.
- A 5xx that says the *sender* is at fault (flows/refusals.py: SPF, DKIM or DMARC failed,
  the relay's IP on a blocklist, a receiver's policy) is permanent for that digest too,
  but it hits every subscriber at that provider alike. After `SENDER_HOLD_LIMIT` of them
  in a row at one recipient domain (none of its digests accepted between them), the
  domain is *held back* for the rest of this call, and for the later batches of the run
  when the caller passes one `SenderHolds` to each (the thread runner does; a Dask batch
  keeps its own): its remaining digests are not tried, and are recorded deferred with the
  reason, so a rerun tries them again.
- A fault that will hit every message the same way trips the circuit breaker: a TLS
  certificate that does not verify, a refused login, no STARTTLS on offer, every
  connection unable to connect within its retries, `RELAY_4XX_LIMIT` transient
  failures in a row with no success between them, or `SENDER_RELAY_LIMIT` refusals of
  the sender in a row with no digest accepted between them (whatever the domains: the
  relay, or everybody, refuses our mail). Sending stops and `RelayError` (one
  message naming host, port and TLS mode) is raised; the digest in hand is not
  recorded, nor are the refusals that led to it, so nothing is marked failed for it and
  the rerun sends everything left.
- A stop request (flows.stopping, e.g. SIGTERM): each connection finishes the
  transaction in hand (bounded by the SMTP timeouts), records it, and takes no new
  message; `DeliveryStats.stopped` says why. A digest waiting for a retry is left for
  the rerun, unrecorded.

Pacing: ``settings.smtp_rate`` messages per second across all connections (each SMTP
transaction, retries included, takes the next slot of one schedule per process), and
``budget``: at most that many messages, then no new ones (`DeliveryStats.capped`).

Exceptions raised by the iterator or by the callbacks stop the whole run and propagate:
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
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from flows.models import Outcome
from flows.outgoing import Outgoing, wire_bytes
from flows.redact import redact, redact_values
from flows.refusals import advice, sender_domains, sender_problem
from flows.settings import Settings
from flows.stopping import stop_requested

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0  # seconds; one step of the exponential backoff never waits longer
MAX_REASON = 200  # characters of an error kept in the ledger
RELAY_4XX_LIMIT = 10  # transient failures in a row, none sent between them, that stop the run
# A relay that limits how fast (or how much) one client sends answers 4xx once over its limit;
# Postfix: "450 4.7.1 Error: too much mail from …", SES/Workspace: "454 Throttling failure",
# "4.7.0 … rate limited", "421 4.7.28 … unusual rate". Pacing is the cure, not a rerun now.
_RATE_LIMIT_REPLY = re.compile(r"\b4\.7\.\d+\b|\brate\b|throttl|too (?:much|many)", re.IGNORECASE)
RATE_HINT = ("; it looks like a sending limit: set PAPERBOY_SMTP_RATE (messages per second) and "
             "PAPERBOY_DAILY_CAP to the relay's limits")
# Refusals of the sender (flows/refusals.py) in a row: at one recipient domain, after which its
# other digests are held back (for the run: see `SenderHolds`); across all, after which the
# run stops.
SENDER_HOLD_LIMIT = 5
SENDER_RELAY_LIMIT = 10
HELD = "held back"  # how the reason of a held-back digest begins (flows/report.py counts them)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _rate_limited(reason: str) -> bool:
    return bool(_RATE_LIMIT_REPLY.search(reason))


@dataclass(slots=True)
class DeliveryStats:
    """What one `deliver` call did."""

    sent: int = 0
    failed: int = 0
    uncertain: int = 0  # no reply to the final dot: the server may or may not have them
    retried: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    stopped: str = ""  # why sending stopped early (a stop request), "" if it did not
    capped: bool = False  # the budget ran out: items were left untaken
    held: int = 0  # not tried: their domain refused us as a sender (recorded deferred)


class RelayError(Exception):
    """The SMTP relay fails every message the same way; the run must stop (nothing lost)."""


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


class _NoReply(Exception):
    """The final dot went out and no reply came back in time: the outcome is unknown."""


async def deliver(
    items: Iterable[Outgoing],
    settings: Settings,
    on_outcome: Callable[[Outcome], None],
    *,
    on_in_flight: Callable[[Outgoing], None] | None = None,
    progress: Callable[[int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
    budget: int | None = None,
    holds: SenderHolds | None = None,
) -> DeliveryStats:
    """Send every item, calling `on_outcome` for each as soon as its fate is known and
    `on_in_flight` just before its data goes out.

    `progress` gets the running count of finished items. `tls_context` replaces the
    certificate verification PAPERBOY_SMTP_CA_FILE sets up. `budget`: send at most this
    many messages. Raises `RelayError` when the relay fails every message the same way.
    """
    started = time.monotonic()
    run = _Run(items, settings, on_outcome, on_in_flight, progress, budget, holds)
    local_hostname = settings.smtp_helo or await asyncio.to_thread(default_helo, settings)
    context = tls_context or tls_context_for(settings)
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(settings.smtp_connections):
                connection = _Connection(run, _client(settings, context, local_hostname))
                run.alive += 1
                group.create_task(connection.work())
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    run.stats.seconds = time.monotonic() - started
    if run.broken:
        if run.suspects:
            log.warning("%d digest(s) that failed meanwhile (retries used up, or refused as a sender "
                        "problem) are left for the rerun, not recorded", len(run.suspects))
        _log_summary(run.stats)
        raise RelayError(f"SMTP relay {relay_name(settings)}: {run.broken}")
    run.record_suspects()
    _log_summary(run.stats)
    return run.stats


def deliver_sync(
    items: Iterable[Outgoing],
    settings: Settings,
    on_outcome: Callable[[Outcome], None],
    *,
    on_in_flight: Callable[[Outgoing], None] | None = None,
    progress: Callable[[int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
    budget: int | None = None,
    holds: SenderHolds | None = None,
) -> DeliveryStats:
    """`deliver` for synchronous callers (e.g. a worker thread without an event loop)."""
    return asyncio.run(deliver(items, settings, on_outcome, on_in_flight=on_in_flight,
                               progress=progress, tls_context=tls_context, budget=budget, holds=holds))


def relay_name(settings: Settings) -> str:
    """"smtp.example.org:587 (STARTTLS)": what every relay error names."""
    mode = {"starttls": "STARTTLS", "tls": "implicit TLS", "none": "no TLS"}[settings.smtp_tls]
    return f"{settings.smtp_host}:{settings.smtp_port} ({mode})"


def default_helo(settings: Settings) -> str:
    """The name we greet the server with when PAPERBOY_SMTP_HELO is unset: the From address's
    domain (what receiving systems check it against), else this host's fully qualified name."""
    domain = settings.from_domain
    if "." in domain and domain.lower() not in ("localhost", "localhost.localdomain"):
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    return socket.getfqdn()


def tls_context_for(settings: Settings) -> ssl.SSLContext | None:
    """The system's trusted CAs plus PAPERBOY_SMTP_CA_FILE (a private CA), or None for the
    library's defaults."""
    if settings.smtp_ca_file is None or settings.smtp_tls == "none":
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return context


def _wire_size(data: bytes) -> int:
    lines = data.count(b"\n")
    if data.endswith(b"\r\n") and lines == data.count(b"\r\n") == data.count(b"\r"):
        return len(data)
    return len(normalize_message_line_endings(data))


async def transmit(client: aiosmtplib.SMTP, sender: str, recipient: str, message: EmailMessage | bytes,
                   *, data_timeout: float | None = None,
                   before_data: Callable[[], None] | None = None) -> None:
    """One SMTP transaction for one recipient (what the pipeline and the benchmark's ceiling
    both send): MAIL (with SIZE, and SMTPUTF8 when an address or header is not ASCII), RCPT,
    DATA; ``before_data`` runs after the server's 354, just before the message goes out.
    The reply to the final dot is waited for up to ``data_timeout`` (aiosmtplib waits for
    both DATA replies with the command timeout); no reply in time raises `_NoReply`."""
    utf8 = not (sender.isascii() and recipient.isascii())
    data = wire_bytes(message, utf8=utf8)
    utf8 = utf8 or not data.isascii()
    aiosmtplib.email.parse_address(recipient)  # ValueError before any command, like sendmail
    options = [f"size={_wire_size(data)}"] if client.supports_extension("size") else []
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                f"{recipient} needs SMTPUTF8 (an address that is not ASCII), "
                "which this SMTP server does not offer")
        options.append("SMTPUTF8")
        if client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await client.mail(sender, options=options, encoding=encoding)
        await client.rcpt(recipient, encoding=encoding)
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        if before_data is not None:
            before_data()
        await _finish_data(client, data, data_timeout)
    except aiosmtplib.SMTPResponseException:
        with suppress(ConnectionError, aiosmtplib.SMTPException):
            await client.rset()  # reset the envelope for the next attempt, as sendmail does
        raise


async def _finish_data(client: aiosmtplib.SMTP, data: bytes, timeout: float | None) -> None:
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    payload = _LEADING_DOT.sub(b"..", normalize_message_line_endings(data))
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    protocol.write(payload + b".\r\n")  # from here on, the server may take the message
    try:
        reply = await protocol.read_response(timeout=timeout)
    except aiosmtplib.SMTPTimeoutError:
        client.close()  # a late reply must never be paired with another command
        raise _NoReply(f"no reply to the final dot within {timeout:g} s "
                       "(PAPERBOY_SMTP_DATA_TIMEOUT); the server may have accepted it") from None
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)


class Pacer:
    """One schedule of send slots, ``rate`` per second, shared by every connection of the
    process (and by consecutive `deliver` calls, so batches do not restart it)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = 0.0

    async def wait(self) -> bool:
        """Wait for this connection's slot; False when a stop was requested meanwhile (the
        caller sends nothing then). Waits in short steps: at a slow rate a slot can be many
        seconds away, and a Ctrl-C must not wait for it."""
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        while (left := slot - time.monotonic()) > 0:
            if stop_requested():
                return False
            await asyncio.sleep(min(left, 0.2))
        return stop_requested() is None


_PACERS: dict[float, Pacer] = {}


def pacer_for(rate: float | None) -> Pacer | None:
    if not rate:
        return None
    if rate not in _PACERS:
        _PACERS[rate] = Pacer(rate)
    return _PACERS[rate]


@dataclass
class SenderHolds:
    """Refusals of the sender at each recipient domain, carried from batch to batch of a run:
    how many in a row (reset when one of its digests is accepted), and the domains held back
    (domain → the reason their held-back digests are recorded with)."""

    refused: dict[str, int] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)


class _Run:
    """State shared by the connections of one `deliver` call."""

    def __init__(
        self,
        items: Iterable[Outgoing],
        settings: Settings,
        on_outcome: Callable[[Outcome], None],
        on_in_flight: Callable[[Outgoing], None] | None,
        progress: Callable[[int], None] | None,
        budget: int | None,
        holds: SenderHolds | None = None,
    ) -> None:
        self.source = iter(items)
        self.handed_back: deque[Outgoing] = deque()
        self.settings = settings
        self.sender = parseaddr(settings.mail_from)[1]
        self.on_outcome = on_outcome
        self.on_in_flight = on_in_flight
        self.progress = progress
        self.budget = budget
        self.pacer = pacer_for(settings.smtp_rate)
        self.stats = DeliveryStats()
        self.alive = 0  # connection workers still running
        self.broken = ""  # why the circuit breaker tripped
        self.streak = 0  # transient failures in a row, across connections
        # Digests that used up their retries while nothing at all got through: the relay's
        # fault, perhaps. Recorded (deferred) once anything gets through or sending ends; left
        # unrecorded if the breaker trips ("no digest is marked failed for it").
        self.suspects: list[Outcome] = []
        # Refusals of the sender in a row per recipient domain and the domains held back (the
        # caller's, to keep them in its later batches of the run), and in a row across all
        # (reset by any accepted digest: this call's breaker).
        holds = holds if holds is not None else SenderHolds()
        self.refused, self.held = holds.refused, holds.held
        self.refused_in_row = 0

    def halted(self) -> bool:
        """Whether to take no new work: the breaker tripped, or a stop was requested."""
        if self.broken:
            return True
        reason = stop_requested()
        if reason and not self.stats.stopped:
            self.stats.stopped = reason
            log.warning("stop requested (%s): finishing the messages in hand, taking no new ones", reason)
        return reason is not None

    def next_item(self) -> Outgoing | None:
        while True:
            if self.halted():
                return None
            if self.handed_back:
                item = self.handed_back.popleft()
            elif self.budget is not None and self.budget <= 0:
                self.stats.capped = True
                return None
            else:
                item = next(self.source, None)
                if item is not None and self.budget is not None:
                    self.budget -= 1
            if item is None or (why := self.held.get(_domain(item.subscriber))) is None:
                return item
            self.hold(item, why)

    def hold(self, item: Outgoing, why: str) -> None:
        """Record a digest of a held-back domain as deferred, untried (the rerun tries it)."""
        if self.budget is not None:
            self.budget += 1  # never offered to the relay: PAPERBOY_DAILY_CAP does not count it
        self.stats.held += 1
        self.on_outcome(_failed(item, why, 0))
        if self.progress is not None:
            self.progress(self.stats.sent + self.stats.failed + self.stats.uncertain + self.stats.held)

    def refused_as_sender(self, outcome: Outcome) -> bool:
        """Count a refusal of the sender (flows/refusals.py), holding back its domain or
        tripping the breaker when they repeat; True when it is one. It is recorded once a
        digest gets through or sending ends, and not at all if the breaker trips."""
        if not (outcome.status == "failed" and outcome.permanent and 500 <= outcome.smtp_code < 600):
            return False
        problem = sender_problem(outcome.smtp_status, outcome.error)
        if not problem:
            return False
        domain = _domain(outcome.subscriber)
        self.refused[domain] = in_row = self.refused.get(domain, 0) + 1
        self.refused_in_row += 1
        self.suspects.append(outcome)
        hint = advice(problem, sender_domains(self.settings.from_domain, self.settings.bounce_address))
        if in_row >= SENDER_HOLD_LIMIT and domain not in self.held:
            self.held[domain] = (f"{HELD}: {domain} refused {in_row} digests in a row as a sender problem "
                                 f"(last: {outcome.error}); not tried again in this run: {hint}")
            log.warning("%s refused %d digests in a row as a sender problem (last: %s); holding back its "
                        "other digests for the rest of this run (deferred: a rerun tries them): %s",
                        domain, in_row, outcome.error, hint)
        if self.refused_in_row >= SENDER_RELAY_LIMIT:
            before = (f"after {self.stats.sent} digest(s) were accepted" if self.stats.sent
                      else "and none was accepted")
            self.trip(f"{self.refused_in_row} digests in a row were refused as a sender problem {before} "
                      f"(last: {outcome.error}): {hint}; nobody was suppressed and nothing was marked "
                      "failed for them, run again once it is fixed")
        return True

    def record(self, outcome: Outcome, settled: bool = False) -> None:
        if not settled and outcome.status == "failed" and not outcome.permanent and self.streak >= outcome.attempts:
            self.suspects.append(outcome)
            return
        if not settled and self.refused_as_sender(outcome):
            return
        if outcome.status == "sent":
            self.stats.sent += 1
            self.streak = 0
            self.refused.pop(_domain(outcome.subscriber), None)
            self.refused_in_row = 0
        elif outcome.status == "uncertain":
            self.stats.uncertain += 1
            log.warning("digest %s for %s is uncertain: %s", outcome.digest_date, outcome.subscriber,
                        outcome.error)
        else:
            self.stats.failed += 1
            log.warning(
                "digest %s for %s failed after %d attempt(s): %s",
                outcome.digest_date, outcome.subscriber, outcome.attempts, outcome.error,
            )
        self.on_outcome(outcome)
        if self.progress is not None:
            self.progress(self.stats.sent + self.stats.failed + self.stats.uncertain + self.stats.held)
        if outcome.status == "sent" and self.suspects:
            self.record_suspects()  # the relay works: they were their own trouble

    def record_suspects(self) -> None:
        suspects, self.suspects = self.suspects, []
        for outcome in suspects:
            self.streak = 0  # recorded as what they are: this digest's own trouble
            self.record(outcome, settled=True)

    def trip(self, reason: str) -> None:
        if not self.broken:
            self.broken = reason
            log.error("SMTP relay %s: %s; stopping", relay_name(self.settings), reason)

    def transient(self, fault: _Fault) -> bool:
        """Count a transient failure; True when the streak trips the breaker."""
        self.streak += 1
        self.last_transient = fault.reason
        if self.streak >= RELAY_4XX_LIMIT:
            before = (f"after {self.stats.sent} digest(s) were accepted" if self.stats.sent
                      else "and none succeeded")
            self.trip(f"{self.streak} attempts in a row failed with a temporary error {before} "
                      f"(last: {fault.reason}); the relay refuses everything for now, run again later"
                      f"{RATE_HINT if _rate_limited(fault.reason) else ''}")
        return bool(self.broken)

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
        """Send one item with retries; None when it is left unrecorded (this connection gave
        up and handed it back, the breaker tripped, or a stop came during its backoff)."""
        run, settings = self.run, self.run.settings
        fault = _Fault("not attempted")
        for attempt in range(1, settings.smtp_retries + 2):
            if attempt > 1:
                run.stats.retried += 1
                await asyncio.sleep(_backoff(settings.smtp_retry_delay, attempt - 1))
                if run.halted():
                    return None
            if run.pacer is not None and not await run.pacer.wait():
                run.halted()  # notes the stop in the stats
                return None
            try:
                await self.connect()
            except _CannotConnect as exc:
                fault = exc.fault
                if fault.permanent:
                    run.trip(fault.reason)
                    return None
                if attempt > settings.smtp_retries:
                    self.give_up(item, fault.reason)
                    return None
                continue
            try:
                await self.transaction(item)
            except _NoReply as exc:
                return _outcome(item, "uncertain", attempt, reason=str(exc))
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                fault = self.classify(exc)
                if fault.reconnect:
                    self.client.close()
                if fault.permanent:
                    return _failed(item, fault.reason, attempt, permanent=True, fault=fault)
                if run.transient(fault):
                    return None
                log.info("retrying digest for %s: %s", item.subscriber, fault.reason)
                continue
            return _outcome(item, "sent", attempt)
        return _failed(item, fault.reason, settings.smtp_retries + 1, fault=fault)

    async def transaction(self, item: Outgoing) -> None:
        """MAIL, RCPT, DATA for one message; `_NoReply` when the final dot got no answer."""
        run = self.run
        before_dot = None if run.on_in_flight is None else (lambda: run.on_in_flight(item))  # type: ignore[misc]
        await transmit(self.client, item.envelope_from or run.sender, item.subscriber, item.message,
                       data_timeout=run.settings.smtp_data_timeout, before_data=before_dot)

    async def connect(self) -> None:
        if self.client.is_connected:
            return
        try:
            await self.client.connect()
            if self.client.is_ehlo_or_helo_needed:
                await self.client.ehlo()  # the extensions (SMTPUTF8, SIZE) before the first MAIL
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.client.close()
            raise _CannotConnect(self.classify_connect(exc)) from None
        if self.opened:
            self.run.stats.reconnects += 1
        self.opened += 1

    def give_up(self, item: Outgoing, reason: str) -> None:
        """Retire this connection; the last one to retire trips the breaker."""
        if self.run.alive > 1:
            self.run.handed_back.append(item)
            log.warning("an SMTP connection gave up, %d left: %s", self.run.alive - 1, reason)
            return
        self.run.trip(f"cannot connect after {self.run.settings.smtp_retries + 1} attempts: {reason}; "
                      "is the relay up, and are PAPERBOY_SMTP_HOST and PAPERBOY_SMTP_PORT right?")

    def classify(self, exc: BaseException) -> _Fault:
        fault = _classify(exc)
        return replace(fault, reason=self.run.redact(fault.reason))

    def classify_connect(self, exc: BaseException) -> _Fault:
        fault = _classify(exc)
        advice = _fatal_on_connect(exc)
        reason = self.run.redact(fault.reason)
        if advice is None:
            return _Fault(reason, reconnect=True)
        return _Fault(f"{reason}; {advice}" if advice else reason, permanent=True, reconnect=True)

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


def _fatal_on_connect(exc: BaseException) -> str | None:
    """Advice for connection errors that no amount of retrying fixes (configuration or
    trust problems), or None for a transient one."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and exc.code >= 500:
        return "login refused: check PAPERBOY_SMTP_USER and PAPERBOY_SMTP_PASSWORD"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return "" if exc.code >= 500 else None
    if type(exc) is aiosmtplib.SMTPException:  # no STARTTLS / no AUTH on offer
        return "check PAPERBOY_SMTP_TLS (starttls, tls or none) and PAPERBOY_SMTP_PORT"
    cause: BaseException | None = exc
    for _ in range(10):  # the chain of causes, bounded (a context chain can loop)
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ("the relay's TLS certificate is not trusted: if it comes from a private CA, "
                    "set PAPERBOY_SMTP_CA_FILE to that CA's certificate (PEM)")
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return "TLS failed: check PAPERBOY_SMTP_TLS (starttls or tls) against the port"
        cause = cause.__cause__ or cause.__context__
    return None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _backoff(first: float, retry: int) -> float:
    step = min(first * 2 ** (retry - 1), MAX_BACKOFF)
    return step * random.uniform(0.5, 1.5)  # jitter spreads reconnects of many workers


def _outcome(item: Outgoing, status: str, attempts: int, *, reason: str = "") -> Outcome:
    return Outcome(
        subscriber=item.subscriber,
        digest_date=item.digest_date,
        status=status,  # type: ignore[arg-type]
        message_id=item.id(),
        paper_ids=item.paper_ids,
        error=reason,
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
    done = stats.sent + stats.failed + stats.uncertain
    rate = done / stats.seconds if stats.seconds else 0.0
    log.info(
        "delivery: %d sent, %d failed, %d uncertain, %d held back, %d retries, %d reconnects in %.1f s "
        "(%.0f msg/s)%s",
        stats.sent, stats.failed, stats.uncertain, stats.held, stats.retried, stats.reconnects, stats.seconds, rate,
        f"; stopped: {stats.stopped}" if stats.stopped else "",
    )
