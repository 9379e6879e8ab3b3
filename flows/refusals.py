"""Whose fault a permanent refusal is: the address's, the message's, or the sender's.

Takes the enhanced status code (RFC 3463) and the text of an SMTP reply or of a DSN's
diagnostic; gives the kind the ledger records:

* ``"hard"``: about the address (no such user, mailbox disabled, the recipient's own
  access rule). Counts towards suppressing that subscriber (flows/bounces.py).
* ``"soft"``: about this message (5.3.4 too big for the system, 5.2.3 over a length
  limit: `MESSAGE_REFUSALS`). Every subscriber behind that server is refused alike.
* ``"sender"``: about *us*: the sending domain's authentication (SPF, DKIM, DMARC), the
  relay's IP on a blocklist or with a poor reputation, no reverse DNS, a receiver's policy
  against our mail, a relay that will not relay for us. It hits every subscriber at that
  provider at once, and nothing is wrong with their addresses, so it never counts towards
  suppression; the run says what to check instead (`advice`).

How a refusal is read as the sender's (`sender_problem`), in order:

1. Only 5.7.x (security or policy), 5.0.0 and no status at all ("undetermined": servers
   without enhanced codes, free-text bounces) are looked at, and 5.1.7 and 5.1.8, the
   *sender's* address (RFC 3463: its syntax; its domain, e.g. Postfix's
   `reject_unknown_sender_domain`, which by default answers at RCPT TO). The other 5.1.x
   (bad address), 5.2.x (mailbox), 5.4.x, 5.5.x ... are never the sender's, whatever
   their text says.
2. Statuses that are about the sender by definition, whatever the text says:
   5.7.8, 5.7.10, 5.7.11 (RFC 4954: our authentication or encryption; not 5.7.9, which
   Yahoo uses for "not accepted for policy reasons"), 5.7.20-5.7.22 (RFC 7372: no
   valid DKIM signature), 5.7.23/5.7.24 (SPF failed / SPF error), 5.7.25 (reverse DNS),
   5.7.26 (several authentication checks failed: what Gmail and Yahoo answer for DMARC),
   5.7.27 (RFC 7505: the sender's domain has a null MX), 5.7.28 (mail flood), 5.7.29
   (RFC 8617: ARC), 5.7.30 (RFC 8689: REQUIRETLS), and Microsoft's 5.7.6xx ("banned
   sending IP") and 5.7.7xx (a sending tenant over its limits).
3. Otherwise (5.7.1, the catch-all most servers use, 5.7.0, 5.7.5xx, ...) the text
   decides: `SENDER_WORDS`, a short list of what sender-side refusals say (authentication,
   SPF/DKIM/DMARC, reverse DNS/PTR, blocklist/blocked using/RBL, reputation, spam,
   policy, "sender address rejected", relay access denied). Addresses (``<ada@x.org>``)
   are taken out of the text first, so a subscriber called ``spam.lover@...`` or
   ``policy@...`` is judged by the reply, not by their name. A 5.7.1 that says nothing of
   the kind ("5.7.1 Recipient address rejected: Access denied", "5.7.1 rejected") stays
   hard: the receiver refused that address.

Mistakes cost differently, and the list leans accordingly: reading a recipient's refusal
as the sender's leaves one address unsuppressed (it fails, visibly, every day); reading
the sender's refusal as the recipient's suppresses everybody at that provider.
"""

from __future__ import annotations

import re

# Enhanced status codes (RFC 3463) saying the message, not the address, was refused: too big
# for the receiving system (X.3.4, Postfix's "552 5.3.4 Message size exceeds fixed limit")
# or over an administrative length limit (X.2.3).
MESSAGE_REFUSALS = frozenset({"5.3.4", "5.2.3"})

# Statuses about the sender whatever the text (see the module's docstring for each).
SENDER_STATUSES = frozenset({"5.1.7", "5.1.8", "5.7.8", "5.7.10", "5.7.11"}
                            | {f"5.7.{n}" for n in range(20, 31)})
_VENDOR_SENDER = re.compile(r"5\.7\.[67]\d\d")  # Microsoft: banned sending IP, tenant limits

