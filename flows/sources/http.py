"""HTTP for the listing sources: one client factory and GET with retries.

Transient failures (429, 5xx, timeouts, dropped connections) are retried with
exponential backoff and jitter, honouring ``Retry-After``; everything else fails
at once with an error that names the URL and the status.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from flows import __version__
from flows.sources.base import SourceFormatError, SourceRequestError, SourceUnavailable, SourceUnreachable
from flows.stopping import wait_for_stop
from flows.sources.clean import MAX_RESPONSE_BYTES, loads

if TYPE_CHECKING:
    from flows.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = f"paperboy/{__version__}"
MAX_RESPONSE_SECONDS = 120.0  # to read one whole answer, however slowly it trickles in
Params = Mapping[str, str | int | float] | None


class BoundedClient(httpx.Client):
    """An httpx client whose GET reads at most ``max_bytes`` of body within ``max_seconds``
    in all: a server that sends without end, or drips a byte at a time, cannot hang a run."""

    def __init__(self, *args: Any, max_bytes: int = MAX_RESPONSE_BYTES,
                 max_seconds: float = MAX_RESPONSE_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    def get(self, url: httpx.URL | str, *, params: Any = None, headers: Any = None,
            **kwargs: Any) -> httpx.Response:
        request = self.build_request("GET", url, params=params, headers=headers)
        deadline = time.monotonic() + self.max_seconds
        response = self.send(request, stream=True)
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
                raise _too_large(request.url, self.max_bytes)
            body, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise _too_large(request.url, self.max_bytes)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no complete answer within {self.max_seconds:.0f} s",
                                            request=request)
                body.append(chunk)
        finally:
            response.close()
        # The body is decoded already: the new response must not decode it again.
        kept = [(k, v) for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=kept, content=b"".join(body),
                              request=response.request, extensions=response.extensions)


def _too_large(url: httpx.URL, limit: int) -> SourceFormatError:
    return SourceFormatError(f"GET {url}: the answer is larger than {limit // 2**20} MB")


def make_client(settings: Settings) -> httpx.Client:
    """An httpx client with Paperboy's timeout, User-Agent and size limit; the caller closes it."""
    return BoundedClient(
        timeout=httpx.Timeout(settings.http_timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_seconds=max(MAX_RESPONSE_SECONDS, 3 * settings.http_timeout),
    )


def is_transient(status: int) -> bool:
    """True for statuses worth retrying: rate limiting and server errors."""
    return status == 429 or status >= 500


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_delay(attempt: int, backoff: float, max_wait: float) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
    # Jitter spreads out several workers that were throttled at the same moment.
    base = backoff * (2**attempt)
    return min(max_wait, base + random.uniform(0, base / 2))


HOPELESS = ("cannot resolve", "TLS certificate")  # causes no retry can fix


def root_cause(exc: BaseException) -> str:
    """What is under an httpx transport error, in words: the host name does not resolve, the
    connection was refused or reset, it timed out, TLS failed (httpx says only "ConnectError")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return f"cannot resolve the host name ({current.strerror or current}); check the URL and DNS"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({current.verify_message or current})"
        if isinstance(current, ssl.SSLError):
            return f"TLS failed ({current.reason or current})"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused (nothing listening at that address and port)"
        if isinstance(current, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(current, (httpx.TimeoutException, TimeoutError)):
            return f"timed out: {type(current).__name__}"
        current = current.__cause__ or current.__context__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def pause(sleep: Callable[[float], None], delay: float, where: str) -> None:
    """Wait before a retry; a stop request (Ctrl-C, SIGTERM) ends the wait and the fetch."""
    if sleep is not time.sleep:  # a test's clock
        sleep(delay)
        return
    reason = wait_for_stop(delay)
    if reason:
        raise SourceUnavailable(f"GET {where}: not retried, the run is stopping ({reason})")


def get(
    client: httpx.Client,
    url: str,
    params: Params = None,
    *,
    retries: int,
    backoff: float = 0.5,
    max_wait: float = 60,
    sleep: Callable[[float], None] = time.sleep,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET ``url`` and return a 2xx response, retrying transient failures ``retries`` times."""
    where = str(httpx.URL(url, params=params))
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = client.get(url, params=params, headers=headers)
        except httpx.TransportError as exc:
            cause = root_cause(exc)
            if cause.startswith(HOPELESS):  # the same on every retry and every date: fail fast
                raise SourceUnreachable(f"GET {where}: {cause}") from exc
            if last:
                raise SourceUnavailable(f"GET {where}: {cause} after {attempt + 1} attempts") from exc
            delay = backoff_delay(attempt, backoff, max_wait)
            log.warning("GET %s: %s; retrying in %.1fs", where, cause, delay)
            pause(sleep, delay, where)
            continue
        except httpx.RequestError as exc:  # e.g. too many redirects: not going to improve
            raise SourceRequestError(f"GET {where}: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        if not is_transient(status):
            raise SourceRequestError(f"GET {where}: HTTP {status}")
        if last:
            raise SourceUnavailable(f"GET {where}: HTTP {status} after {attempt + 1} attempts")
        asked = retry_after_seconds(response.headers.get("Retry-After"))
        delay = min(max_wait, asked) if asked is not None else backoff_delay(attempt, backoff, max_wait)
        log.warning("GET %s: HTTP %d; retrying in %.1fs", where, status, delay)
        pause(sleep, delay, where)
    raise AssertionError("unreachable")  # the loop always returns or raises


def get_json(
    client: httpx.Client,
    url: str,
    params: Params = None,
    *,
    retries: int,
    backoff: float = 0.5,
    max_wait: float = 60,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """GET ``url`` like :func:`get` and decode the body as JSON."""
    response = get(
        client,
        url,
        params,
        retries=retries,
        backoff=backoff,
        max_wait=max_wait,
        sleep=sleep,
        headers={"Accept": "application/json"},
    )
    try:
        return loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        kind = response.headers.get("Content-Type", "no content type")
        raise SourceFormatError(
            f"GET {response.request.url}: HTTP {response.status_code} body is not JSON ({kind})"
        ) from exc


class RateLimiter:
    """Spaces request starts at least ``interval`` seconds apart. ``exclusive`` also lets only
    one request run at a time (arXiv's "one connection"); otherwise requests may overlap."""

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> None:
        self.interval = interval
        self.exclusive = exclusive
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._last: float | None = None

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Wait for this caller's turn, then run the body holding it; yields the seconds waited."""
        # Holding the lock through the request is arXiv's "one connection at a time".
        with self._lock:
            waited = 0.0
            if self._last is not None:
                waited = max(0.0, self._last + self.interval - self.clock())
            if waited:
                self.sleep(waited)
            self._last = self.clock()
            if self.exclusive:
                yield waited
                return
        yield waited


_LIMITERS: dict[tuple[str, int, int], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    url: str,
    interval: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    exclusive: bool = True,
) -> RateLimiter:
    """The process-wide :class:`RateLimiter` for ``url``.

    Every caller with the default clock and sleep shares one limiter per URL;
    callers that inject their own (tests) share one per clock and sleep. When
    callers ask for different intervals the longest one wins.
    """
    # The limiter keeps clock and sleep alive, so their ids cannot be reused.
    key = (url.rstrip("/"), id(clock), id(sleep))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(interval, clock=clock, sleep=sleep, exclusive=exclusive)
        limiter.interval = max(limiter.interval, interval)
        return limiter
