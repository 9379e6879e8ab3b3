"""Graded phrase matching: which parts of a multi-word keyword earn partial credit, and how much.

A keyword of several words (``deep reinforcement learning``) matches fully only where a
paper writes the whole phrase (or a variant: hyphen, joined, acronym). Papers on the same
subject often write only part of it ("reinforcement learning", "RL") or its words apart
("a deep network trained by reinforcement learning"). Those earn partial credit, always
less than the whole phrase:

* **parts**: every shorter run of the keyword's words (a hyphenated or joined word such as
  ``multi-task`` is one unit, never split), scored like a keyword of its own and
  multiplied by its credit::

      credit(part) = PART_CREDIT · (idf(part) / idf(keyword)) · (1 if it holds the head else MODIFIER)

  English puts the head of a noun phrase last ("deep reinforcement *learning*"), or
  before its first preposition ("*mixture* of experts"): a part that holds the head
  names a broader subject that contains the keyword's ("reinforcement learning"), a
  part without it only a modifier ("deep"). The idf ratio says how much of the
  keyword's specificity the part keeps: a part nearly as rare as the whole phrase keeps
  nearly all of it, a word that most papers use ("learning") keeps nearly none. Parts
  below ``MIN_CREDIT`` earn nothing. A single word earns credit on its own only if it is
  a compound ("multi-task", "model-based": one concept), or the head, used by at most
  ``MAX_SHARE`` of the papers, and not the head of an idiom with a linking word
  ("*mixture* of experts"): a plain modifier ("deep", "continual") says too little alone.
* **words**: all the keyword's units close together (within ``WINDOW`` words in one
  field) but not as the phrase: ``WORDS_CREDIT``, less for two-unit keywords, whose words
  meet by chance more often.

Per field, a keyword scores its best level (the whole phrase, or the best-credited part
or words match there); levels never add up, so partial credit can never exceed the
whole phrase's score. Document frequencies come from the stored corpus when the index
has it, else from the index itself; an index too small to tell (fewer than
``MIN_DOCUMENTS`` papers) counts every word as equally specific and credits no plain word
on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from flows.rank.text import words

PART_CREDIT = 0.8
MODIFIER = 0.3  # a part without the head keeps this share of its credit
COMPOUND_MODIFIER = 1.0  # the same for a lone compound modifier ("multi-task" of multi-task learning)
MIN_CREDIT = 0.2
MAX_SHARE = 0.05  # a single head word in more than this share of papers is too common to count
WORDS_CREDIT = 0.7  # all units close together, not as the phrase (three or more units)
WORDS_CREDIT_PAIR = 0.5  # the same for a two-unit keyword
WINDOW = 4  # words from the first unit to the last of a "words" match (4: "model-based offline reinforcement learning")
MIN_DOCUMENTS = 30
MAX_UNITS = 6  # longer keywords get their prefixes and suffixes only

# Words that link a head to what follows it ("mixture of experts"); never a part's edge.
LINKS = frozenset("of for from in on with to by via under over as at into onto between".split())
FUNCTION_WORDS = LINKS | frozenset("a an and or the its their our".split())


@dataclass(frozen=True, slots=True)
class Part:
    """One way to match a keyword partly."""

    label: str  # as written in the keyword ("reinforcement learning")
    words: tuple[str, ...]  # its normalised words
    credit: float  # share of the whole phrase's score it earns, below 1
    kind: str  # "part" (a shorter run of the keyword) or "words" (all units, apart)
    units: tuple[tuple[str, ...], ...] = ()  # "words": the units that must all occur


def keyword_units(label: str) -> list[tuple[str, tuple[str, ...]]]:
    """The keyword's units: each whitespace-separated chunk with its normalised words."""
    found = []
    for chunk in label.split():
        chunk_words = tuple(words(chunk))
        if chunk_words:
            found.append((chunk, chunk_words))
    return found


def head_unit(units: list[tuple[str, tuple[str, ...]]]) -> int:
    """Index of the head: the unit before the first linking word, else the last one."""
    for i, (_, unit_words) in enumerate(units):
        if i > 0 and len(unit_words) == 1 and unit_words[0] in LINKS:
            return i - 1
    return len(units) - 1