# What a sender-side refusal says, by kind of problem; checked in this order. Short on
# purpose: each entry is a phrase receivers use for our side, not for an address.
SENDER_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("relay", re.compile(r"relay(?:ing)? (?:access )?(?:denied|not permitted)|unable to relay", re.I)),
    ("authentication", re.compile(
        r"\b(?:spf|dkim|dmarc)\b|sender policy framework|authenticat|reverse (?:dns|lookup|hostname)|\bptr\b|\brdns\b"
        r"|sender address rejected|sender domain", re.I)),
    ("reputation", re.compile(
        r"block ?list|black ?list|blocked using|\b(?:dnsbl|rbl)\b|spamhaus|reputation|\bspam\b"
        r"|unsolicited|banned sending|sending ip|client host", re.I)),
    ("policy", re.compile(r"\bpolic(?:y|ies)\b", re.I)),
)
_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>|[^\s<>;,()\[\]'\"]+@[^\s<>;,()\[\]'\"]+")
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def status_in(text: str) -> str:
    """The first enhanced status code in a reply or diagnostic ("5.7.26"), "" when none."""
    found = _STATUS.search(text)
    return ".".join(found.groups()) if found else ""


def sender_problem(status: str, text: str) -> str:
    """What kind of sender-side problem a permanent refusal names ("authentication",
    "reputation", "relay", "policy", or "status" when only its code says so); "" when it
    is about the address or the message. See the module's docstring for the rules."""
    if not status or status == "5.0.0":
        status = status_in(_without_addresses(text)) or status  # "Status: 5.0.0", the reply says more
    if status and not (status.startswith("5.7.") or status == "5.0.0" or status in SENDER_STATUSES):
        return ""
    if status in SENDER_STATUSES or _VENDOR_SENDER.fullmatch(status):
        return "authentication" if status in _AUTHENTICATION else "reputation"
    words = _without_addresses(text)
    for problem, pattern in SENDER_WORDS:
        if pattern.search(words):
            return problem
    return ""


_AUTHENTICATION = frozenset({"5.1.7", "5.1.8", "5.7.8", "5.7.10", "5.7.11", "5.7.20", "5.7.21", "5.7.22", "5.7.23",
                             "5.7.24", "5.7.25", "5.7.26", "5.7.27", "5.7.29", "5.7.30"})


def refusal_kind(status: str, text: str = "") -> str:
    """"hard", "soft" or "sender" for a permanent refusal (a 5xx at RCPT/DATA, a failed
    DSN) with this enhanced status and reply text."""
    if status in MESSAGE_REFUSALS:
        return "soft"
    return "sender" if sender_problem(status, text) else "hard"


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub(" ", text[:2000])  # a reply is a few hundred characters; bound the work


def advice(problem: str, domains: str) -> str:
    """What to check for a kind of sender-side problem; ``domains``: the From domain (and
    the envelope sender's, when it differs), e.g. "example.org"."""
    where = domains or "the From domain"
    return {
        "authentication": f"check SPF, DKIM and DMARC for {where}, and the relay's reverse DNS",
        "reputation": ("the relay's IP or the sending domain is on a blocklist or has a poor reputation: look "
                       "it up at the list the reply names and ask the relay's provider"),
        "relay": "the relay refuses to relay for us: check PAPERBOY_SMTP_USER, PAPERBOY_SMTP_PASSWORD and "
                 f"that the relay may send for {where}",
        "policy": f"the receivers' policy refused mail from {where}: check SPF, DKIM and DMARC, and the "
                  "relay's reputation",
    }.get(problem, f"check SPF, DKIM and DMARC for {where}, and the relay's reputation")


def quoted(reply: str, limit: int = 120) -> str:
    """A server's reply as the summaries quote it (the run's line, `paperboy bounces`,
    `paperboy status`): on one line, without a DSN's "smtp;" type, cut at a word before
    ``limit`` characters (" …")."""
    reply = " ".join(reply.split())
    if reply[:5].lower() == "smtp;":
        reply = reply[5:].lstrip()
    return reply if len(reply) <= limit else reply[:limit].rsplit(" ", 1)[0] + " …"


def sender_domains(from_domain: str, envelope_sender: str | None) -> str:
    """"example.org", or "example.org and bounces.example.org" when the envelope sender
    (PAPERBOY_BOUNCE_ADDRESS, which SPF checks) is at another domain."""
    envelope = (envelope_sender or "").rpartition("@")[2].lower()
    if envelope and envelope != from_domain.lower():
        return f"{from_domain} and {envelope}"
    return from_domain
