"""A real aiosmtpd server on loopback that records what it accepts and misbehaves on request.

Fixtures: `smtp_server` (plain SMTP), `smtp_server_factory` (TLS modes, several servers),
`tls_cert` (a throwaway self-signed certificate for 127.0.0.1 / localhost).
Helpers: `settings_for` points `Settings` at a server, `digest_message` builds a realistic
multipart/alternative message. The server only listens on a port, so a sender running in
another process (the crash tests) can use it as well.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from flows.mailsink import LoopbackController
from flows.models import message_id_for
from flows.settings import Settings

Stage = Literal["MAIL", "RCPT", "DATA"]
TlsMode = Literal["starttls", "tls"] | None

DEFAULT_TEXT = {4: "4.3.0 try again later", 5: "5.3.0 message rejected"}


class Received:
    """One message the server accepted (answered 250 to), with its envelope."""

    def __init__(self, mail_from: str, rcpt_tos: list[str], raw: bytes, connection: int, tls: bool):
        self.mail_from = mail_from
        self.rcpt_tos = tuple(rcpt_tos)
        self.raw = raw
        self.connection = connection  # serial number of the TCP connection it came on
        self.tls = tls
        self.at = time.monotonic()

    @cached_property
    def message(self) -> EmailMessage:
        # parsed on first use so that throughput measurements do not pay for it
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass(frozen=True)
class TestCert:
    """A self-signed certificate valid for 127.0.0.1 and localhost."""

    __test__ = False  # not a test class, whatever its name says

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))


class RecordingSMTPServer:
    """aiosmtpd on 127.0.0.1 (a free port) whose handler records messages and injects faults.

    Fault switches may be flipped from the test thread while the server runs:
    `fail_next`, `reject_recipient`, `refuse_domain`, `drop_connection_after`, `hold_after`/`release`,
    `require_auth`. Only messages answered with 250 appear in `received`.
    """

    def __init__(self, *, tls: TlsMode = None, cert: TestCert | None = None, smtputf8: bool = False) -> None:
        if tls and cert is None:
            raise ValueError("a TLS server needs a certificate")
        self.host = "127.0.0.1"
        self.tls = tls
        self._cert = cert
        self._smtputf8 = smtputf8  # offer SMTPUTF8 (addresses with non-ASCII characters)
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.connections = 0
        self.events: list[tuple[str, str, int]] = []  # ("received", rcpt, connection)
        self._faults: dict[str, list[str]] = {"MAIL": [], "RCPT": [], "DATA": []}
        self._rejected: dict[str, str] = {}
        self._refused_domains: dict[tuple[str, str], str] = {}  # (stage, domain) -> reply
        self.refusals: list[tuple[str, str]] = []  # (stage, recipient) of each refusal by domain
        self._admitted = 0  # DATA commands let through to acceptance (drop/hold counting)
        self._drop_after: int | None = None
        self._drops_left = 0
        self._hold_after: int | None = None
        self._refuse_after: int | None = None
        self._refusal = ""
        self._reply_delay: tuple[float, float] = (0.0, 0.0)  # seconds before answering the final dot
        self.helo_names: list[str] = []  # the name each EHLO/HELO gave
        self._released = threading.Event()
        self.held = 0
        self._credentials: tuple[str, str] | None = None
        self._echo_password = False
        self.auth_attempts = 0
        self._controller: _CountingController | None = None

    # lifecycle

    def start(self) -> RecordingSMTPServer:
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": 0,
            "server_hostname": "paperboy-test",
            "authenticator": self._authenticate,
            "auth_require_tls": False,
            "enable_SMTPUTF8": self._smtputf8,
        }
        if self.tls == "starttls":
            assert self._cert is not None
            kwargs.update(tls_context=self._cert.server_context(), require_starttls=True)
        elif self.tls == "tls":
            assert self._cert is not None
            kwargs.update(ssl_context=self._cert.server_context())
        self._controller = _CountingController(self, _Hooks(self), **kwargs)
        self._controller.start()
        with self._lock:
            self.connections = 0  # forget the controller's own start-up probe
        return self

    def stop(self) -> None:
        # held DATA commands are cancelled with the server's tasks, never recorded
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def port(self) -> int:
        assert self._controller is not None, "server not started"
        return self._controller.port

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [received.message for received in self.received]

    def recipients(self) -> list[str]:
        with self._lock:
            return [rcpt for received in self.received for rcpt in received.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` messages were received; True if they were."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # fault switches

    def fail_next(self, code: int = 451, times: int = 1, stage: Stage = "DATA", text: str | None = None) -> None:
        """Answer the next `times` commands of `stage` with `code` (then behave again)."""
        reply = f"{code} {text or DEFAULT_TEXT[code // 100]}"
        with self._lock:
            self._faults[stage].extend([reply] * times)

    def reject_recipient(self, address: str, code: int = 550, text: str = "5.1.1 mailbox unavailable") -> None:
        """Refuse RCPT TO for `address`, every time."""
        with self._lock:
            self._rejected[address.lower()] = f"{code} {text}"

    def refuse_domain(self, domain: str, code: int = 550, text: str = "5.7.26 unauthenticated",
                      stage: Literal["RCPT", "DATA"] = "RCPT") -> None:
        """Refuse every recipient at `domain` at RCPT TO, or their message at the end of DATA,
        every time: what a provider answers a sender it does not trust (DMARC, a blocklist)."""
        with self._lock:
            self._refused_domains[(stage, domain.lower())] = f"{code} {text}"

    def _domain_refusal(self, stage: str, recipients: list[str]) -> str | None:
        with self._lock:
            for recipient in recipients:
                reply = self._refused_domains.get((stage, recipient.rpartition("@")[2].lower()))
                if reply:
                    self.refusals.append((stage, recipient))
                    return reply
        return None

    def accept_recipient(self, address: str) -> None:
        """Undo `reject_recipient`."""
        with self._lock:
            self._rejected.pop(address.lower(), None)

    def drop_connection_after(self, n_messages: int, times: int = 1) -> None:
        """After `n_messages` accepted, close the connection on the next DATA, unanswered.

        The dropped message is not recorded: the client cannot know its fate and must resend.
        """
        with self._lock:
            self._drop_after = self._admitted + n_messages
            self._drops_left = times

    def delay_replies(self, low: float, high: float | None = None) -> None:
        """Wait between `low` and `high` seconds (uniformly drawn) before answering each final
        dot, as a remote relay does; the message is taken (recorded) before the wait, so a
        client that gives up waiting leaves it delivered."""
        self._reply_delay = (low, low if high is None else high)

    def refuse_after(self, n_messages: int | None, code: int = 451, text: str | None = None) -> None:
        """After `n_messages` accepted, answer every MAIL with `code` (None: stop refusing)."""
        with self._lock:
            self._refuse_after = None if n_messages is None else self._admitted + n_messages
            self._refusal = f"{code} {text or DEFAULT_TEXT[code // 100]}"

    def hold_after(self, n_messages: int) -> None:
        """After `n_messages` accepted, keep later DATA commands unanswered until `release`.

        A held message whose client goes away is dropped, never recorded.
        """
        with self._lock:
            self._hold_after = self._admitted + n_messages
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def require_auth(self, user: str, password: str, *, echo_on_failure: bool | str = False) -> None:
        """Accept only these credentials (AUTH PLAIN/LOGIN) and refuse MAIL without them.

        `echo_on_failure` plays a careless server that quotes the offered password back
        (``"base64"``: the whole AUTH PLAIN line, as sent).
        """
        self._credentials = (user, password)
        self._echo_password = echo_on_failure

    # aiosmtpd hooks (run in the server's thread)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        self.auth_attempts += 1
        ok = (
            self._credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self._credentials
        )
        if not ok and self._echo_password == "base64" and isinstance(data, LoginPassword):
            # what a relay quoting the AUTH PLAIN line back would say
            line = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 AUTH PLAIN {line} rejected")
        if not ok and self._echo_password and isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {data.password.decode()}")
        return AuthResult(success=ok, handled=False)

    async def on_mail(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self._credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if reply := self._take_fault("MAIL"):
            return reply
        with self._lock:
            if self._refuse_after is not None and self._admitted >= self._refuse_after:
                return self._refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def on_rcpt(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if reply := (self._take_fault("RCPT") or self._rejected.get(address.lower())
                     or self._domain_refusal("RCPT", [address])):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def on_data(self, server: Any, session: Any, envelope: Any) -> str:
        if reply := self._take_fault("DATA") or self._domain_refusal("DATA", envelope.rcpt_tos):
            return reply
        action = self._admit()
        if action == "drop":
            server.transport.close()
            await asyncio.Event().wait()  # cancelled by aiosmtpd when the connection goes
        if action == "hold":
            await self._held()
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content,
            connection=getattr(server, "connection_serial", 0),
            tls=server.transport.get_extra_info("ssl_object") is not None,
        )
        with self._lock:
            self.received.append(received)
            for rcpt in received.rcpt_tos:
                self.events.append(("received", rcpt, received.connection))
        low, high = self._reply_delay
        if high > 0:
            await asyncio.sleep(random.uniform(low, high))
        return "250 OK"

    async def on_ehlo(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        with self._lock:
            self.helo_names.append(hostname)
        session.host_name = hostname
        return responses

    def _take_fault(self, stage: str) -> str | None:
        with self._lock:
            faults = self._faults[stage]
            return faults.pop(0) if faults else None

    def _admit(self) -> str:
        with self._lock:
            if self._drop_after is not None and self._admitted >= self._drop_after and self._drops_left:
                self._drops_left -= 1
                return "drop"
            if self._hold_after is not None and self._admitted >= self._hold_after and not self._released.is_set():
                return "hold"
            self._admitted += 1
            return "accept"

    async def _held(self) -> None:
        with self._lock:
            self.held += 1
        try:
            while not self._released.is_set():
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                self.held -= 1
        with self._lock:
            self._admitted += 1


class _Hooks:
    """The handler aiosmtpd sees; bare, because it turns every `auth_*` name into a mechanism."""

    def __init__(self, recorder: RecordingSMTPServer) -> None:
        self.handle_MAIL = recorder.on_mail
        self.handle_RCPT = recorder.on_rcpt
        self.handle_DATA = recorder.on_data
        self.handle_EHLO = recorder.on_ehlo


class _CountingController(LoopbackController):
    """Numbers every TCP connection, so tests can see connection reuse."""

    def __init__(self, recorder: RecordingSMTPServer, hooks: _Hooks, **kwargs: Any) -> None:
        super().__init__(hooks, **kwargs)
        self.recorder = recorder

    def factory(self) -> Any:
        smtp = super().factory()
        with self.recorder._lock:
            self.recorder.connections += 1
            smtp.connection_serial = self.recorder.connections
        return smtp


def make_cert(directory: Path) -> TestCert:
    """Write a fresh self-signed certificate (EC P-256) for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCert(cert_file, key_file)


