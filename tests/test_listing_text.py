"""Bidirectional-override characters from a listing never reach a digest or a web page.

U+202E (RIGHT-TO-LEFT OVERRIDE) and its kin reorder how the text after them is displayed
(the "Trojan Source" trick): a paper title holding one showed, in the digest and on the web
pages, text that read differently from what it was. No real title or abstract needs them
(right-to-left scripts are laid out without overrides), so they are dropped where the text
enters, with the other controls.
"""

from __future__ import annotations

from datetime import date

import pytest

from flows.sources.huggingface import parse_item

DAY = date(2025, 6, 13)


@pytest.mark.parametrize("mark", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"])
def test_bidi_overrides_are_dropped_from_titles_abstracts_and_authors(mark):
    paper = parse_item({"paper": {"id": "2506.00001", "title": f"Safe{mark}txt.exe title",
                                  "summary": f"An {mark}abstract.", "authors": [{"name": f"Ada{mark} L"}]}}, DAY)
    assert paper.title == "Safetxt.exe title"
    assert paper.abstract == "An abstract."
    assert paper.authors == ("Ada L",)


def test_right_to_left_text_itself_is_kept():
    title = "نموذج لغوي كبير: a large language model"
    assert parse_item({"paper": {"id": "2506.00002", "title": title}}, DAY).title == title


def test_a_versioned_arxiv_id_is_the_paper_arxiv_lists_without_it():
    # arXiv's source drops the version (flows/sources/arxiv.py); an HF item carrying one was a
    # second row for the same paper, so a subscriber of both sources could be sent it twice.
    paper = parse_item({"paper": {"id": "2506.00001v3", "title": "A title"}}, DAY)
    assert paper.id == "2506.00001"
    assert paper.url == "https://huggingface.co/papers/2506.00001"
    assert parse_item({"paper": {"id": "sample-v2", "title": "A title"}}, DAY).id == "sample-v2"  # not arXiv's
