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

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["more", "less"]
VERDICTS: tuple[str, ...] = ("more", "less")
FEEDBACK_TERMS = 20  # units of a marked paper that describe it
LIKED_WEIGHT = 6.0
DISLIKED_WEIGHT = 4.0
SHOWN_LIKED = 0.12  # a liked paper is named in the explanation from this cosine on
FEEDBACK_SHOWN = 3  # shared terms named in a "because you liked" explanation


@dataclass(frozen=True, slots=True)
class Feedback:
    """One paper a subscriber marked: ``more`` (like this) or ``less`` (like this)."""

    paper_id: str
    verdict: str  # "more" or "less"
    title: str
    abstract: str = ""
