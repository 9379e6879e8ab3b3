"""The To header (issue 16, bug 3): a display name with a comma, quotes, non-ASCII letters or
any length comes back from a parser as the same single address. The email package's own
folder dropped the quotes around a long name, and Postfix then read "Lovelace, Ada …" as
several bogus addresses."""

from __future__ import annotations

import re
from datetime import date
from email import policy
from email.parser import BytesParser, Parser
from email.utils import getaddresses

from hypothesis import given, settings as hypothesis_settings, strategies as st

from flows.deliver import deliver_sync
from flows.links import DigestLinks
from flows.models import Digest
from flows.render import Renderer, address_line
from flows.settings import PROJECT_ROOT
from flows.compose import make_message
from flows.deliver import Outgoing
from flows.subscribers import Subscriber
from tests.support.smtp import settings_for

LONG_COMMA_NAME = "Professor Dr. Augusta Ada King-Noel, Countess of Lovelace and Baroness Wentworth, FRS"
LINKS = DigestLinks(preferences="https://paperboy.example.org/p/x",
                    unsubscribe="https://paperboy.example.org/u/x",
                    unsubscribe_mailto="mailto:paperboy@example.org?subject=unsubscribe")


def expected(name: str) -> str:
    """What the name should read as: one line, runs of white space as one space."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", name).split())


def parsed_to(line: str):
    message = Parser(policy=policy.default).parsestr(line + "\r\n")
    return message["To"]


def postfix_view(line: str) -> list[tuple[str, str]]:
    """A parser that knows no RFC 2047 (the header unfolded, split at commas outside quotes)."""
    unfolded = re.sub(r"\r\n[ \t]", " ", line.removeprefix("To:").removesuffix("\r\n"))
    return getaddresses([unfolded])


def test_long_name_with_a_comma_stays_one_address():
    line = address_line("To", LONG_COMMA_NAME, "ada@example.org")
    (address,) = parsed_to(line).addresses
    assert (address.display_name, address.addr_spec) == (LONG_COMMA_NAME, "ada@example.org")
    assert [addr for _, addr in postfix_view(line)] == ["ada@example.org"]
    assert all(len(part) <= 78 for part in line.split("\r\n"))


def test_a_name_too_long_for_one_encoded_line_still_gives_one_address():
    name = "\U0001F600" * 200  # 800 bytes of UTF-8 without a space: more than a line can hold encoded
    line = address_line("To", name, "ada@example.org")
    (address,) = parsed_to(line).addresses
    assert address.addr_spec == "ada@example.org"
    assert address.display_name.replace(" ", "") == name  # split where it had to be
    assert max(len(part) for part in line.split("\r\n")) <= 998


def test_an_address_that_is_not_ascii_is_written_as_utf8():
    line = address_line("To", "Zoë", "zoë@example.org")
    (address,) = parsed_to(line).addresses
    assert (address.display_name, address.addr_spec) == ("Zoë", "zoë@example.org")


# Names of up to 200 characters (the subscriber file's limit) whose words fit one encoded line.
NAMES = st.text(max_size=200).filter(lambda n: all(len(w.encode()) <= 600 for w in n.split()))


@hypothesis_settings(max_examples=400, deadline=None)
@given(name=NAMES,
       local=st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,20}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s))
def test_any_name_round_trips_to_the_same_single_address(name, local):
    email = f"{local}@example.org"
    line = address_line("To", expected(name), email)
    header = parsed_to(line)
    assert not header.defects, header.defects
    (address,) = header.addresses
    assert address.addr_spec == email
    assert address.display_name == expected(name)
    assert [addr for _, addr in postfix_view(line)] == [email]
    # folded between words only: no line longer than 78 unless one word alone is
    assert all(len(part) <= 78 or " " not in part.removeprefix("To:").strip() for part in line.split("\r\n"))


def test_comma_name_received_and_parsed(smtp_server, tmp_path):
    """Through render → deliver → aiosmtpd, then parsed as the receiving side would."""
    settings = settings_for(smtp_server, tmp_path, secret_key="test-secret-key-0123456789-abcdefghij")
    renderer = Renderer(PROJECT_ROOT / "templates", settings=settings)
    names = {"ada@example.org": LONG_COMMA_NAME, "grace@example.org": "Hopper, Grace \"Amazing\" (USN)",
             "zoe@example.org": "Müller, Zoë — Lehrstuhl für Informatik, Universität zu Köln, Deutschland"}
    day = date(2025, 6, 13)
    items = []
    for email, name in names.items():
        subscriber = Subscriber(email=email, name=name, keywords=["rl"])
        digest = Digest(subscriber=email, digest_date=day, papers=[])
        items.append(Outgoing(email, day, make_message(renderer, digest, subscriber, LINKS), ()))
    outcomes = []
    deliver_sync(items, settings, outcomes.append)
    assert [o.status for o in outcomes] == ["sent"] * 3
    for received in smtp_server.received:
        message = BytesParser(policy=policy.default).parsebytes(received.raw)
        (address,) = message["To"].addresses
        assert (address.addr_spec, address.display_name) == (received.rcpt_tos[0], names[received.rcpt_tos[0]])
