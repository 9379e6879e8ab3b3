"""Where the matched terms are in a paper's text: one definition (flows.rank.spans) for the
digest's highlights and for the centre of the abstract snippet, and both agree with where
the ranking counted the keyword."""

from __future__ import annotations

from hypothesis import given, settings as hypothesis_settings, strategies as st

from flows.cards import highlight
from flows.models import Paper
from flows.rank import build_index, rank, snippet
from flows.rank.excerpt import Excerpts
from flows.rank.spans import _regex_candidates, first_spans, plain_candidates, term_spans
from flows.subscribers import Subscriber

FILLER = " ".join(f"filler{i}" for i in range(60))


def _marked(html: str) -> list[str]:
    return [piece.split("</span>")[0] for piece in str(html).split('<span class="hl">')[1:]]


def test_a_phrase_is_not_found_inside_a_compound_but_a_single_word_is():
    text = "Real-world models beat BC-RL; world models help text-to-image generation."
    found = [text[a:b] for a, b in term_spans(text, ["world models", "RL", "image generation"])]
    assert found == ["RL", "world models", "image generation"]


def test_an_underscore_separates_words_as_in_the_ranking():
    # The ranking's words are runs of letters and digits: "RL_agent" holds the word "RL".
    paper = Paper(id="p", title="A study", abstract="We train an RL_agent on grids.", listed="2026-12-01")
    index = build_index([paper])
    assert [r.paper.id for r in rank(index, Subscriber(email="a@example.com", keywords=["RL"]))] == ["p"]
    assert _marked(highlight(paper.abstract, ["RL"])) == ["RL"]
    assert term_spans("x_RL_y", ["RL"]) == [(2, 4)]


def test_the_snippet_centres_on_the_phrase_the_digest_highlights_not_on_the_compound():
    # "real-world models" comes first; the keyword `world models` counts only the later,
    # free-standing "world models", so the snippet must show that one (and highlight it).
    abstract = f"We study real-world models of traffic. {FILLER} Finally, world models predict the next frame."
    expected_centre = abstract.index("Finally, world models")
    for cut in (snippet(abstract, ["world models"], 120), Excerpts([abstract], 120).snippet(0, ("world models",))):
        assert "Finally, world models" in cut and "real-world" not in cut
        assert _marked(highlight(cut, ["world models"])) == ["world models"]
    assert expected_centre > 120  # the old centre (the compound) would have cut the phrase out


def test_in_a_digest_the_snippet_shows_the_match_the_ranking_counted():
    abstract = f"Our real-world models are large. {FILLER} We then train world models on video."
    paper = Paper(id="w", title="Video prediction", abstract=abstract, listed="2026-12-01")
    (found,) = rank(build_index([paper]), Subscriber(email="a@example.com", keywords=["world models"]),
                    graded=False, related="off")
    assert "train world models" in found.snippet and "real-world" not in found.snippet


WORDS = st.sampled_from(["world", "models", "real", "to", "image", "RL", "BC", "of", "a", "Models"])
SEPARATORS = st.sampled_from([" ", "-", ", ", " (", "-to-", "_", "\u2013", " of "])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=12).map(
    lambda pairs: "".join(word + separator for word, separator in pairs).strip())
TERMS = st.lists(st.sampled_from(["world models", "models", "real world", "image", "RL",
                                  "to image", "a world", "world", "image of a"]), min_size=1, max_size=4)


@hypothesis_settings(max_examples=300, deadline=None)
@given(TEXTS, TERMS)
def test_the_quick_search_and_the_regex_find_the_same_spans(text, chosen):
    wanted = {term.lower() for term in chosen}
    quick = first_spans(plain_candidates(text, text.lower(), wanted))
    assert quick == first_spans(_regex_candidates(text, wanted))
    assert term_spans(text, chosen) == quick


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=4), TERMS, st.integers(min_value=20, max_value=120))
def test_the_snippet_centre_is_a_highlighted_span(pieces, chosen, width):
    # Whatever the snippet shows of a term, the highlight marks it there; and where the
    # text holds a term at all, the snippet holds one too.
    text = f" {FILLER} ".join(pieces)
    cut = Excerpts([text], width).snippet(0, tuple(chosen))
    assert cut == snippet(text, chosen, width)
    if term_spans(text, chosen) and len(text) > width:
        inner = cut.strip("…")
        shown = term_spans(inner, chosen)
        longest = max(len(term) for term in chosen)
        assert shown or longest > width - 2
