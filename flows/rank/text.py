"""Text normalisation shared by keywords and papers, so both sides fold words alike.

A token is a run of letters and digits (an apostrophe may sit inside: "model's").
Each token is NFKC-normalised, case-folded, spelled the American way (see
:mod:`flows.rank.spelling`) and stemmed with the Snowball English stemmer. A clause break leaves an empty slot (None) in the token list, so a phrase
never matches across it: a bracket, or punctuation with a space (". ", ", ", "; ").
Spaces, hyphens, dashes and slashes keep words adjacent ("multi-agent" = "multi
agent"), as does one punctuation character inside a word ("3.5").

Every function here takes time linear in its input: untrusted abstracts reach it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from itertools import accumulate

import Stemmer

from flows.rank.spelling import american

TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_TOKEN_AND_SEPARATORS = re.compile(f"({TOKEN.pattern})")
_BRACKETS = frozenset("(){}[]")
_JOINERS = frozenset("-‐‑‒–—/+'’`\"")  # keep words adjacent, as spaces do
_VOWELS = frozenset("aeiouy")
_STEMMER = Stemmer.Stemmer("english")


class _Remembered(dict):
    """A one-argument function of a word as a dict of its results, filled on first use:
    ``remembered(limit)(f)(word)`` is ``f(word)``. The same few tens of thousands of words
    come back all day; a repeat costs one lookup at C speed, and an entry no linked-list
    node as ``functools.lru_cache`` keeps (≈ 56 bytes each: ≈ 2 MB in a render process).
    Emptied when it holds ``limit`` words."""

    __call__ = dict.__getitem__

    def __init__(self, function: Callable[[str], object], limit: int) -> None:
        super().__init__()
        self.__wrapped__, self.limit, self.__doc__ = function, limit, function.__doc__

    def __missing__(self, word: str):
        if len(self) >= self.limit:
            self.clear()
        found = self[word] = self.__wrapped__(word)
        return found

    cache_clear = dict.clear


def remembered(limit: int) -> Callable[[Callable], _Remembered]:
    return lambda function: _Remembered(function, limit)


@remembered(100_000)
def normalise(raw: str) -> tuple[str, ...]:
    """The case-folded NFKC word(s) of one raw token (usually exactly one)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    return tuple(TOKEN.findall(folded.replace("’", "'")))


@remembered(200_000)
def stem(word: str) -> str:
    """Snowball stem of a normalised word, also folding acronym plurals ("llms" → "llm")
    and British spellings ("optimisation" → "optim", as "optimization")."""
    if word.isdigit():
        return word
    stemmed = _STEMMER.stemWord(american(word))
    # Snowball keeps the "s" of vowel-less words, so "LLMs" and "SSMs" would not meet
    # their singular.
    if len(stemmed) >= 3 and stemmed[-1] == "s" and not _VOWELS.intersection(stemmed[:-1]):
        stemmed = stemmed[:-1]
    return stemmed


_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")  # doubled before -ed/-ing ("planned", "modelled")


@remembered(100_000)
def inflection_base(word: str) -> str:
    """A normalised word without its inflection: the plural or possessive "s", and the
    verb endings "-ed"/"-ing" (Porter's step 1, plus a final "e" and a doubled consonant
    dropped), so that "adapters" and "adapter", "optimizing" and "optimized", "studies" and
    "study" meet, but "adapter", "adaptive" and "adaptation" stay apart, which the Snowball
    stem ("adapt") folds together. Comparing two words' bases tells whether they are the
    same word inflected or different words of one stem family. British spellings fold
    first ("normalised" → as "normalized")."""
    word = american(word)
    w = word[:-2] if word.endswith(("'s", "’s")) else word
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    for ending in ("ing", "ed"):
        if w.endswith(ending) and len(w) - len(ending) >= 3 and _VOWELS.intersection(w[:-len(ending)]):
            w = w[:-len(ending)]
            break
    if w.endswith("ie") and len(w) > 3:  # "studied" → "studi" → as "study"
        w = w[:-2] + "y"
    if w.endswith("i") and len(w) > 3:
        w = w[:-1] + "y"
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] in _CONSONANTS:
        w = w[:-1]
    return w


class _StemsOfToken(dict):
    """Raw token → its stems; a dict so the hot loops look tokens up at C speed."""

    def __missing__(self, raw: str) -> tuple[str, ...]:
        if len(self) > 500_000:
            self.clear()
        stems = self[raw] = tuple(stem(word) for word in normalise(raw))
        return stems


