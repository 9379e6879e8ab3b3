"""Corpus: the candidate papers of one run and their ranking indexes.

Takes the store (or a list of papers), the settings and the digest date; gives a
`Corpus`: the papers listed in the candidate window, indexed once per window length
(daily, weekly, a catch-up's whole range) for the ranking stage (flows/rank/). It holds
no database handle, so batch tasks on other threads, render processes and Dask
workers share it; shipped to another process it carries the papers, not the indexes,
and each process builds them once (`_shared_indexes`).
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import types
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar
from pathlib import Path
from datetime import date, timedelta

from flows.children import hangups_blocked
from flows.models import Paper
from flows.rank import Feedback, PaperIndex, RelatedModel, build_index, learn_related, load_acronyms
from flows.shipped import plain_settings

T = TypeVar("T")

if TYPE_CHECKING:  # the store (and sqlite_utils, ≈ 25 MB) is imported where it is used: render
    from flows.store import Store  # processes unpickle a Corpus but never open SQLite
    from flows.settings import Settings  # nor import pydantic (flows/shipped.py)
    from flows.subscribers import Subscriber

log = logging.getLogger(__name__)


def window_days(subscriber: Subscriber, settings: Settings) -> int:
    """A weekly digest covers the week; a daily one the recency window."""
    return max(7, settings.recency_days) if subscriber.frequency == "weekly" else settings.recency_days


_WORKER_INDEXES: dict[str, dict[int, PaperIndex]] = {}  # corpus token -> its indexes here


def _shared_indexes(token: str) -> dict[int, PaperIndex]:
    """This process's indexes of a shipped corpus; only the two latest corpora are kept, so a
    long-lived worker does not accumulate every day's."""
    if token not in _WORKER_INDEXES:
        while len(_WORKER_INDEXES) >= 2:
            del _WORKER_INDEXES[next(iter(_WORKER_INDEXES))]
        _WORKER_INDEXES[token] = {}
    return _WORKER_INDEXES[token]


def related_model(store: Store) -> RelatedModel:
    """The related-terms model of every stored paper: the stored one while the corpus is as
    it was learned from, else learned now (once per run at most) and stored.

    Learning reads every stored paper: it runs in a short-lived process of its own, so
    the memory it needs (≈ 300 MB for 50,000 papers) is never added to the daily run's;
    where no process can be started (or the database is in memory) it runs here."""
    model = _stored_or_learned_elsewhere(store, _stored_model)
    return model if model is not None else learn_into(store)


def related_blob(store: Store) -> bytes:
    """:func:`related_model` as the store holds it (checked readable, learned first if need
    be): a `Corpus` carries these bytes (≈ 1.8 MB for the benchmark's corpus; decoded, with
    its lookup dict, ≈ 9 MB more in the process) and decodes them where an index is built,
    so the flow's process, which only ships the corpus to its render processes, never
    decodes the model."""
    blob = _stored_or_learned_elsewhere(store, _stored_blob)
    return blob if blob is not None else learn_into(store).to_bytes()


def _stored_or_learned_elsewhere(store: Store, read: Callable[[Store, str], T | None]) -> T | None:
    """What ``read`` finds stored for the corpus as it is now; else, where a process can be
    started, what it finds after the model was learned and stored in one; None otherwise."""
    found = read(store, store.corpus_signature())
    if found is None and str(store.path) != ":memory:" and _learn_elsewhere(store.path):
        found = read(store, store.corpus_signature())
    return found


def _stored_blob(store: Store, signature: str) -> bytes | None:
    stored = store.related_model()
    if stored is None or stored[0] != signature or not RelatedModel.readable(stored[1]):
        return None  # none, stale, or unreadable (a crash mid-write, an older format)
    return stored[1]


def learn_into(store: Store) -> RelatedModel:
    """Learn the model from every stored paper and store it (in this process)."""
    signature = store.corpus_signature()
    model = learn_related(store.paper_texts())
    store.save_related_model(signature, model.to_bytes(), papers=model.documents, seconds=model.seconds)
    return model


def _stored_model(store: Store, signature: str) -> RelatedModel | None:
    stored = store.related_model()
    if stored is None or stored[0] != signature:
        return None
    try:
        return RelatedModel.from_bytes(stored[1])
    except (ValueError, KeyError, OSError, EOFError):
        return None  # unreadable (a crash mid-write, an older format): learn it again


def _learn_elsewhere(path: Path) -> bool:
    """Learn and store the model in a child process; False if that did not work."""
    main = sys.modules["__main__"]
    try:
        child = multiprocessing.get_context("spawn").Process(
            target=learn_stored, args=(str(path),), name="paperboy-learn-related", daemon=True)
        # A spawned process runs the caller's main script again unless it is guarded by
        # `if __name__ == "__main__":`; this one needs nothing from it (as flows/makers.py).
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            with hangups_blocked():  # a hangup stops the run after its work, not this helper
                child.start()
        finally:
            sys.modules["__main__"] = main
        child.join()
    except (OSError, RuntimeError) as exc:
        log.warning("related terms: cannot learn in a process of their own (%s); learning here", exc)
        return False
    if child.exitcode != 0:
        log.warning("related terms: the learning process failed (exit %s); learning here", child.exitcode)
        return False
    return True


