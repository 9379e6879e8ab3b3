"""The digest's cards made from markup cut once per paper: what the template's cards block
gives for one paper, cut into the pieces that depend on the paper alone and the holes that
each subscriber's card fills in.

A run mails each paper to about a hundred subscribers, and the template's card loop cost
about as much per card as building the card (≈ 14 µs of Jinja a card in the HTML
template). So the HTML template puts its card loop in a block (``{% block cards %}``
around ``{% for p in papers %}``). A `CardsBlock` renders that block on its own, for one
card, once per paper and per set of the subscriber's fields that are empty
(`flows.cards.SUBSCRIBER_FIELDS`), with unguessable marks in place of the non-empty ones,
and cuts the result at the marks; a digest's cards are then each paper's pieces joined
with the card's own values, converted as the template converts them (escaped in an
autoescaped template, ``str`` otherwise). The markup stays in the template, which renders
the same without any of this (per-email inlining, a template without the block).

This is exact where the block uses nothing but ``papers`` and ``p``, no ``loop.*``, and
the subscriber's fields only as they are or for whether they are empty (an empty field is
empty the same way on every card: `flows.cards.paper_card` makes them). Each cut is checked
when it is made: the block is rendered again with marks of another length, and with the
card twice; the pieces must be the same, the two cards twice the one, and the card at hand
filled in must be exactly what the block gives for it. A block that fails for a paper is
rendered by Jinja for that paper; one that needs any other variable, for every digest.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from jinja2 import Template, UndefinedError
from markupsafe import Markup, escape

from flows.cards import ESCAPED_CHARS, SUBSCRIBER_FIELDS, Fields
from flows.models import Paper

MAX_CUTS = 4096  # papers (and sets of empty fields) whose cut is kept: a run has a few thousand

_Cut = tuple[tuple[str, ...], tuple[str, ...]]  # (the pieces, the field in each hole between two)
_values = operator.itemgetter(*SUBSCRIBER_FIELDS)


def _escaped(value: Any) -> str:
    """What autoescaping writes for ``value``: markupsafe.escape, without making a Markup of
    text that has nothing to escape (a third of the cost of filling in a card)."""
    if type(value) is Markup:
        return value
    if type(value) is str and not ESCAPED_CHARS.search(value):
        return value
    return escape(value)


class CardsBlock:
    """A template's block of the card loop, cut once per paper (see the module docstring)."""

    def __init__(self, template: Template, name: str) -> None:
        self.template, self.name = template, name
        self._block = template.blocks[name]
        autoescape = template.environment.autoescape
        escaped = autoescape(template.name) if callable(autoescape) else bool(autoescape)
        self._convert: Callable[[Any], str] = _escaped if escaped else str
        token = secrets.token_bytes(8).hex()
        self._marks = [{field: Markup(f"\x00{token}{pad}{field}\x00") for field in SUBSCRIBER_FIELDS}
                       for pad in ("", "-longer-")]
        self._cuts: dict[tuple, tuple[Paper, _Cut | None]] = {}
        self._pieces: dict[str, str] = {}
        self.usable = True  # False once the block needs more than papers and p: Jinja renders it

    def render(self, context: dict[str, Any], papers: Sequence[Paper]) -> str:
        """The whole template, the block made of each card's cut (the cards are
        ``context["papers"]``, for ``papers`` in the same order)."""
        template = self.template
        try:
            cards = self.cards(context["papers"], papers)
        except (_Unusable, UndefinedError):  # the block needs more than papers and p
            self.usable = False
            return template.render(context)
        ctx = template.new_context(context)
        ctx.blocks[self.name] = [lambda _: (cards,)]
        try:
            return template.environment.concat(template.root_render_func(ctx))  # type: ignore[attr-defined]
        except Exception:
            return template.environment.handle_exception()

    def cards(self, cards: Sequence[Fields], papers: Sequence[Paper]) -> str:
        """What the block gives for ``cards``."""
        out: list[str] = []
        convert = self._convert
        for card, paper in zip(cards, papers):
            cut = self._cut_for(card, paper) if card.get("id") == paper.id else None
            if cut is None:
                out.append(self._render([card]))
                continue
            pieces, fields = cut
            out.append(pieces[0])
            for field, piece in zip(fields, pieces[1:]):
                out += (convert(card[field]), piece)
        if len(cards) > len(papers):
            out.append(self._render(cards[len(papers):]))
        return "".join(out)

    def _cut_for(self, card: Fields, paper: Paper) -> _Cut | None:
        # By the paper object itself (hashing a Paper's fields cost a fifth of filling a card
        # in): the corpus keeps it for the whole run; a new one with the same id() is another.
        key = (id(paper), *map(operator.not_, _values(card)))
        found = self._cuts.get(key)
        if found is not None and found[0] is paper:
            return found[1]
        cut = self._cut(card)
        if cut is not None:  # most pieces (styles, structure) recur from paper to paper
            cut = (tuple(self._pieces.setdefault(piece, piece) for piece in cut[0]), cut[1])
        if len(self._cuts) >= MAX_CUTS:
            self._cuts.clear()
            self._pieces.clear()
        self._cuts[key] = (paper, cut)
        return cut

    def _render(self, cards: Sequence[Fields]) -> str:
        return "".join(self._block(self.template.new_context({"papers": cards})))

    def _cut(self, card: Fields) -> _Cut | None:
        try:
            real, twice = self._render([card]), self._render([card, card])
        except UndefinedError as exc:  # a variable other than papers and p
            raise _Unusable from exc
        if twice != real * 2:  # loop.*, or a variable set in one card and read in the next
            raise _Unusable
        cuts = [_cut_at(self._render([Fields.of(card, {field: mark for field, mark in marks.items()
                                                         if card[field]})]), marks)
                for marks in self._marks]
        if cuts[0] != cuts[1] or _filled(cuts[0], card, self._convert) != real:
            return None  # this paper's card through Jinja, as it is
        return cuts[0]


class _Unusable(Exception):
    """The block is not one card after another of papers and p alone: Jinja renders it."""


def _cut_at(text: str, marks: dict[str, Markup]) -> _Cut:
    """``text`` cut at every mark: the pieces between, and which field each mark stood for."""
    by_mark = {str(mark): field for field, mark in marks.items()}
    pieces, fields, position, start = [], [], 0, 0
    while (at := text.find("\x00", start)) >= 0:
        end = text.find("\x00", at + 1)
        field = by_mark.get(text[at:end + 1]) if end >= 0 else None
        if field is None:  # a NUL of the paper's own text, not a mark
            start = at + 1
            continue
        pieces.append(text[position:at])
        fields.append(field)
        position = start = end + 1
    pieces.append(text[position:])
    return tuple(pieces), tuple(fields)


def _filled(cut: _Cut, card: Fields, convert: Callable[[Any], str]) -> str:
    pieces, fields = cut
    out = [pieces[0]]
    for field, piece in zip(fields, pieces[1:]):
        out += (convert(card[field]), piece)
    return "".join(out)
