"""DKIM: sign each digest as it is made, and make the key and the DNS records to publish.

Takes the settings (PAPERBOY_DKIM_KEY_FILE, PAPERBOY_DKIM_SELECTOR, the domain of
PAPERBOY_MAIL_FROM) and a finished message; gives the message with a DKIM-Signature
header in front. Signing happens where messages are made (flows/compose.py), so the render
processes sign too and the sending process only sends.

Receivers (Gmail, Yahoo, Microsoft) want bulk mail signed by the From domain, and RFC 8058
one-click unsubscribe only counts when the signature covers List-Unsubscribe and
List-Unsubscribe-Post, so those are signed with the other headers a reader sees. Each is
"oversigned" (named once more than it occurs), so nobody on the way can add a second one
without breaking the signature. Canonicalization is relaxed/relaxed: relays that refold
headers or trim trailing spaces do not break it.

The key is checked when the signer is built (at the start of a run, before anything is
sent): readable, only by its owner, an unencrypted RSA private key of at least 1024 bits
(2048 recommended), and it must sign a test message that verifies with its public key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.outgoing import wire_bytes

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings

# What a reader sees and what one-click unsubscribe relies on, plus the MIME structure.
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)
OVERSIGNED = SIGNED_HEADERS[:8]  # one digest never has two of these: nobody may add one
MIN_BITS = 1024  # receivers ignore signatures by smaller keys (RFC 8301)
DEFAULT_BITS = 2048
CANONICALIZE = (b"relaxed", b"relaxed")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
_INCLUDE = tuple(name.lower().encode("ascii") for name in (*SIGNED_HEADERS, *OVERSIGNED))


class DkimError(Exception):
    """DKIM signing cannot be set up: the message names the file or variable and what to do."""


@dataclass(frozen=True, eq=False)
class Signer:
    """Signs messages for one domain with one key (an RSA private key in PKCS#1 PEM).

    dkimpy parses the header block, picks and canonicalizes the headers and hashes them; the
    body is canonicalized here (`relaxed_body`, the same bytes, 10x faster), and the RSA
    signature is made by OpenSSL (the `cryptography` package): dkimpy's own is pure Python,
    7.5 of the 10 ms a digest took to sign, against 0.3 ms.
    """

    domain: str
    selector: str
    key_pem: bytes

    @functools.cached_property
    def _key(self) -> Any:
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self.key_pem, password=None)

    def signature(self, data: bytes, now: float | None = None) -> bytes:
        """The DKIM-Signature header line (folded, CRLF-terminated) for these message bytes."""
        import dkim
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        headers, body = split_message(data)
        policy = dkim.CanonicalizationPolicy.from_c_value(b"/".join(CANONICALIZE))
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        stamp = int(time.time() if now is None else now)
        value = _folded_tags([
            f"v=1; a=rsa-sha256; c={'/'.join(c.decode() for c in CANONICALIZE)};",
            f"d={self.domain}; s={self.selector}; t={stamp};",
            "h=" + ":".join(name.decode("ascii") for name in _INCLUDE) + ";",
            f"bh={body_hash.decode('ascii')};",
            "b=",
        ])
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers), list(_INCLUDE),
                          (b"DKIM-Signature", b" " + value), {})
        signed = self._key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        b64 = base64.b64encode(signed)
        # b= goes last, on lines of its own: whitespace inside it is ignored by verifiers
        chunks = b"\r\n ".join(b64[i:i + 72] for i in range(0, len(b64), 72))
        return b"DKIM-Signature: " + value + chunks + b"\r\n"

    def sign(self, message: EmailMessage | bytes) -> EmailMessage | bytes:
        """The message with its DKIM-Signature: bytes (CRLF line ends) get the header in front;
        an EmailMessage (an address that needs SMTPUTF8) is signed as aiosmtplib will flatten
        it and gets the header appended (its lines are short: nothing refolds it)."""
        if isinstance(message, bytes):
            return self.signature(message) + message
        header = self.signature(wire_bytes(message, utf8=_needs_utf8(message))).decode("ascii")
        name, _, value = header.partition(": ")
        message.set_raw(name, value.removesuffix("\r\n").replace("\r\n", "\n"))
        return message

    def public_key(self) -> str:
        """The public key as the DNS record's p= value (base64 SubjectPublicKeyInfo)."""
        from cryptography.hazmat.primitives import serialization

        der = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")


def split_message(data: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's parse (headers as [name, value] pairs, body with CRLF line ends), with only
    the header block going through its line-by-line parser: a digest's body is 50-70 KB."""
    import dkim

    end = data.find(b"\r\n\r\n")
    if end < 0 or data.count(b"\n", 0, end) != data.count(b"\r\n", 0, end):  # bare LFs: its parse
        return dkim.rfc822_parse(data)
    headers, _ = dkim.rfc822_parse(data[:end + 4])
    body = data[end + 4:]
    if body.count(b"\n") != body.count(b"\r\n"):  # a bare LF: line ends as dkimpy would make them
        body = re.sub(rb"\r?\n", b"\r\n", body)
    return headers, body


_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_WSP_RUN = re.compile(rb"\t[\t ]*| [\t ]+")  # a single space is already canonical: left alone


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalization: no white space at line ends, other runs
    of it one space, no empty lines at the end (one CRLF ends a non-empty body). The same bytes
    as dkimpy's, which rewrites every single space too (2 of the 2.6 ms a digest took)."""
    if b" \r\n" in body or b"\t\r\n" in body:  # the regex alone scans slowly for nothing
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    while body.endswith(b"\r\n"):
        body = body[:-2]
    return body + b"\r\n" if body else b""


def _needs_utf8(message: EmailMessage) -> bool:
    """Whether aiosmtplib will send this message with SMTPUTF8 (its recipient is not ASCII),
    which writes non-ASCII headers as UTF-8 rather than encoded words."""
    to = message["To"]
    return any(not address.addr_spec.isascii() for address in getattr(to, "addresses", ()))


def _folded_tags(lines: list[str], width: int = 76) -> bytes:
    """Tag lines joined by folding whitespace; a line longer than ``width`` (the h= list)
    is folded before a colon, where the grammar allows whitespace."""
    out: list[str] = []
    for line in lines:
        while len(line) > width and (cut := line.rfind(":", 0, width)) > 0:
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\r\n ".join(out).encode("ascii")


def sign(message: EmailMessage | bytes, settings: Settings) -> EmailMessage | bytes:
    """``message`` DKIM-signed when PAPERBOY_DKIM_KEY_FILE is set, else as it is."""
    signer = signer_for(settings)
    return signer.sign(message) if signer else message


def signer_for(settings: Settings) -> Signer | None:
    """This process's signer for these settings (the key is read and checked once), or None
    when signing is off. Raises DkimError naming what to fix."""
    if settings.dkim_key_file is None:
        return None
    return _signer(Path(settings.dkim_key_file), settings.dkim_selector, settings.mail_from)


@functools.lru_cache(maxsize=4)
def _signer(key_file: Path, selector: str, mail_from: str) -> Signer:
    domain = signing_domain(mail_from)
    if not _SELECTOR.match(selector):
        raise DkimError(f"PAPERBOY_DKIM_SELECTOR={selector!r} is not a DNS name; use letters, digits "
                        "and hyphens, e.g. PAPERBOY_DKIM_SELECTOR=paperboy2026")
    signer = Signer(domain, selector, read_key(key_file))
    _self_test(signer, key_file)
    return signer


def signing_domain(mail_from: str) -> str:
    """The d= domain: the domain of the From address, in ASCII (IDNA for a non-ASCII one)."""
    address = parseaddr(mail_from)[1]
    local, at, domain = address.rpartition("@")
    if not (local and at and domain and "." in domain):
        raise DkimError(f"DKIM signs for the domain of PAPERBOY_MAIL_FROM, and {mail_from!r} has none; "
                        "set it to an address at your domain, e.g. Paperboy <digest@example.org>")
    try:
        return domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise DkimError(f"the domain of PAPERBOY_MAIL_FROM ({domain!r}) is not a valid domain name") from None


def read_key(path: Path) -> bytes:
    """The private key in ``path`` as PKCS#1 PEM, after checking everything that can be wrong."""
    fix = f"make a new key with `paperboy dkim-keygen --out {path}` or set PAPERBOY_DKIM_KEY_FILE"
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: no such file; {fix}") from None
    except IsADirectoryError:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: is a directory, not a key file; {fix}") from None
    except PermissionError:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: cannot be read by this user (uid {os.getuid()}); "
                        "make it readable by the user that runs Paperboy (and only by it)") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: a private key readable by others "
                        f"(mode {stat.S_IMODE(info.st_mode):o}); run `chmod 600 {path}`")
    return _rsa_pem(data, path, fix)