def learn_stored(path: str) -> None:
    """A child process's work: learn the model of the database at ``path`` and store it."""
    from flows.store import Store

    with Store(path) as store:
        learn_into(store)


def stored_feedback(store: Store) -> dict[str, tuple[Feedback, ...]]:
    """Every subscriber's latest "more / less like this" verdicts, for ranking."""
    return {subscriber: tuple(Feedback(*item) for item in items)
            for subscriber, items in store.all_feedback().items()}


class Corpus:
    """The candidate papers of one run, loaded once and indexed once per window length
    (daily, weekly). Holds no database handle, so batch tasks on other threads or
    workers can share it."""

    def __init__(self, papers: Sequence[Paper], settings: Settings, digest_date: date,
                 window: int | None = None, since: date | None = None,
                 related: RelatedModel | bytes | None = None,
                 feedback: dict[str, tuple[Feedback, ...]] | None = None):
        self.papers, self.settings, self.digest_date = list(papers), settings, digest_date
        # Learned from every stored paper (related papers and graded phrases use it); None
        # ranks by the keywords alone. As stored bytes (`related_blob`) it is decoded on
        # first use (`related`), and shipped to other processes as those bytes.
        self._related = related if not isinstance(related, bytes) else None
        self._related_blob = related if isinstance(related, bytes) else None
        # Per subscriber (lower-case address), the papers they marked "more" / "less like
        # this", read from the store by the flow's process: it travels with the corpus to
        # render processes and Dask workers, which never open SQLite.
        self.feedback = feedback or {}
        # A fixed window makes a catch-up digest: every active subscriber, the whole range.
        self.window = window
        # After an outage the run re-fetched listings from `since`: those are candidates too,
        # even when older than the recency window, or papers added late to them would be lost.
        self.since = since
        self.acronyms = load_acronyms(settings.acronyms_file)
        self.token = uuid.uuid4().hex  # names this corpus in other processes
        self._indexes: dict[int, PaperIndex] = {}

    def __getstate__(self) -> dict:
        # Shipped to Dask workers: the papers, not the indexes (three times their size), and
        # the related model as stored bytes where it came as such.
        state = {**self.__dict__, "_indexes": {}}
        if self._related_blob is not None:
            state["_related"] = None
        return state

    def shipped(self) -> "Corpus":
        """This corpus as render processes get it: the same papers, model and feedback, no
        indexes, and the settings as plain values, which unpickle without pydantic
        (flows/shipped.py)."""
        clone = object.__new__(Corpus)
        clone.__dict__.update(self.__getstate__())
        clone.settings = plain_settings(self.settings)
        return clone

    @property
    def related(self) -> RelatedModel | None:
        if self._related is None and self._related_blob is not None:
            self._related = RelatedModel.from_bytes(self._related_blob)
        return self._related

    def __setstate__(self, state: dict) -> None:
        # Every batch brings a worker a fresh copy of the same corpus: the copies share
        # one set of indexes per process, so each is built once per worker, not per batch.
        self.__dict__.update(state)
        self._indexes = _shared_indexes(self.token)

    @classmethod
    def load(cls, store: Store, settings: Settings, digest_date: date,
             since: date | None = None) -> "Corpus":
        first = digest_date - timedelta(days=max(7, settings.recency_days) - 1)
        if since is not None:
            first = min(first, since)
        return cls(store.papers_listed(first, digest_date), settings, digest_date, since=since,
                   related=related_blob(store), feedback=stored_feedback(store))

    @classmethod
    def for_range(cls, store: Store, settings: Settings, start: date, end: date) -> "Corpus":
        days = (end - start).days + 1
        return cls(store.papers_listed(start, end), settings, end, window=days, related=related_blob(store),
                   feedback=stored_feedback(store))

    @property
    def catch_up(self) -> bool:
        return self.window is not None

    def window_for(self, subscriber: Subscriber) -> int:
        return self._window(window_days(subscriber, self.settings))

    def _window(self, days: int) -> int:
        if self.window:
            return self.window
        if self.since is not None:
            days = max(days, (self.digest_date - self.since).days + 1)
        return days

    def warm(self) -> None:
        """Build the index daily subscribers (most of them) rank against."""
        self.index(self._window(self.settings.recency_days))

    def index(self, days: int) -> PaperIndex:
        if days not in self._indexes:
            since = self.digest_date - timedelta(days=days - 1)
            papers = [p for p in self.papers if since <= p.listed <= self.digest_date]
            self._indexes[days] = build_index(papers, acronyms=self.acronyms, related=self.related)
        return self._indexes[days]

    def feedback_for(self, subscriber: Subscriber) -> tuple[Feedback, ...]:
        """The papers this subscriber marked "more" or "less like this" (latest first)."""
        return self.feedback.get(subscriber.email.lower(), ())

    def paper_ids(self) -> list[str]:
        return [p.id for p in self.papers]
