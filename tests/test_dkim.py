"""DKIM signing (flows/dkim.py): digests received by the real aiosmtpd server verify with
dkimpy's verifier given the public key locally; the signature covers what RFC 8058 needs;
bad key files stop a run before anything is sent; `paperboy dkim-keygen`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import dkim as dkimpy
import pytest
from pydantic import SecretStr
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from flows import dkim, makers
from flows.cli import app
from flows.compose import make_message, renderer_for
from flows.corpus import Corpus
from flows.deliver import Outgoing, deliver
from flows.fetch import fetch_dates
from flows.links import digest_links
from flows.models import Digest
from flows.send import run_batch
from flows.settings import Settings
from flows.sources import build_source
from flows.store import Store
from flows.subscribers import Subscriber, load_all
from tests.support.smtp import settings_for
from tests.test_dask import add_readers

REQUIRED = {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post"}


def dns_for(key_file: Path, selector: str = "paperboy", domain: str = "example.org"):
    """A dnsfunc for dkimpy's verifier that answers only the one record we publish."""
    signer = dkim.Signer(domain, selector, dkim.read_key(key_file))
    record = f"v=DKIM1; k=rsa; p={signer.public_key()}".encode("ascii")
    asked: list[bytes] = []

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record if name == f"{selector}._domainkey.{domain}.".encode() else None

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def signed_headers(raw: bytes) -> set[str]:
    message = message_from_bytes(raw, policy=policy.default)
    tags = dkimpy.util.parse_tag_value(message["DKIM-Signature"].encode("ascii"))
    return {name.strip().decode() for name in re.split(rb"\s*:\s*", tags[b"h"])}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "paperboy.pem"
    dkim.generate_key(path)
    return path


@pytest.fixture(autouse=True)
def fresh_signers():
    dkim._signer.cache_clear()
    yield
    dkim._signer.cache_clear()
    makers.close_pools()


def send_day(workspace, **env: str) -> list:
    """Run one batch for the workspace's subscribers with these settings; the received mail."""
    settings = Settings(**env)
    with Store(settings.db_path) as store:
        fetch_dates(store, build_source("snapshot", settings), [workspace.day - timedelta(days=1), workspace.day])
        subscribers, _ = load_all(settings.subscribers_dir)
        corpus = Corpus.load(store, settings, workspace.day)
        run_batch(subscribers, store=store, corpus=corpus, renderer=renderer_for(settings), settings=settings)
    return list(workspace.server.received)


def test_received_digests_verify_and_cover_one_click_unsubscribe(workspace, key_file):
    received = send_day(workspace, dkim_key_file=key_file)

    assert len(received) == 3
    lookup = dns_for(key_file)
    for item in received:
        assert item.raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        assert dkimpy.verify(item.raw, dnsfunc=lookup), item.rcpt_tos
        assert REQUIRED <= signed_headers(item.raw)
        signature = re.match(rb"DKIM-Signature:.*?\r\n(?=\S)", item.raw, re.S).group()
        assert all(len(line) <= 78 for line in signature.split(b"\r\n"))
    assert set(lookup.asked) == {b"paperboy._domainkey.example.org."}


def test_tampering_with_a_signed_header_or_the_body_fails_verification(workspace, key_file):
    (item, *_) = send_day(workspace, dkim_key_file=key_file)
    lookup = dns_for(key_file)
    raw = item.raw
    assert dkimpy.verify(raw, dnsfunc=lookup)

    swapped = re.sub(rb"List-Unsubscribe: <https://[^>]+>", b"List-Unsubscribe: <https://evil.example/u>", raw)
    added_post = raw.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe-Post: List-Unsubscribe=Other\r\n\r\n", 1)
    added_from = raw.replace(b"\r\n\r\n", b"\r\nFrom: someone@evil.example\r\n\r\n", 1)
    body = raw.replace(b"Paperboy", b"Paperb0y", 3)
    for forged in (swapped, added_post, added_from, body):
        assert forged != raw
        assert not dkimpy.verify(forged, dnsfunc=lookup)


def test_signature_survives_refolding_and_trailing_spaces(workspace, key_file):
    """relaxed/relaxed: a relay that refolds a header or pads a line does not break it."""
    (item, *_) = send_day(workspace, dkim_key_file=key_file)
    head, body = item.raw.split(b"\r\n\r\n", 1)
    refolded = head.replace(b"Subject: ", b"Subject:\r\n   ", 1) + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n", 5)
    assert dkimpy.verify(refolded, dnsfunc=dns_for(key_file))


