"""All of Paperboy's configuration, in one place.

Every field can be set from the environment with the ``PAPERBOY_`` prefix
(``PAPERBOY_SMTP_HOST=mail.example.org``). Lists are comma-separated.
Settings are built once at the edge (CLI, flow entry) and passed in; nothing
deep inside the pipeline reads the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flows import PROJECT_ROOT  # one definition, in the package
from flows.redact import protect

PACKAGE_ROOT = Path(__file__).resolve().parent
SAMPLE_SNAPSHOT_DIR = PACKAGE_ROOT / "sample_data" / "huggingface"

CommaList = Annotated[list[str], NoDecode]

SOURCE_NAMES = ("huggingface", "arxiv", "snapshot")  # = flows.sources.SOURCE_NAMES (a test checks)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
_ADDRESS_LITERAL = re.compile(r"\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]\Z")

MIN_SECRET_KEY = 32  # characters; secrets.token_urlsafe(32) gives 43
MIN_KEY_SYMBOLS = 8  # distinct characters: refuses "aaaa…", "0000…" and the like
KEY_ADVICE = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to sign links with, or None when it will do."""
    if len(key.strip()) < MIN_SECRET_KEY:
        return f"is {len(key.strip())} characters long; a signing key needs at least {MIN_SECRET_KEY}"
    if len(set(key)) < MIN_KEY_SYMBOLS:
        return f"has only {len(set(key))} different characters; use a random key"
    return None