def _rsa_pem(data: bytes, path: Path, fix: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if b"-----BEGIN" not in data:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: not a PEM key (no -----BEGIN line); {fix}")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: holds a public key; signing needs the private "
                        f"key (the public one goes in DNS); {fix}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: the key is encrypted with a passphrase; "
                        f"decrypt it once (`openssl pkey -in {path} -out plain.pem`, then chmod 600) "
                        "or make a new one with `paperboy dkim-keygen`") from None
    except (ValueError, TypeError, UnicodeError) as exc:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: not a readable private key "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {fix}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: a {type(key).__name__.removeprefix('_')} key; "
                        f"Paperboy signs with RSA (rsa-sha256, what every receiver checks); {fix}")
    if key.key_size < MIN_BITS:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: an RSA key of {key.key_size} bits; receivers "
                        f"ignore signatures by keys under {MIN_BITS} bits; {fix}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _self_test(signer: Signer, path: Path) -> None:
    """Sign a small message and verify it with the key's own public half, so a key that
    cannot sign fails at the start of a run, not at the first digest."""
    import dkim

    probe = (f"From: probe@{signer.domain}\r\nTo: probe@{signer.domain}\r\nSubject: probe\r\n"
             "List-Unsubscribe: <https://example.org/u>\r\n\r\nprobe\r\n").encode("ascii")
    record = f"v=DKIM1; k=rsa; p={signer.public_key()}".encode("ascii")
    try:
        signed = signer.sign(probe)
        assert isinstance(signed, bytes)
        good = dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    except dkim.DKIMException as exc:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: cannot sign with this key ({exc})") from None
    if not good:
        raise DkimError(f"PAPERBOY_DKIM_KEY_FILE {path}: a test signature did not verify with the key's "
                        "own public key; make a new key with `paperboy dkim-keygen`")