def graded_parts(
    label: str, df: Callable[[tuple[str, ...]], int], documents: int
) -> tuple[Part, ...]:
    """The partial matches of a keyword, best credited first; () for a one-unit keyword.

    ``df`` gives the number of papers holding a word sequence (any of its variants), out
    of ``documents``.
    """
    units = keyword_units(label)
    if len(units) < 2:
        return ()
    head = head_unit(units)
    linked = any(len(unit_words) == 1 and unit_words[0] in LINKS for _, unit_words in units)
    all_words = tuple(word for _, unit_words in units for word in unit_words)
    idf = _idf(df, documents)
    whole = idf(all_words)
    found: list[Part] = []
    for start, end in _runs(len(units)):
        run = units[start:end]
        if _function_word(run[0][1]) or _function_word(run[-1][1]):
            continue
        if not _whole_objects(units, start, end):
            continue
        part_words = tuple(word for _, unit_words in run for word in unit_words)
        if len(run) == 1 and not _alone(run[0][1], start == head, linked, df, documents):
            continue
        if start <= head < end:
            role = 1.0
        else:
            role = COMPOUND_MODIFIER if len(run) == 1 and len(run[0][1]) >= 2 else MODIFIER
        credit = PART_CREDIT * min(1.0, idf(part_words) / whole) * role
        if credit >= MIN_CREDIT:
            found.append(Part(" ".join(chunk for chunk, _ in run), part_words, round(credit, 6), "part"))
    content = tuple(unit_words for _, unit_words in units if not _function_word(unit_words))
    if len(content) >= 2:
        credit = WORDS_CREDIT if len(content) >= 3 else WORDS_CREDIT_PAIR
        found.append(Part(label, all_words, credit, "words", content))
    found.sort(key=lambda part: -part.credit)
    return tuple(found)


def _alone(unit: tuple[str, ...], is_head: bool, linked: bool,
           df: Callable[[tuple[str, ...]], int], documents: int) -> bool:
    """Whether one unit of a keyword may earn credit on its own: a compound ("multi-task",
    "model-based") names a concept by itself; a plain word only if it is the head, not
    common, and not the head of an idiom with a linking word ("mixture" of experts)."""
    if len(unit) >= 2:
        return True
    if not is_head or linked or documents < MIN_DOCUMENTS:  # too few papers to tell a common word
        return False
    return df(unit) <= MAX_SHARE * documents


def _function_word(unit: tuple[str, ...]) -> bool:
    """A unit that is a lone function word ("of" in mixture of experts): never a part's
    edge. A compound that starts or ends with one ("in-context", "out-of-distribution",
    "on-policy") is a word of its own and may be a part."""
    return len(unit) == 1 and unit[0] in FUNCTION_WORDS


def _whole_objects(units: list[tuple[str, tuple[str, ...]]], start: int, end: int) -> bool:
    """Whether a run that holds a linking word keeps what that word links whole: it ends
    where the keyword ends or just before another linking word. "learning from human
    feedback" and "mixture of experts" (of `mixture of experts in vision`) are parts;
    "learning from human" is not (it cuts "human feedback" in two)."""
    if end == len(units) or not any(unit[0] in LINKS for _, unit in units[start + 1:end - 1] if len(unit) == 1):
        return True
    return _function_word(units[end][1])


def _runs(count: int) -> list[tuple[int, int]]:
    """Shorter contiguous runs of ``count`` units (start, end); only prefixes and suffixes
    of a long keyword."""
    if count > MAX_UNITS:
        return [(0, end) for end in range(1, count)] + [(start, count) for start in range(1, count)]
    return [(start, end) for start in range(count) for end in range(start + 1, count + 1)
            if end - start < count]


def _idf(df: Callable[[tuple[str, ...]], int], documents: int) -> Callable[[tuple[str, ...]], float]:
    if documents < MIN_DOCUMENTS:
        # Too few papers to tell a common word from a rare one: each word counts alike.
        return lambda sequence: float(len([w for w in sequence if w not in FUNCTION_WORDS]) or 1)
    return lambda sequence: math.log((documents + 1) / (df(sequence) + 0.5))