class _BreaksClause(dict):
    """Separator → whether it ends a clause; separators repeat, so remember them."""

    def __missing__(self, separator: str) -> bool:
        if len(self) > 100_000:
            self.clear()
        breaks = self[separator] = breaks_clause(separator)
        return breaks


def breaks_clause(separator: str) -> bool:
    """Whether the text between two tokens ends a clause: it holds no word character
    (``\\w``), and a bracket, or punctuation with at least one more character beside it.

    One linear pass. (It was the regex ``\\W*[brackets]\\W*|\\W*P\\W+|\\W+P\\W*``, whose
    fullmatch backtracks quadratically on a long run of ". " ending in "_": a 60 KB
    abstract took 37 s.)
    """
    if any(char.isalnum() or char == "_" for char in separator):
        return False
    if any(char in _BRACKETS for char in separator):
        return True
    return len(separator) >= 2 and any(not char.isspace() and char not in _JOINERS for char in separator)


_STEMS_OF_TOKEN = _StemsOfToken()
_BREAKS_CLAUSE = _BreaksClause()


def stems(text: str) -> list[str | None]:
    """The field's token list as stems, None where a clause breaks."""
    parts = _TOKEN_AND_SEPARATORS.split(text)  # separator, token, separator, …, separator
    breaks = [_BREAKS_CLAUSE[separator] for separator in parts[2:-1:2]] + [False]
    result: list[str | None] = []
    for raw, breaks_after in zip(parts[1::2], breaks):
        result.extend(_STEMS_OF_TOKEN[raw])
        if breaks_after and result and result[-1] is not None:
            result.append(None)
    return result


def stems_and_spans(text: str) -> tuple[list[str | None], list[int], list[int]]:
    """:func:`stems` and :func:`spans` of the text, splitting it once."""
    parts = _TOKEN_AND_SEPARATORS.split(text)
    breaks = [_BREAKS_CLAUSE[separator] for separator in parts[2:-1:2]] + [False]
    result: list[str | None] = []
    break_slots: list[int] = []
    for raw, breaks_after in zip(parts[1::2], breaks):
        result.extend(_STEMS_OF_TOKEN[raw])
        if breaks_after and result and result[-1] is not None:
            break_slots.append(len(result))
            result.append(None)
    if len(result) - len(break_slots) != len(parts) // 2:  # a token that is not one word
        return result, *spans(text)
    # Each token is one slot: its span comes straight from the lengths of the parts.
    offsets = list(accumulate(map(len, parts)))
    begins, ends = offsets[0:-1:2], offsets[1::2]
    for slot in break_slots:  # ascending, so each insert shifts only what follows
        begins.insert(slot, -1)
        ends.insert(slot, -1)
    return result, begins, ends


def spans(text: str) -> tuple[list[int], list[int]]:
    """Where each slot of :func:`stems` begins and ends in ``text`` (-1 for a clause break)."""
    parts = _TOKEN_AND_SEPARATORS.split(text)
    offsets = list(accumulate(map(len, parts)))
    breaks = [_BREAKS_CLAUSE[separator] for separator in parts[2:-1:2]] + [False]
    begins: list[int] = []
    ends: list[int] = []
    for i, (raw, breaks_after) in enumerate(zip(parts[1::2], breaks)):
        count = len(_STEMS_OF_TOKEN[raw])
        begins.extend([offsets[2 * i]] * count)
        ends.extend([offsets[2 * i + 1]] * count)
        if breaks_after and begins and begins[-1] != -1:
            begins.append(-1)
            ends.append(-1)
    return begins, ends


def split_tokens(text: str) -> list[str]:
    """The text cut into separator, token, separator, …, separator (tokens at odd places)."""
    return _TOKEN_AND_SEPARATORS.split(text)


def words(text: str) -> list[str]:
    """The normalised (unstemmed) words of a short text such as a keyword."""
    return [word for match in TOKEN.finditer(text) for word in normalise(match.group())]


def holds_name(name: str, other: str) -> bool:
    """Whether ``other`` names ``name`` (or more): its words' stems, a run of whole words
    within ``other``'s. "Time-series" holds "time series" and "chain of thoughts" holds
    "chain of thought"; "world model" does not hold "RL" (nor "world" "or"), as a plain
    substring test said."""
    return _spaced_stems(name) in _spaced_stems(other)


@remembered(4096)  # the same related terms, named paper after paper
def _spaced_stems(name: str) -> str:
    return f" {' '.join(stem(word) for word in words(name))} "
