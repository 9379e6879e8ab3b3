"""Secrets cut out of text by value: the SMTP password and the link-signing key, as they are
and as SMTP AUTH sends them (base64, alone or inside ``\\0user\\0password``).

A relay that quotes the AUTH line back in its error reply would otherwise put the base64
password into the ledger, the logs and Prefect's database. :func:`protect` registers a
process's secrets (building :class:`~flows.settings.Settings` does it) and makes every log
record of the process pass through :func:`redact` when it is created, before any handler,
Prefect's included, sees it.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words
MIN_CORE = 8  # base64 characters: a shorter run is too likely to occur by chance

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_factory_installed = False
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def encodings(secret: str) -> set[str]:
    """The base64 text that stands for ``secret`` inside any base64 string: whatever comes
    before it, one of the three alignments of its whole 3-byte groups appears verbatim."""
    raw = secret.encode("utf-8")
    found = set()
    for skip in range(3):
        whole = (len(raw) - skip) // 3 * 3
        core = base64.b64encode(raw[skip:skip + whole]).decode("ascii")
        if len(core) >= MIN_CORE:
            found.add(core)
    return found


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, and any base64 run carrying one, replaced by ***."""
    pattern = _compile(secrets)
    return _apply(pattern, text) if pattern is not None else text


def _compile(secrets: Iterable[str]) -> re.Pattern[str] | None:
    plain = {s for s in secrets if s and len(s) >= MIN_SECRET}
    if not plain:
        return None
    cores = set().union(*(encodings(s) for s in plain))
    ordered = sorted(plain | cores, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)))


def _apply(pattern: re.Pattern[str], text: str) -> str:
    if not pattern.search(text):
        return text
    # A base64 run that carries a secret goes whole: its edges would leak a few bytes.
    text = _BASE64_RUN.sub(lambda run: MASK if pattern.search(run.group()) else run.group(), text)
    return pattern.sub(MASK, text)


def redact(text: str) -> str:
    """``text`` without any secret registered with :func:`protect`."""
    pattern = _pattern
    return _apply(pattern, text) if pattern is not None and text else text


def protect(*secrets: str | None) -> None:
    """Register secrets of this process; from now on no log record carries them."""
    global _pattern
    new = {s for s in secrets if s and len(s) >= MIN_SECRET} - _secrets
    if not new and _factory_installed:
        return
    with _lock:
        _secrets.update(new)
        _pattern = _compile(_secrets)
        _install_factory()


def _install_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if _pattern is None:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's to report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        return record

    logging.setLogRecordFactory(redacting_record)
    _factory_installed = True