class Settings(BaseSettings):
    """Paperboy's settings; see the README's configuration table."""

    # hide_input_in_errors: a model-level error would print every value it was given, the
    # SMTP password and signing key included (pydantic shows the head and tail of its input).
    # allow_inf_nan=False: "inf" seconds would turn every timeout and interval into none.
    model_config = SettingsConfigDict(env_prefix="PAPERBOY_", extra="ignore", hide_input_in_errors=True,
                                      allow_inf_nan=False)

    # storage and inputs
    db_path: Path = Field(PROJECT_ROOT / "var" / "paperboy.db", description="SQLite database file")
    subscribers_dir: Path = Field(PROJECT_ROOT / "subscribers", description="one YAML file per subscriber")
    templates_dir: Path = Field(PROJECT_ROOT / "templates", description="Jinja2 templates")

    # sources
    sources: CommaList = Field(["huggingface"], description="listing sources, comma-separated")
    hf_base_url: str = "https://huggingface.co"
    hf_page_size: int = Field(50, ge=1, le=100)
    hf_min_interval: float = Field(0.6, ge=0, description="seconds between Hugging Face API request starts")
    backfill_concurrency: int = Field(4, ge=1, le=32, description="listing dates fetched at once by backfills")
    snapshot_dir: Path = SAMPLE_SNAPSHOT_DIR
    snapshot_replay: bool = Field(
        False,
        description="shift the snapshot's dates so its newest listing day is the digest date (demo)",
    )
    arxiv_categories: CommaList = ["cs.LG", "cs.CL", "cs.AI", "cs.CV"]
    arxiv_feed_url: str = "https://rss.arxiv.org/atom"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_min_interval: float = Field(3.0, ge=0, description="seconds between arXiv API requests")
    http_timeout: float = Field(20.0, gt=0)
    http_retries: int = Field(4, ge=0, le=10)
    lookback_days: int = Field(7, ge=1, le=60, description="how far back a daily run catches up")
    recency_days: int = Field(3, ge=1, le=60, description="papers listed this recently are candidates")

    # ranking
    max_papers: int = Field(20, ge=1, le=100, description="default top N per digest (1-100, as a subscriber file's max_papers)")
    acronyms_file: Path | None = Field(None, description="extra acronym,long form pairs (CSV)")

    # mail
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout: float = Field(30.0, gt=0)
    smtp_connections: int = Field(4, ge=1, le=64)
    smtp_retries: int = Field(3, ge=0, le=10)
    smtp_retry_delay: float = Field(1.0, ge=0, description="first backoff step, seconds")
    smtp_data_timeout: float = Field(
        600.0, gt=0, description="seconds to wait for the reply to the final dot (RFC 5321: 10 minutes)")
    smtp_helo: str | None = Field(None, description="name sent with EHLO; default: the From domain, else this host's FQDN")
    smtp_ca_file: Path | None = Field(None, description="PEM file of a CA to trust for the relay's certificate")
    smtp_rate: float | None = Field(None, gt=0, description="messages per second across all connections")
    daily_cap: int | None = Field(None, ge=1, description="messages per rolling 24 hours, counted from the ledger")
    uncertain: Literal["resend", "skip"] = Field(
        "resend", description="what a rerun does with digests whose fate is unknown")
    mail_from: str = "Paperboy <paperboy@localhost>"
    list_id: str = "paperboy.localhost"
    public_base_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None
    signup_per_client: int = Field(
        5, ge=1, le=10_000,
        description="sign-up confirmation mails one client address (IPv6: its /64) may cause per hour")
    signup_per_hour: int = Field(
        100, ge=1, le=100_000, description="sign-up confirmation mails all clients together may cause per hour")
    send_empty: bool = False
    dkim_key_file: Path | None = Field(
        None, description="RSA private key (PEM) to DKIM-sign every digest with; unset = no signing")
    bounce_address: str | None = Field(
        None, description="VERP: each digest's envelope sender is this address with a token "
        "(bounces+TOKEN@domain), so `paperboy bounces` maps later bounces to their digest; unset = "
        "the From address")
    bounce_imap_url: str | None = Field(
        None, description="the bounce mailbox over IMAP for `paperboy bounces --imap`: "
        "imaps://USER@HOST[:PORT][/FOLDER] (implicit TLS) or imap://… (STARTTLS)")
    bounce_imap_password: SecretStr | None = None
    bounce_limit: int = Field(3, ge=1, le=100, description="hard bounces before a subscriber is suppressed")
    bounce_limit_no_user: int = Field(
        1, ge=1, le=100, description="hard bounces with a 5.1.x status (no such user or domain) before "
        "a subscriber is suppressed")
    dkim_selector: str = Field("paperboy", description="DKIM selector: the key is published at "
                               "SELECTOR._domainkey.DOMAIN (DOMAIN from PAPERBOY_MAIL_FROM)")
    mail_papers: int = Field(
        30, ge=1, le=100,
        description="papers shown in the mail at most; the rest of the digest is on its web view")
    web_view_days: int = Field(90, ge=1, le=365, description="days a digest's web view is kept")

    # execution
    batch_size: int = Field(500, ge=1, le=100_000, description="subscribers per Prefect task")
    render_processes: int = Field(
        1, ge=0, le=64,
        description="processes that rank and render beside the one that sends; 0 = all in one")
    render_processes_from: int = Field(
        200, ge=1, description="a batch needs this many subscribers to use the render processes")
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
    dask_workers: int = Field(2, ge=1, le=64)
    timezone: str = Field("UTC", description="IANA timezone for 'today' and the schedule")
    schedule: str = Field("0 7 * * *", description="cron for `paperboy serve`")

    def model_post_init(self, context: object, /) -> None:
        # No log record of this process may carry the password or the key (flows/redact.py).
        protect(*(s.get_secret_value() for s in (self.smtp_password, self.secret_key, self.bounce_imap_password)
                  if s is not None))

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Set but empty counts as set: an empty key signs links anyone can forge.
        if value is not None and (problem := key_weakness(value.get_secret_value())):
            raise ValueError(f"{problem}; {KEY_ADVICE}")
        return value

    @field_validator("bounce_address")
    @classmethod
    def _bounce_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        local, at, domain = value.rpartition("@")
        if not (at and re.fullmatch(r"[A-Za-z0-9._-]+", local) and re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", domain)):
            raise ValueError(f"{value[:80]!r} is not a plain ASCII address without '+' (the token goes after "
                             "a '+'), e.g. bounces@example.org")
        return value

    @field_validator("bounce_imap_url")
    @classmethod
    def _imap_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc}); e.g. imaps://bounces@imap.example.org/INBOX") from None
        if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
            raise ValueError("use imaps://USER@HOST[:PORT][/FOLDER] (or imap:// for STARTTLS), e.g. "
                             "imaps://bounces@imap.example.org/INBOX; the password goes in "
                             "PAPERBOY_BOUNCE_IMAP_PASSWORD")
        if parts.password:
            raise ValueError("keep the password out of the URL: set PAPERBOY_BOUNCE_IMAP_PASSWORD")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA timezone, e.g. Europe/Berlin or UTC") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError
        from datetime import datetime

        try:
            CronSim(value, datetime(2025, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"{value!r} is not a cron expression ({exc}), e.g. '0 7 * * *'") from None
        return value

    @field_validator("sources", "arxiv_categories", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))} is not a source; use a comma-separated "
                             f"list of {', '.join(SOURCE_NAMES)}")
        if not value:
            raise ValueError(f"no source given; use a comma-separated list of {', '.join(SOURCE_NAMES)}")
        return value

    @field_validator("public_base_url", "hf_base_url", "arxiv_feed_url", "arxiv_api_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        # It goes into every digest's links and its List-Unsubscribe header.
        if _unprintable(value) or " " in value:
            raise ValueError("must be one URL without spaces or control characters, e.g. https://paperboy.example.org")
        from urllib.parse import urlsplit

        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not host:
            raise ValueError("names no host; e.g. https://paperboy.example.org")
        return value.rstrip("/")

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        from email.utils import getaddresses

        found = [] if _unprintable(value) else getaddresses([value])
        if len(found) != 1 or not re.fullmatch(r"[^@\s]+@[^@\s]+", found[0][1]):
            raise ValueError("is not one address with a domain (on one line); e.g. Paperboy <digest@example.org>")
        return value

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        # RFC 2919: a dot-atom such as digest.example.org, written as <…> in the List-Id header
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+", value):
            raise ValueError("must be a name with dots and no spaces, e.g. digest.example.org")
        return value

    @field_validator("smtp_helo")
    @classmethod
    def _helo_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not (_HOSTNAME.match(value) or _ADDRESS_LITERAL.match(value)):
            raise ValueError(f"{value[:80]!r} is not a host name such as mail.example.org "
                             "(or an address literal such as [192.0.2.1])")
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _readable_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file; give the PEM certificate of the CA that signed "
                             "the relay's certificate")
        return value

    @property
    def from_domain(self) -> str:
        """The domain of PAPERBOY_MAIL_FROM ("localhost" when it has none): Message-IDs and
        the EHLO name use it."""
        from email.utils import parseaddr

        return parseaddr(self.mail_from)[1].rpartition("@")[2].strip() or "localhost"

    @model_validator(mode="after")
    def _plain_smtp_only_locally(self) -> "Settings":
        if self.smtp_tls == "none" and self.smtp_host not in LOCAL_HOSTS:
            raise ValueError(
                f"PAPERBOY_SMTP_TLS=none is only allowed to localhost, not {self.smtp_host!r}: "
                "mail and password would cross the network in clear; use starttls or tls"
            )
        return self


def _unprintable(value: str) -> bool:
    """Holds a control character or a line separator: cannot go into a mail header."""
    return any(ord(ch) < 32 or ord(ch) == 127 or ch in "\u0085\u2028\u2029" for ch in value)


PRIVATE_UMASK = 0o077  # files Paperboy creates: 0600, directories: 0700


def restrict_umask() -> int:
    """Make every file this process creates from now on private to its user (the database,
    the key, subscriber files, the demo's Maildir hold addresses and secrets); returns the
    previous umask. Called at the edges: the CLI and the flows' entry points."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)
    return previous

