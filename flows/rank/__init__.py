"""Ranking: each subscriber's keywords against the day's papers, with explanations.

Build one :class:`PaperIndex` per run with :func:`build_index`, then call
:func:`rank` for every subscriber (or :func:`rank_many` for a batch);
:func:`trending` fills "Also trending" and :func:`snippet` cuts the abstract
excerpt shown under each paper.

Keyword language
----------------
Each entry of a subscriber's ``keywords`` list is one keyword:

==============================  ==============================================================
``diffusion``                   a word; plurals and inflections fold with the Snowball stemmer
                                ("models", "modeling" → "model"), British spellings with
                                American ones ("optimisation" = "optimization")
``reinforcement learning``      several words: a phrase, matched as adjacent words
``"graph neural networks"``     in quotes: the whole phrase only (any of its spellings), never
                                its parts or thesaurus neighbours (see flows.rank.graded);
                                also how to write a keyword holding ``-``, ``:`` or ``^``
``multi-agent``                 hyphen, space and joined forms are alike: "multi-agent" =
                                "multi agent" = "multiagent"
``RL``                          an acronym matches its long forms too, a long form its acronym
``diffusion^2``                 weight, 0.1 to 10 (default 1): multiplies the keyword's score
``title:diffusion``             only in the title (or ``abstract:``); ``title:"world model"^2``
``-survey``, ``-title:survey``  exclusion: a paper matching it is never included; entries of
                                ``exclude:`` are exclusions too (with or without the ``-``)
==============================  ==============================================================

Matching is case-insensitive, after Unicode NFKC, on whole words only: "RL" never
matches "world", "GAN" never "organ". A phrase never spans a clause break (". ",
", ", a bracket). An unbalanced quote, an empty phrase, a weight outside 0.1–10, a
weight on an exclusion or an unknown ``field:`` raise :class:`QueryError`, whose
message names the keyword.

Score
-----
For one paper, with tf the number of times keyword k occurs in a field (any of its
forms: "RL" and "reinforcement learning" both count for either)::

    sat(tf)   = tf · 2.2 / (tf + 1.2)       BM25 saturation: 1 → 1, 2 → 1.38, 3 → 1.57, ∞ → 2.2
    s_k       = weight_k · (3 · b_title · sat(tf_title) + 1 · b_abstract · sat(tf_abstract))
    b_field   = 1.5 if the field holds k as a phrase (two or more words) or an acronym
                or its long form, else 1
    score     = Σ_k s_k  +  0.25 · popularity · ln(1 + upvotes)

``popularity`` is the subscriber's setting (0 to 10, default 1; 0 ignores upvotes).
One title mention (3) outweighs any number of abstract mentions (at most 2.2). A
paper is included only if at least one keyword matches it (upvotes alone never
include a paper), no exclusion matches it, it was not delivered before, and its
score is at least 0.5 (one abstract mention of a keyword weighted below 0.5 is not
enough on its own). Order: score, then upvotes, then paper id; at most
``max_papers``. Scores compare as reported, rounded to 6 decimals.

Acronyms
--------
Three sources, merged: :data:`BUILTIN_ACRONYMS` (RL, MARL, MBRL, RLHF, LLM, VLM,
MoE, GAN, LoRA, … about 80 settled in ML writing); the operator's CSV file named by
the setting ``acronyms_file`` (``PAPERBOY_ACRONYMS_FILE``), one ``acronym,long form``
per line, ``#`` starts a comment; and the day's abstracts, whose definitions
("… large language models (LLMs) …") are found with the Schwartz–Hearst algorithm.
Where the built-in table or the operator's file defines an acronym, the abstracts
add nothing to it; an acronym the abstracts define two ways about equally often,
or also write in lower case as an ordinary word ("DELTA", "delta"), is left out.
"""

from flows.rank.acronyms import (
    BUILTIN_ACRONYMS,
    AcronymFileError,
    AcronymTable,
    learn_acronyms,
    load_acronyms,
)
from flows.rank.excerpt import snippet
from flows.rank.feedback import VERDICTS, Feedback
from flows.rank.index import PaperIndex, build_index
from flows.rank.query import MAX_WEIGHT, MIN_WEIGHT, Query, QueryError, Term, parse_keyword, parse_query
from flows.rank.related import RelatedModel, learn_related
from flows.rank.score import MIN_SCORE, RELATED_LEVELS, prepare, rank, rank_many, trending

__all__ = [
    "BUILTIN_ACRONYMS",
    "VERDICTS",
    "MAX_WEIGHT",
    "MIN_SCORE",
    "MIN_WEIGHT",
    "AcronymFileError",
    "AcronymTable",
    "Feedback",
    "PaperIndex",
    "Query",
    "QueryError",
    "RELATED_LEVELS",
    "RelatedModel",
    "Term",
    "build_index",
    "learn_acronyms",
    "learn_related",
    "load_acronyms",
    "parse_keyword",
    "parse_query",
    "prepare",
    "rank",
    "rank_many",
    "snippet",
    "trending",
]