def test_render_processes_sign_too(workspace, key_file):
    add_readers(workspace.subscribers_dir)
    received = send_day(workspace, dkim_key_file=key_file, render_processes=1, render_processes_from=1)

    assert makers._POOL is not None, "the batch was made in a render process"
    assert len(received) >= 5
    lookup = dns_for(key_file)
    assert all(dkimpy.verify(item.raw, dnsfunc=lookup) for item in received)


def test_no_key_no_signature(workspace):
    received = send_day(workspace)
    assert received and not any(b"DKIM-Signature" in item.raw for item in received)


async def test_an_smtputf8_message_object_is_signed_as_it_goes_on_the_wire(key_file, tmp_path,
                                                                         smtp_server_factory):
    """An EmailMessage to a non-ASCII address: aiosmtplib flattens it with UTF-8 headers."""
    server = smtp_server_factory(smtputf8=True)
    settings, subscriber, digest, links = utf8_digest(settings_for(server, tmp_path, dkim_key_file=key_file))
    message = dkim.sign(renderer_for(settings).render_message(digest, subscriber, links), settings)
    assert not isinstance(message, bytes)

    outcomes: list = []
    await deliver([Outgoing(subscriber.email, digest.digest_date, message, ())], settings, outcomes.append)

    assert [o.status for o in outcomes] == ["sent"]
    (received,) = server.received
    assert "bücher".encode() in received.raw  # sent as UTF-8 (SMTPUTF8), as signed
    assert dkimpy.verify(received.raw, dnsfunc=dns_for(key_file))
    assert REQUIRED <= signed_headers(received.raw)


def test_utf8_bytes_are_signed_as_they_are(key_file, tmp_path):
    settings, subscriber, digest, links = utf8_digest(
        Settings(dkim_key_file=key_file, db_path=tmp_path / "p.db"))
    message = dkim.sign(make_message(renderer_for(settings), digest, subscriber, links), settings)

    assert isinstance(message, bytes) and "bücher".encode() in message
    assert dkimpy.verify(message, dnsfunc=dns_for(key_file))


def utf8_digest(settings: Settings):
    settings = settings.model_copy(update={
        "mail_from": "Paperboy <digest@example.org>", "public_base_url": "https://p.example.org",
        "secret_key": SecretStr("test-secret-key-0123456789-abcdefghij")})
    subscriber = Subscriber(email="zoe@bücher.example", name="Zoë Müller", keywords=["diffusion"])
    digest = Digest(subscriber=subscriber.email, digest_date=date(2025, 6, 13), papers=[])
    links = digest_links(settings, "test-secret-key-0123456789-abcdefghij", subscriber.email)
    return settings, subscriber, digest, links


# -- bad keys: a clear error at start, naming the file, what is wrong and what to do ---------------


def write_key(path: Path, key, encryption=None) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       encryption or serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def bad_keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "public.pem"
    public.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    public.chmod(0o600)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
    garbage.chmod(0o600)
    not_pem = tmp_path / "key.der"
    not_pem.write_bytes(os.urandom(600))
    not_pem.chmod(0o600)
    shared = write_key(tmp_path / "shared.pem", rsa_key)
    shared.chmod(0o644)
    (tmp_path / "adir").mkdir()
    return {
        "missing": (tmp_path / "nope.pem", "no such file"),
        "directory": (tmp_path / "adir", "is a directory"),
        "readable by others": (shared, "chmod 600"),
        "public key": (public, "holds a public key"),
        "encrypted": (write_key(tmp_path / "enc.pem", rsa_key, serialization.BestAvailableEncryption(b"pw")),
                      "encrypted with a passphrase"),
        "EC key": (write_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1())), "signs with RSA"),
        "garbage PEM": (garbage, "not a readable private key"),
        "not PEM": (not_pem, "not a PEM key"),
    }


def test_each_bad_key_file_is_refused_with_its_reason(tmp_path):
    for label, (path, reason) in bad_keys(tmp_path).items():
        settings = Settings(dkim_key_file=path, mail_from="Paperboy <digest@example.org>")
        with pytest.raises(dkim.DkimError) as caught:
            dkim.signer_for(settings)
        text = str(caught.value)
        assert str(path) in text and "PAPERBOY_DKIM_KEY_FILE" in text, label
        assert reason in text, (label, text)


def test_small_rsa_key_is_refused(tmp_path):
    small = tmp_path / "small.pem"
    done = subprocess.run(["openssl", "genrsa", "-out", str(small), "768"], capture_output=True)
    if done.returncode != 0:
        pytest.skip("openssl cannot make a 768-bit key here")
    small.chmod(0o600)
    with pytest.raises(dkim.DkimError, match="768 bits"):
        dkim.signer_for(Settings(dkim_key_file=small, mail_from="digest@example.org"))


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("mail_from", "Paperboy <paperboy@localhost>", "has none"),
    ("dkim_selector", "bad selector!", "not a DNS name"),
])
def test_from_domain_and_selector_are_checked(key_file, field, value, reason):
    values = {"dkim_key_file": key_file, "mail_from": "digest@example.org", field: value}
    with pytest.raises(dkim.DkimError, match=reason):
        dkim.signer_for(Settings(**values))


