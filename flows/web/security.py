"""The web app's defences: CSRF tokens, the same-origin check, headers, a body limit, log redaction.

- A CSRF token is an HMAC of the page's own signed token (or a fixed name for the public
  sign-up form) under the secret key: it can only come from a page this server rendered
  for that link, and one subscriber's form token is worthless on another's link.
- Browsers say where a POST comes from (``Sec-Fetch-Site``, ``Origin``); anything
  cross-site is refused. ``Origin: null`` is what a page with ``Referrer-Policy:
  no-referrer`` sends even to itself, so it is judged by ``Sec-Fetch-Site`` alone.
- RFC 8058 one-click unsubscribe is the documented exception: mail providers POST
  ``List-Unsubscribe=One-Click`` from their servers with neither token nor origin, and the
  unguessable signed link is the authorisation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.subscribers import MAX_KEYWORD_LENGTH, MAX_KEYWORDS

MAX_BODY = 64 * 1024  # bytes; the largest honest form (50 keywords × 100 chars, twice) is ~12 KB

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))

# Paths whose last segment is a signed token: never written to a log in full.
TOKEN_PATH = re.compile(r"/(preferences|unsubscribe|resubscribe|confirm|digest)/[^/?\s]+")


class CsrfError(Exception):
    """A form arrived without this page's CSRF token, or from another site."""


def csrf_token(key: str, bound_to: str) -> str:
    """The form token for pages reached through ``bound_to`` (a signed link token)."""
    digest = hmac.new(key.encode(), f"paperboy-csrf:{bound_to}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def check_csrf(key: str, bound_to: str, given: object) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(given, csrf_token(key, bound_to)):
        raise CsrfError("this form has expired or did not come from this site; reload the page")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, public_base_url: str) -> None:
    """Refuse a request a browser marks as coming from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):  # "none": typed or bookmarked by the user
            raise CsrfError("this form was sent from another site")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or one too old to say: the CSRF token still has to match
    own = {origin_of(public_base_url), f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    if origin.lower() not in own:
        raise CsrfError("this form was sent from another site")


def strict_int(text: str, *, digits: int = 18) -> int | None:
    """A whole number written only in ASCII digits, else None.

    ``str.isdigit`` and ``int`` accept far more: "²" is a digit to one and not to the other
    (a 500), "٣" and " 7" parse, and a 10,000-digit number costs quadratic time.
    """
    if not (0 < len(text) <= digits and text.isascii() and text.isdigit()):
        return None
    return int(text)


def redact(text: str) -> str:
    """``text`` with every signed token in a path cut out."""
    return TOKEN_PATH.sub(lambda found: f"/{found.group(1)}/…", text)


class RedactTokens(logging.Filter):
    """Keeps link tokens out of uvicorn's access log (they work like passwords)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
        return True


class SecurityHeaders:
    """Adds the security headers to every response (ASGI middleware)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"interest-cohort=(), camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in present]
                if b"cache-control" not in present:  # pages hold personal data and live tokens
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette's own 500 page is sent from outside every middleware, without these
            # headers: answer here, and let the error go on to be logged.
            if not started:
                await _plain_page(send_with_headers, 500, b"Something went wrong",
                                  b"Something went wrong on our side; nothing was changed.")
            raise


class BodyLimit:
    """Answers 413 to a request body over ``limit`` bytes, declared or streamed (ASGI)."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope["headers"], b"content-length")
        size_given = strict_int(declared) if declared is not None else None
        if declared is not None and (size_given is None or size_given > self.limit):
            await _too_large(send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:  # read it all here: these bodies are small, and the limit is exact
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await _too_large(send)
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _too_large(send: Send) -> None:
    await _plain_page(send, 413, b"Too much text", TOO_MUCH)


TOO_MUCH = (f"Nothing was saved: the form sent more text than Paperboy accepts. Go back and shorten "
            f"it: at most {MAX_KEYWORDS} keywords of up to {MAX_KEYWORD_LENGTH} characters each.").encode()


async def _plain_page(send: Send, status: int, title: bytes, text: bytes) -> None:
    # Written here, before the app (and its templates) sees the request: still a page a phone
    # shows at its size, in the site's language.
    body = (b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            b'content="width=device-width, initial-scale=1"><title>' + title + b' \xc2\xb7 Paperboy</title>'
            b'</head><body><main><h1>' + title + b"</h1><p>" + text + b"</p></main></body></html>")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
