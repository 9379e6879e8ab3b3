"""Compose: one subscriber's unseen candidates → a ranked digest → the message to send.

Takes a `Subscriber`, the run's `Corpus` and the ids of candidates already delivered to
that subscriber (from the ledger, read elsewhere); gives a `Digest` (`compose`) and the
`Outgoing` message, or the "skipped" `Outcome` when there is nothing to send
(`make_one`). Opens no database and sends nothing, so it runs anywhere: the flow's
process, a render process (flows/makers.py) or a Dask worker.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from flows import dkim, verp
from flows.archive import encode_digest
from flows.corpus import Corpus
from flows.outgoing import Outgoing
from flows.links import DigestLinks, digest_links, secret_key
from flows.models import Digest, Outcome
from flows.rank import prepare, rank, trending
from flows.render import RenderError, Renderer
from flows.timing import Stopwatch, timed

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings
    from flows.subscribers import Subscriber

log = logging.getLogger(__name__)

TRENDING_COUNT = 5


def compose(subscriber: Subscriber, corpus: Corpus, seen: set[str]) -> Digest:
    """Rank the unseen candidates for one subscriber into a digest (possibly empty)."""
    index = corpus.index(corpus.window_for(subscriber))
    if subscriber.sources is not None or subscriber.categories is not None:  # their own filters
        seen = seen | {p.id for p in corpus.papers if not subscriber.wants(p)}
    ranked = (rank(index, subscriber, exclude_ids=seen, feedback=corpus.feedback_for(subscriber))
              if subscriber.keywords else [])
    extra: list = []
    if subscriber.include_trending:
        mine = seen | {r.paper.id for r in ranked}
        extra = trending(index, exclude_ids=mine, n=TRENDING_COUNT)
    if corpus.catch_up:  # a backfill's one digest for a whole range
        first = corpus.digest_date - timedelta(days=corpus.window_for(subscriber) - 1)
        return Digest(subscriber=subscriber.email, digest_date=corpus.digest_date,
                      papers=ranked, trending=extra, period="catch-up", since=first)
    return Digest(subscriber=subscriber.email, digest_date=corpus.digest_date,
                  papers=ranked, trending=extra, id_domain=message_id_domain(corpus.settings))


def message_id_domain(settings: Settings) -> str:
    """Message-IDs name the sender's domain (PAPERBOY_MAIL_FROM's), in its ASCII form."""
    domain = settings.from_domain
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


def digest_paper_ids(digest: Digest) -> tuple[str, ...]:
    return tuple(r.paper.id for r in digest.papers) + tuple(p.id for p in digest.trending)


def worth_sending(digest: Digest, subscriber: Subscriber, settings: Settings) -> bool:
    """An empty digest is sent only to those who asked for one (send_empty)."""
    return bool(digest.papers or digest.trending or subscriber.send_empty or settings.send_empty)


def make_one(subscriber: Subscriber, corpus: Corpus, renderer: Renderer, settings: Settings, key: str,
             seen: set[str], seconds: dict[str, float] | None = None) -> Outgoing | Outcome:
    """One subscriber's message, or the "skipped" outcome when there is nothing to send, or
    the "failed" outcome when their message cannot be made: one subscriber's problem is
    never the batch's. ``seconds`` collects the time spent in the index build, ranking and
    rendering."""
    try:
        return _make_one(subscriber, corpus, renderer, settings, key, seen, seconds)
    except RenderError as exc:  # this subscriber's input: the same again next run
        log.warning("cannot make the digest for %s: %s", subscriber.email, exc)
        return Outcome(subscriber.email, corpus.digest_date, "failed", error=f"cannot be made: {exc}"[:200],
                       permanent=True)
    except Exception as exc:  # a bug or a passing fault: not final, the next run tries again
        log.exception("making the digest for %s failed", subscriber.email)
        return Outcome(subscriber.email, corpus.digest_date, "failed",
                       error=f"cannot be made: {type(exc).__name__}: {exc}"[:200])


def _make_one(subscriber: Subscriber, corpus: Corpus, renderer: Renderer, settings: Settings, key: str,
              seen: set[str], seconds: dict[str, float] | None) -> Outgoing | Outcome:
    watch = Stopwatch(seconds)
    corpus.index(corpus.window_for(subscriber))  # built by the first subscriber of a window
    watch.lap("index")
    digest = compose(subscriber, corpus, seen)
    watch.lap("rank")
    if not worth_sending(digest, subscriber, settings):
        return Outcome(subscriber.email, corpus.digest_date, "skipped")
    links = digest_links(settings, key, subscriber.email, corpus.digest_date)
    message = dkim.sign(make_message(renderer, digest, subscriber, links), settings)
    watch.lap("render")  # signing included: it is part of making the message
    # The digest as its web view keeps it: the mail lists the first papers, the page all of them.
    return Outgoing(subscriber.email, corpus.digest_date, message, digest_paper_ids(digest),
                    message_id=digest.message_id, contents=encode_digest(digest),
                    envelope_from=verp.return_path(settings, key, subscriber.email, corpus.digest_date))


PREPARED_TOGETHER = 25  # subscribers whose keywords the ranking works out in one pass


def prepare_ranking(subscribers: Sequence[Subscriber], corpus: Corpus,
                    seconds: dict[str, float] | None = None) -> None:
    """Before ranking a chunk of subscribers one by one: work out together what their
    keywords need (``flows.rank.prepare``; the rankings are the same either way, only
    cheaper). Never fails a chunk: whatever goes wrong here, ranking works it out alone."""
    windows: dict[int, list[Subscriber]] = {}
    for subscriber in subscribers:
        if subscriber.keywords:
            windows.setdefault(corpus.window_for(subscriber), []).append(subscriber)
    for days, group in windows.items():
        try:
            with timed(seconds, "index"):
                index = corpus.index(days)
            with timed(seconds, "rank"):
                prepare(index, group)
        except Exception:  # noqa: BLE001 - an optimisation: rank() does the same work alone
            log.warning("preparing the ranking of %d subscribers failed; ranking them one by one", len(group),
                        exc_info=True)


def outgoing(todo: Sequence[Subscriber], corpus: Corpus, renderer: Renderer, settings: Settings,
             seen: dict[str, set[str]], on_skip: Callable[[Outcome], None],
             seconds: dict[str, float] | None = None) -> Iterator[Outgoing]:
    """Lazily rank and render one message at a time, so sending overlaps with it and
    rendered messages are never all held in memory."""
    key = secret_key(settings)
    for n, subscriber in enumerate(todo):
        if n % PREPARED_TOGETHER == 0:
            prepare_ranking(todo[n:n + PREPARED_TOGETHER], corpus, seconds)
        made = make_one(subscriber, corpus, renderer, settings, key, seen.get(subscriber.email, set()),
                        seconds)
        if isinstance(made, Outcome):
            on_skip(made)
        else:
            yield made


def make_message(renderer: Renderer, digest: Digest, subscriber: Subscriber,
                 links: DigestLinks) -> bytes:
    """The message to send, as the finished bytes SMTP sends (an address that is not ASCII
    is written as UTF-8; flows/deliver.py sends that only where the server offers SMTPUTF8)."""
    return renderer.render_bytes(digest, subscriber, links)


_RENDERERS: dict[tuple, Renderer] = {}


def renderer_for(settings: Settings) -> Renderer:
    """Building a renderer inlines the CSS into the template once: keep one per process
    (the flow's, each render process's, or each Dask worker's)."""
    key = (str(settings.templates_dir), settings.mail_from, settings.list_id, settings.public_base_url)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(settings.templates_dir, settings=settings)
    return _RENDERERS[key]


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while making and sending a batch. Ranking and
    rendering allocate short-lived objects that reference counting frees, yet they set off
    the collector's passes over everything the run keeps (the index, the ranking caches,
    Prefect): about 5% of sending, measured with gc.callbacks. A batch leaves about one
    cycle per message (asyncio's), collected once the collector resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