# -- making a key and the DNS records --------------------------------------------------------------


class KeyExists(DkimError):
    """The key file to write already exists."""


def generate_key(path: Path, bits: int = DEFAULT_BITS) -> Signer:
    """Write a new RSA private key to ``path`` (created exclusively, mode 0600); never
    overwrites. Returns a signer for it (domain and selector left empty)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if bits < MIN_BITS:
        raise DkimError(f"a DKIM key needs at least {MIN_BITS} bits (2048 recommended), not {bits}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyExists(f"{path} already exists; Paperboy never overwrites a key (receivers may still "
                        "check mail signed with it): choose another --out, with a new selector") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)  # whatever the umask
    return Signer("", "", pem)


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str
    why: str


def dns_records(signer: Signer, domain: str, selector: str, report_to: str = "") -> list[DnsRecord]:
    """The TXT records a domain that sends signed digests publishes: the DKIM key (to
    publish now), and SPF and DMARC (to check: the domain may have them already)."""
    key = f"v=DKIM1; k=rsa; p={signer.public_key()}"
    rua = f" rua=mailto:{report_to};" if report_to else ""
    return [
        DnsRecord(f"{selector}._domainkey.{domain}", "TXT", key,
                  "publish: the public key receivers check each signature with"),
        DnsRecord(domain, "TXT", "v=spf1 include:<your relay's SPF domain> ~all",
                  "check: SPF must allow the relay that sends for this domain (merge into an "
                  "existing v=spf1 record, never publish two)"),
        DnsRecord(f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=none;{rua} adkim=r; aspf=r",
                  "check: DMARC ties SPF and DKIM to the From domain; start with p=none, "
                  "move to p=quarantine once reports show every digest passes"),
    ]


def txt_chunks(value: str, size: int = 255) -> str:
    """A TXT value as quoted strings of at most 255 bytes, as zone files need for a 2048-bit key."""
    return " ".join(f'"{value[i:i + size]}"' for i in range(0, len(value), size))
