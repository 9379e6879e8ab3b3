"""The nouns every stage passes around: papers, ranked results, digests, outcomes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from typing import Literal


# arXiv identifiers: new style "2506.01234", old style "cs/0112017" (a version suffix allowed).
ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?")


def is_arxiv_id(paper_id: str) -> bool:
    return ARXIV_ID.fullmatch(paper_id) is not None


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as listed by a source; keyed by arXiv id when it has one."""

    id: str
    title: str
    abstract: str
    listed: date
    authors: tuple[str, ...] = ()
    published: date | None = None
    upvotes: int = 0
    comments: int = 0
    ai_keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    project_page: str | None = None
    url: str = ""
    source: str = ""
    categories: tuple[str, ...] = ()
    ai_summary: str = ""  # Hugging Face's one-line TL;DR, machine-written
    github_stars: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """What one source said for one listing date (possibly nothing, e.g. a weekend)."""

    source: str
    listed: date
    papers: tuple[Paper, ...]
    skipped: int = 0  # malformed items dropped while parsing


@dataclass(frozen=True, slots=True)
class Match:
    """One keyword that matched a paper, where, and how.

    ``tier`` says how: ``exact`` (the keyword, or a variant of it: hyphen, joined,
    acronym), ``partial`` (only part of a multi-word keyword; ``via`` names the part, or
    its words apart joined by " … "), ``related`` (only words the corpus relates to the
    keyword; ``via`` lists them), ``liked`` / ``disliked`` (like a paper the subscriber
    marked; ``via`` holds its title).
    """

    keyword: str
    fields: tuple[str, ...]  # "title", "abstract"
    terms: tuple[str, ...] = ()  # surface forms to highlight
    tier: str = "exact"
    via: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The digest chip's words where the ranker words them itself ("" : the chip's own)."""
        return f"because you liked “{self.keyword}”" if self.tier == "liked" else ""

    def describe(self) -> tuple[str, str]:
        """The explanation around the keyword, as (before, after) plain text: "related to "
        + keyword + ": policy gradient, reward", keyword + " (partly: reinforcement learning;
        title)", "because you liked " + title, keyword + " (title, abstract)"."""
        where = ", ".join(self.fields)
        if self.tier == "related":
            return "related to ", f": {', '.join(self.via)}" if self.via else ""
        if self.tier == "liked":
            return "because you liked ", f": {', '.join(self.terms)}" if self.terms else ""
        if self.tier == "partial" and self.via:
            return "", f" (partly: {', '.join(self.via)}{'; ' + where if where else ''})"
        return "", f" ({where})" if where else ""

    def explain(self) -> str:
        """:meth:`describe` with the keyword, as one line of plain text."""
        before, after = self.describe()
        return f"{before}{self.keyword}{after}"


@dataclass(frozen=True, slots=True)
class RankedPaper:
    paper: Paper
    score: float
    matches: tuple[Match, ...]
    snippet: str | None = None  # abstract excerpt centred on the best match


@dataclass(slots=True)
class Digest:
    """One subscriber's email for one digest date, before and after rendering."""

    subscriber: str  # email address, the ledger key
    digest_date: date
    papers: list[RankedPaper]
    trending: list[Paper] = field(default_factory=list)
    message: EmailMessage | None = None
    # What the digest covers: "daily", "weekly" or "catch-up" ("" = the subscriber's
    # frequency), and for a catch-up the first listing date of its range.
    period: str = ""
    since: date | None = None
    id_domain: str = "paperboy.localhost"  # the Message-ID's domain: PAPERBOY_MAIL_FROM's (compose.py)

    @property
    def message_id(self) -> str:
        return message_id_for(self.subscriber, self.digest_date, self.id_domain)


OutcomeStatus = Literal["sent", "failed", "skipped", "uncertain"]
# In the ledger a failed digest is "failed" (permanent, e.g. SMTP 5xx: final for that date)
# or "deferred" (transient, retries used up: a rerun tries again). "uncertain": the message
# went out and no reply came back (the server may or may not have it; PAPERBOY_UNCERTAIN).


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one digest; the ledger records exactly this."""

    subscriber: str
    digest_date: date
    status: OutcomeStatus
    message_id: str = ""
    paper_ids: tuple[str, ...] = ()
    error: str = ""
    attempts: int = 0
    at: datetime | None = None
    permanent: bool = False  # for "failed": True when retrying cannot help (5xx)
    # The SMTP server's last refusal, when there was one: reply code, enhanced status code
    # ("5.1.1", "" when the server gave none) and the command it answered (MAIL, RCPT, DATA).
    # A 5xx at RCPT or DATA is a hard bounce (flows/bounces.py).
    smtp_code: int = 0
    smtp_status: str = ""
    smtp_stage: str = ""
    contents: str = ""  # the digest as its web view keeps it (flows.archive), recorded when sent

    @property
    def hard_bounce(self) -> bool:
        """The receiving side refused this digest for good: a 5xx answer to RCPT or DATA (a 5xx
        to MAIL FROM is about the sender, not the subscriber)."""
        return self.status == "failed" and 500 <= self.smtp_code < 600 and self.smtp_stage in ("RCPT", "DATA")


def bad_address(status: str) -> bool:
    """An enhanced status code saying the address itself is wrong (5.1.x: no such user, no
    such domain, bad syntax, moved), bar 5.1.7/5.1.8 which are about the sender's address."""
    return status.startswith("5.1.") and status not in ("5.1.7", "5.1.8")


def message_id_for(subscriber: str, digest_date: date, domain: str = "paperboy.localhost") -> str:
    """Deterministic Message-ID: the same subscriber and date always give the same id."""
    digest = hashlib.sha256(f"{subscriber.lower()}|{digest_date.isoformat()}".encode()).hexdigest()
    return f"<{digest_date:%Y%m%d}.{digest[:24]}@{domain}>"
