"""Feedback that teaches the ranking: "more like this" and "less like this" on a digest's papers.

A subscriber's feedback is a list of :class:`Feedback` items, each a paper they marked
(read from the store by the flow's process and shipped with the batch plan, so ranking
never opens SQLite). Each marked paper becomes a vector over the related model's units
(its ``FEEDBACK_TERMS`` heaviest: idf, title words 1.5×), and each of today's papers gets
its cosine with it, as for a keyword's related terms:

* liked papers are weak related terms: a paper gains ``LIKED_WEIGHT`` times its best
  cosine with a liked paper, and a paper no keyword matches can enter the digest through
  it like a related paper (the subscriber's ``related`` level decides the threshold,
  ``off`` included: the subscriber asked for these). The digest says "because you liked …".
* disliked papers are a penalty: a paper loses ``DISLIKED_WEIGHT`` times its best cosine
  with a disliked one. Never an exclusion: a paper that qualified stays in the running,
  its score only lowered, never below the minimum score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from flows.models import Match
from flows.rank.related import TITLE_BOOST, units_of

Verdict = Literal["more", "less"]
VERDICTS: tuple[str, ...] = ("more", "less")
FEEDBACK_TERMS = 20  # units of a marked paper that describe it
LIKED_WEIGHT = 6.0
DISLIKED_WEIGHT = 4.0
SHOWN_LIKED = 0.12  # a liked paper is named in the explanation from this cosine on
FLOOR = 0.05  # likeness below this cosine is noise, and dropped
FEEDBACK_SHOWN = 3  # shared terms named in a "because you liked" explanation


@dataclass(frozen=True, slots=True)
class Feedback:
    """One paper a subscriber marked: ``more`` (like this) or ``less`` (like this)."""

    paper_id: str
    verdict: str  # "more" or "less"
    title: str
    abstract: str = ""


def marked_terms(index, item: Feedback) -> tuple[tuple[str, float], ...]:
    """What the marked paper is about, as a unit-length vector over the related model's units:
    half its own units (idf, title words more), half the related terms of its title's
    units (their centroids in the model: what papers using those words say), the
    ``FEEDBACK_TERMS`` heaviest."""
    model = index.related
    if model is None:
        return ()
    heading = units_of(item.title)
    own: dict[str, float] = {}
    for unit in sorted(heading | units_of(item.abstract)):  # sets: an order no hash seed changes
        if unit in model.ids:
            own[unit] = model.idf(unit) * (TITLE_BOOST if unit in heading else 1.0)
    mixed = dict(_unit_length(own))
    sources = [unit for unit in sorted(heading) if unit in model.ids]
    topic: dict[str, float] = {}
    for unit in sources:
        for neighbour, weight in model.neighbours(unit):
            topic[neighbour] = topic.get(neighbour, 0.0) + weight
    for unit, weight in _unit_length(topic):
        mixed[unit] = mixed.get(unit, 0.0) + weight
    best = sorted(mixed.items(), key=lambda entry: (-entry[1], entry[0]))[:FEEDBACK_TERMS]
    return tuple(_unit_length(dict(best)))


def _unit_length(weights: dict[str, float]) -> list[tuple[str, float]]:
    length = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return [(unit, weight / length) for unit, weight in weights.items()]


def likeness(index, item: Feedback) -> tuple[np.ndarray, np.ndarray]:
    """Today's papers like the marked one (cosine at least ``FLOOR``) and that cosine
    (cached per index: subscribers mark the same papers)."""
    cache = index.feedback_scores
    found = cache.get(item.paper_id)
    if found is None:
        terms = marked_terms(index, item)
        if terms:
            postings = [index.unit_papers(unit) for unit, _ in terms]
            numbers = np.concatenate([numbers for numbers, _ in postings])
            weights = np.concatenate([values for _, values in postings])
            weights *= np.repeat([weight for _, weight in terms], [n.size for n, _ in postings])
            cosine = np.bincount(numbers, weights, len(index.papers))
            kept = np.flatnonzero(cosine >= FLOOR)
            found = (kept, cosine[kept])
        else:
            found = (np.zeros(0, np.intp), np.zeros(0))
        for array in found:
            array.flags.writeable = False
        cache[item.paper_id] = found
    return found


def best_likeness(index, items: Sequence[Feedback]) -> np.ndarray:
    """Per paper of the index, its highest cosine with any of the items (0 if none)."""
    best = np.zeros(len(index.papers))
    for item in items:
        numbers, values = likeness(index, item)
        if numbers.size:
            best[numbers] = np.maximum(best[numbers], values)
    return best


def liked_match(index, items: Sequence[Feedback], number: int) -> Match | None:
    """"because you liked …" for one paper: the liked paper it is most like, if enough, with
    the terms they share as this paper spells them."""
    scored = []
    for item in items:
        numbers, values = likeness(index, item)
        at = int(np.searchsorted(numbers, number))
        if at < numbers.size and numbers[at] == number and values[at] >= SHOWN_LIKED:
            scored.append((-float(values[at]), item.paper_id, item))
    if not scored:
        return None
    item = min(scored)[2]
    shown: list[str] = []
    fields: set[str] = set()
    paper = index.papers[number]
    for unit, _ in marked_terms(index, item):
        spelled = index.spell(number, unit)
        lowered = spelled.lower() if spelled else ""
        if spelled and not any(lowered in s.lower() or s.lower() in lowered for s in shown):
            shown.append(spelled)
            fields.add("title" if spelled in paper.title else "abstract")
            if len(shown) == FEEDBACK_SHOWN:
                break
    where = tuple(name for name in ("title", "abstract") if name in fields)
    return Match(" ".join(item.title.split()) or item.paper_id, where, tuple(shown), "liked", (item.paper_id,))