def make_private_ca(directory: Path) -> tuple[Path, TestCert]:
    """A private CA and a server certificate it signed for 127.0.0.1/localhost, as an
    operator's internal relay has: (the CA's PEM file, the server's certificate and key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Paperboy Test Private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.internal")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "relay.pem", directory / "relay.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, TestCert(cert_file, key_file)


def settings_for(server: RecordingSMTPServer, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings aimed at `server`: plain SMTP, a database under tmp_path, fast retries."""
    values: dict[str, Any] = {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_tls": "none",
        "smtp_timeout": 5.0,
        "smtp_retry_delay": 0.01,
        "smtp_retries": 3,
        "db_path": tmp_path / "paperboy.db",
        "mail_from": "Paperboy <paperboy@example.org>",
    }
    values.update(overrides)
    return Settings(**values)


def digest_message(
    subscriber: str,
    digest_date: date,
    *,
    sender: str = "Paperboy <paperboy@example.org>",
    html_padding: int = 0,
) -> EmailMessage:
    """A small but real digest-shaped email: text first, HTML second, deterministic Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = subscriber
    message["Subject"] = f"Your papers for {digest_date:%b %d}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id_for(subscriber, digest_date)
    message["List-Id"] = "Paperboy <paperboy.localhost>"
    message.set_content(f"Hello {subscriber},\n\n1. Scaling laws revisited\n")
    filler = "<p>" + "x" * html_padding + "</p>" if html_padding else ""
    message.add_alternative(
        f"<html><body><h1>Papers for {digest_date:%Y-%m-%d}</h1>"
        f"<ol><li><a href=\"https://arxiv.org/abs/2401.00001\">Scaling laws revisited</a></li></ol>"
        f"{filler}</body></html>",
        subtype="html",
    )
    return message


@pytest.fixture
def smtp_server() -> Iterator[RecordingSMTPServer]:
    """A plain-SMTP recording server on 127.0.0.1 (random port), stopped after the test."""
    server = RecordingSMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., RecordingSMTPServer]]:
    """Start servers with options (`tls="starttls"`, `cert=...`); all stopped after the test."""
    servers: list[RecordingSMTPServer] = []

    def start(**kwargs: Any) -> RecordingSMTPServer:
        server = RecordingSMTPServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def tls_cert(tmp_path: Path) -> TestCert:
    return make_cert(tmp_path / "tls")