def test_paperboy_run_with_a_bad_key_stops_before_sending(workspace, tmp_path):
    path, _ = bad_keys(tmp_path)["public key"]
    env = {**os.environ, **workspace.environ, "PAPERBOY_DKIM_KEY_FILE": str(path)}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run"], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)

    assert done.returncode == 2, done.stderr
    assert f"PAPERBOY_DKIM_KEY_FILE {path}: holds a public key" in done.stderr
    assert "Traceback" not in done.stderr
    assert workspace.server.received == []


# -- paperboy dkim-keygen ---------------------------------------------------------------------------


def test_keygen_writes_a_private_key_and_prints_records_that_verify(tmp_path, monkeypatch, workspace):
    out = tmp_path / "dkim" / "p2026.pem"
    monkeypatch.setenv("PAPERBOY_MAIL_FROM", "Paperboy <digest@news.example.org>")
    result = CliRunner().invoke(app, ["dkim-keygen", "--out", str(out), "--selector", "p2026"])

    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    text = result.output
    assert "p2026._domainkey.news.example.org.  TXT" in text
    assert "news.example.org.  TXT  \"v=spf1" in text and "_dmarc.news.example.org.  TXT  \"v=DMARC1; p=none" in text
    assert f"PAPERBOY_DKIM_KEY_FILE={out.resolve()}" in text and "PAPERBOY_DKIM_SELECTOR=p2026" in text
    # The record as printed (quoted 255-byte strings) is what DNS gives back, joined
    published = "".join(re.findall(r'"([^"]*)"', text.split("p2026._domainkey.news.example.org.  TXT", 1)[1].splitlines()[0]))
    assert len(published) > 255 and published.startswith("v=DKIM1; k=rsa; p=")

    # Sign with the new key through the real server; verify against the printed record only
    monkeypatch.setenv("PAPERBOY_DKIM_KEY_FILE", str(out))
    monkeypatch.setenv("PAPERBOY_DKIM_SELECTOR", "p2026")
    received = send_day(workspace)
    assert received and all(dkimpy.verify(
        item.raw, dnsfunc=lambda name, timeout=5: published.encode()
        if name == b"p2026._domainkey.news.example.org." else None) for item in received)


def test_keygen_never_overwrites_and_show_prints_the_existing_record(tmp_path, key_file, monkeypatch):
    monkeypatch.setenv("PAPERBOY_MAIL_FROM", "digest@example.org")
    before = key_file.read_bytes()
    refused = CliRunner().invoke(app, ["dkim-keygen", "--out", str(key_file)])
    assert refused.exit_code == 2 and "already exists" in refused.output
    assert key_file.read_bytes() == before

    shown = CliRunner().invoke(app, ["dkim-keygen", "--out", str(key_file), "--show"])
    assert shown.exit_code == 0, shown.output
    public = dkim.Signer("example.org", "paperboy", dkim.read_key(key_file)).public_key()
    assert public[:200] in shown.output.replace('" "', "")
    assert key_file.read_bytes() == before


def test_keygen_needs_a_from_domain(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERBOY_MAIL_FROM", "paperboy@localhost")
    result = CliRunner().invoke(app, ["dkim-keygen", "--out", str(tmp_path / "k.pem")])
    assert result.exit_code == 2 and "PAPERBOY_MAIL_FROM" in result.output
    assert not (tmp_path / "k.pem").exists()


# -- the faster pieces give exactly dkimpy's bytes -----------------------------------------------------


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_PIECES = st.sampled_from([b"a", b"x y", b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r", b"\n", b"=20", b"\xc3\xa9"])


@hsettings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_relaxed_body_is_dkimpys(body):
    from dkim.canonicalization import Relaxed

    assert dkim.relaxed_body(body) == Relaxed.canonicalize_body(body)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"Subject: a", b"X-A:b", b" folded", b"\tmore", b"To: c  d "]), min_size=1,
                max_size=8).map(b"\r\n".join),
       st.lists(_PIECES, max_size=30).map(b"".join))
def test_split_message_is_dkimpys_parse(head, body):
    data = b"From: a@example.org\r\n" + head.replace(b"\r\n", b"\n", head.count(b"X")) + b"\r\n\r\n" + body
    assert dkim.split_message(data) == dkimpy.rfc822_parse(data)
