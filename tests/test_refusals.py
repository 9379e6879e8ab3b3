"""Whose fault a permanent refusal is (flows/refusals.py), on replies real servers send.

The sender's: what a provider answers mail it does not trust from us (authentication, a
blocklisted relay, its policy). The address's: what it answers for one recipient. The
message's: too big. The line between the first two decides whether a subscriber is suppressed."""

from __future__ import annotations

import pytest

from flows.refusals import advice, refusal_kind, sender_domains, sender_problem

SENDER = [  # (status, reply, kind of problem)
    ("5.7.26", "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all "
               "senders to authenticate with either SPF or DKIM.", "authentication"),
    ("5.7.26", "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy.",
     "authentication"),
    ("5.7.23", "550 5.7.23 The message was rejected because of Sender Policy Framework violation", "authentication"),
    ("5.7.27", "550 5.7.27 sender address has null MX", "authentication"),
    ("5.7.25", "550 5.7.25 [192.0.2.10] The IP address sending this message does not have a PTR record setup",
     "authentication"),
    ("5.7.20", "550 5.7.20 No passing DKIM signature found", "authentication"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
              "https://www.spamhaus.org/query/ip/192.0.2.10", "reputation"),
    ("5.7.1", "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet "
              "service provider since part of their network is on our block list (S3150).", "reputation"),
    ("5.7.606", "550 5.7.606 Access denied, banned sending IP [192.0.2.10].", "reputation"),
    ("5.7.650", "550 5.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to IP "
                "reputation.", "reputation"),
    ("5.7.1", "550-5.7.1 [192.0.2.10] Our system has detected that this message is likely unsolicited mail.",
     "reputation"),
    ("5.7.9", "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/",
     "policy"),
    ("5.7.1", "554 5.7.1 <bounces+x.y@example.org>: Sender address rejected: Access denied", "authentication"),
    ("5.7.23", "550 5.7.23 <ada@example.org>: Recipient address rejected: Message rejected due to: SPF fail - "
               "not authorized.", "authentication"),
    ("5.7.1", "554 5.7.1 <ada@example.net>: Relay access denied", "relay"),
    ("5.7.509", "550 5.7.509 Access denied, sending domain example.org does not pass DMARC verification and has a "
                "DMARC policy of reject.", "authentication"),
    ("5.7.28", "550 5.7.28 mail flood detected", "reputation"),
    ("", "554 Service unavailable; Client host [192.0.2.10] blocked using bl.spamcop.net", "reputation"),
    ("5.0.0", "smtp; 550 5.7.26 Unauthenticated email is not accepted", "authentication"),
    # the envelope sender's domain does not resolve: Postfix's reject_unknown_sender_domain, which
    # (smtpd_delay_reject) answers at RCPT TO, for every recipient behind that server at once
    ("5.1.8", "550 5.1.8 <bounces+20261205.x@example.org>: Sender address rejected: Domain not found",
     "authentication"),
    ("5.1.7", "553 5.1.7 The sender address <bounces@example.org> is not a valid RFC-5321 address", "authentication"),
]

ADDRESS = [  # the recipient's: counted towards their suppression
    ("5.7.1", "550 5.7.1 <ada@example.org>: Recipient address rejected: Access denied"),
    ("5.7.1", "554 5.7.1 rejected"),
    ("5.1.1", "550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown in virtual mailbox table"),
    ("5.1.1", "550 5.1.1 user unknown (the policy of this server: no spam)"),  # 5.1.x: never the sender's
    ("5.2.2", "552 5.2.2 The recipient's inbox is out of storage space"),
    # words in the subscriber's own address are not the reply's
    ("5.7.1", "550 5.7.1 <spam.policy.dmarc@example.org>: Recipient address rejected: Access denied"),
    ("", "550 No such user here"),
    ("5.0.0", "smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"),
]


@pytest.mark.parametrize(("status", "reply", "problem"), SENDER)
def test_refusals_of_the_sender(status, reply, problem):
    assert sender_problem(status, reply) == problem
    assert refusal_kind(status, reply) == "sender"


@pytest.mark.parametrize(("status", "reply"), ADDRESS)
def test_refusals_of_the_address_stay_hard(status, reply):
    assert sender_problem(status, reply) == ""
    assert refusal_kind(status, reply) == "hard"


def test_refusals_of_the_message_stay_soft():
    assert refusal_kind("5.3.4", "552 5.3.4 Message size exceeds fixed limit") == "soft"
    assert refusal_kind("5.2.3", "552 5.2.3 Message length exceeds administrative limit") == "soft"


def test_the_advice_names_the_domains_to_check():
    assert "check SPF, DKIM and DMARC for example.org" in advice("authentication", "example.org")
    assert sender_domains("example.org", "bounces@example.org") == "example.org"
    assert sender_domains("example.org", "bounces@mail.example.org") == "example.org and mail.example.org"
    assert sender_domains("example.org", None) == "example.org"
    assert "blocklist" in advice("reputation", "example.org")
    assert "PAPERBOY_SMTP_USER" in advice("relay", "example.org")
