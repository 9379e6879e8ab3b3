"""The cards block cut once per paper (flows/fragments.py) gives exactly what Jinja gives."""

from __future__ import annotations

import pytest
from jinja2 import DictLoader, Environment, StrictUndefined

from flows.cards import digest_context
from flows.fragments import CardsBlock
from flows.render import Renderer
from tests.test_render import LINKS, TEMPLATES, digest_of, make_paper, ranked, sample_digests


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    from flows.settings import Settings

    return Renderer(TEMPLATES, settings=Settings(public_base_url="https://paperboy.example.org"))


def subscriber():
    from flows.subscribers import Subscriber

    return Subscriber(email="ada@example.com", name="Ada", keywords=["reinforcement learning", "RL"])


def test_the_digest_template_is_cut_and_renders_as_jinja(renderer):
    assert renderer._cards is not None
    for digest in sample_digests() * 2:  # the second time from the cuts made the first
        context = digest_context(digest, subscriber(), LINKS, styles=renderer.styles)
        assert renderer._cards.render(context, [r.paper for r in digest.papers]) == renderer._html.render(context)
    assert renderer._cards.usable


def block_of(body: str) -> CardsBlock:
    env = Environment(loader=DictLoader({"t.html": f"<ul>{{% block cards %}}{{% for p in papers %}}{body}"
                                                    "{% endfor %}{% endblock %}</ul>{{ subject }}"}),
                      autoescape=True, undefined=StrictUndefined)
    return CardsBlock(env.get_template("t.html"), "cards")


@pytest.mark.parametrize("body, usable", [
    ("<li>{{ p.title }}: {{ p.text_html }} <a href='{{ p.more_like }}'>x</a></li>", True),
    ("<li>{{ p.title }}: {{ p.text | upper }}</li>", True),  # changes a field: Jinja for each paper
    ("<li>{{ p.title }} {{ p.matched | length }}</li>", True),
    ("<li>{% if p.text_label == 'AI summary' %}TL;DR{% endif %}{{ p.text }}</li>", True),
    ("<li>{{ loop.index }}. {{ p.title }}</li>", False),  # position: Jinja for the whole block
    ("<li>{{ subject }} {{ p.title }}</li>", False),  # another variable
])
def test_a_block_that_cannot_be_cut_falls_back_to_jinja(body, usable):
    block = block_of(body)
    digest = digest_of([ranked(make_paper(i)) for i in range(4)])
    for links in (LINKS, LINKS):
        context = digest_context(digest, subscriber(), links)
        context["subject"] = "<b>"
        papers = [r.paper for r in digest.papers]
        assert block.render(context, papers) == block.template.render(context)
    summary = digest_of([ranked(make_paper(1, ai_summary="We find RL works."))])
    context = dict(digest_context(summary, subscriber(), LINKS), subject="s")
    assert block.render(context, [r.paper for r in summary.papers]) == block.template.render(context)
    assert block.usable is usable
