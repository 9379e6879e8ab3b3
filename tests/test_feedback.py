"""Feedback that teaches the ranking: signed "more / less like this" links, a page that only
asks on GET, the verdicts in SQLite with undo, and their effect on the next ranking."""

from __future__ import annotations

import pickle
import re
from datetime import date
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient

from flows.corpus import Corpus
from flows.links import FEEDBACK_VERDICTS, TokenError, digest_links, make_token, read_feedback_link
from flows.rank import Feedback, build_index, rank
from flows.rank.feedback import DISLIKED_WEIGHT, best_likeness
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import Subscriber
from flows.web import create_app
from tests.test_related import model, sample
from tests.test_web import KEY, csrf_in, folder, papers, settings, today  # noqa: F401 (fixtures)

ADA = "ada@example.org"


def feedback_url(paper_id: str, verdict: str, email: str = ADA) -> str:
    links = digest_links(Settings(secret_key=KEY, public_base_url="http://testserver"), KEY, email)
    return links.feedback_link(paper_id, verdict)


def parts(url: str) -> tuple[str, str, str, str]:
    """(token, verdict, paper, sig) of a feedback URL: /feedback/TOKEN/PAPER/VERDICT?sig=MAC."""
    split = urlsplit(url)
    _, _, token, paper, verdict = split.path.split("/")
    return token, verdict, unquote(paper), parse_qs(split.query)["sig"][0]


@pytest.fixture
def client(settings):  # noqa: F811
    with TestClient(create_app(settings)) as client:
        yield client


# -- links ------------------------------------------------------------------------------------------


def test_a_feedback_link_names_its_subscriber_paper_and_verdict_and_nothing_else():
    url = feedback_url("2506.10001", "more")
    token, verdict, paper, sig = parts(url)
    link = read_feedback_link(KEY, token, verdict, paper, sig)
    assert (link.email, link.paper_id, link.verdict) == (ADA, "2506.10001", "more")
    for tampered in ((token, "less", paper, sig), (token, verdict, "2506.10002", sig),
                     (make_token(KEY, "eve@example.org", "feedback"), verdict, paper, sig),
                     (make_token(KEY, ADA, "prefs"), verdict, paper, sig),
                     (token, verdict, paper, sig[:-1] + ("A" if sig[-1] != "A" else "B")),
                     (token, "delete", paper, sig), (token, verdict, paper, "")):
        with pytest.raises(TokenError):
            read_feedback_link(KEY, *tampered)
    with pytest.raises(TokenError):
        read_feedback_link("another-key-0123456789-abcdefghijklm", token, verdict, paper, sig)


def test_paper_ids_with_slashes_survive_the_link():
    token, verdict, paper, sig = parts(feedback_url("hep-th/9901001", "less"))
    assert read_feedback_link(KEY, token, verdict, paper, sig).paper_id == "hep-th/9901001"


# -- the store ----------------------------------------------------------------------------------


def test_verdicts_are_kept_replaced_listed_and_undone(tmp_path):
    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample()[:3])
    first, second, third = (p.id for p in sample()[:3])
    store.record_feedback("Ada@Example.org", first, "more")
    store.record_feedback(ADA, second, "less")
    store.record_feedback(ADA, first, "less")  # changed her mind: one verdict per paper
    store.record_feedback(ADA, "gone.00001", "more")  # not stored (any more): not ranked on
    listed = store.feedback_of(ADA)
    assert {(item["paper_id"], item["verdict"]) for item in listed} == {
        (first, "less"), (second, "less"), ("gone.00001", "more")}
    assert {item["title"] for item in listed} >= {sample()[0].title, sample()[1].title}
    ranked = store.all_feedback()
    assert set(ranked) == {ADA} and {item[0] for item in ranked[ADA]} == {first, second}
    assert all(title and abstract for _, _, title, abstract in ranked[ADA])
    assert store.remove_feedback(ADA, first) and not store.remove_feedback(ADA, first)
    assert {item["paper_id"] for item in store.feedback_of(ADA)} == {second, "gone.00001"}
    with pytest.raises(ValueError):
        store.record_feedback(ADA, third, "maybe")


def test_the_corpus_carries_feedback_to_where_ranking_happens(tmp_path):
    store = Store(tmp_path / "p.db")
    store.upsert_papers(sample())
    store.record_feedback(ADA, sample()[0].id, "more")
    corpus = Corpus.load(store, Settings(db_path=tmp_path / "p.db"), date(2025, 12, 12))
    ada = Subscriber(email="Ada@example.org", keywords=["x"])
    assert [item.paper_id for item in corpus.feedback_for(ada)] == [sample()[0].id]
    shipped = pickle.loads(pickle.dumps(corpus))  # as to a Dask worker or a render process
    assert shipped.feedback_for(ada) == corpus.feedback_for(ada)


# -- the pages ----------------------------------------------------------------------------------


def test_opening_a_feedback_link_only_asks(client, settings):  # noqa: F811
    paper = papers(today())[0]
    url = feedback_url(paper.id, "more").replace("http://testserver", "")
    page = client.get(url)
    assert page.status_code == 200 and paper.title in page.text and 'id="confirm-feedback"' in page.text
    with Store(settings.db_path) as store:
        assert store.feedback_of(ADA) == []  # a mail scanner's GET changed nothing


def test_confirming_records_the_verdict_and_the_preferences_page_lists_it_with_undo(client, settings):  # noqa: F811
    paper = papers(today())[0]
    url = feedback_url(paper.id, "less").replace("http://testserver", "")
    done = client.post(url, data={"csrf": csrf_in(client.get(url).text)})
    assert done.status_code == 200 and "Noted" in done.text
    with Store(settings.db_path) as store:
        assert [(i["paper_id"], i["verdict"]) for i in store.feedback_of(ADA)] == [(paper.id, "less")]
    prefs = make_token(KEY, ADA, "prefs")
    page = client.get(f"/preferences/{prefs}")
    assert "Less like" in page.text and paper.title in page.text
    undone = client.post(f"/preferences/{prefs}/feedback", data={"csrf": csrf_in(page.text), "paper": paper.id})
    assert undone.status_code == 200 and "Nothing yet" in undone.text
    with Store(settings.db_path) as store:
        assert store.feedback_of(ADA) == []


def test_a_tampered_link_or_a_missing_csrf_token_changes_nothing(client, settings):  # noqa: F811
    paper = papers(today())[0]
    url = feedback_url(paper.id, "more").replace("http://testserver", "")
    forged = url.replace("/more?", "/less?")
    assert forged != url
    assert client.get(forged).status_code == 403
    assert client.post(forged, data={"csrf": csrf_in(client.get(url).text)}).status_code == 403
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf": "x" * 40}).status_code == 403
    with Store(settings.db_path) as store:
        assert store.feedback_of(ADA) == []


def test_the_digest_carries_signed_links_for_each_paper(settings):  # noqa: F811
    from flows.cards import paper_card
    from flows.models import Match, RankedPaper

    links = digest_links(settings, KEY, ADA)
    for paper in papers(today())[:3]:
        card = paper_card(RankedPaper(paper, 3.0, (Match("x", ("title",), ("x",)),)), links)
        for verdict, url in (("more", card.more_like), ("less", card.less_like)):
            assert url.startswith("http://testserver/feedback/")
            token, got, paper_id, sig = parts(url)
            assert read_feedback_link(KEY, token, got, paper_id, sig) == (ADA, paper.id, verdict) or \
                (read_feedback_link(KEY, token, got, paper_id, sig).paper_id, got) == (paper.id, verdict)


# -- the ranking --------------------------------------------------------------------------------

def reader(*keywords: str, related: str = "near") -> Subscriber:
    return Subscriber(email=ADA, keywords=list(keywords), popularity=0, max_papers=100, related=related)


def marked(title_word: str, verdict: str) -> Feedback:
    paper = next(p for p in sample() if title_word in p.title)
    return Feedback(paper.id, verdict, paper.title, paper.abstract)


def test_liking_a_paper_lifts_papers_like_it_and_says_why():
    index = build_index(sample(), related=model())
    liked = marked("Value Gradient weighted Model-Based", "more")
    before = {item.paper.id: item for item in rank(index, reader("reinforcement learning"), exclude_ids={liked.paper_id})}
    after = {item.paper.id: item for item in rank(index, reader("reinforcement learning"), exclude_ids={liked.paper_id},
                                                   feedback=[liked])}
    assert liked.paper_id not in after  # already delivered: the ledger still applies
    lifted = [pid for pid in before if pid in after and after[pid].score > before[pid].score]
    assert lifted
    because = [item for item in after.values() if any(m.tier == "liked" for m in item.matches)]
    assert because and all(item.paper.id in lifted or item.paper.id not in before for item in because)
    match = next(m for m in because[0].matches if m.tier == "liked")
    assert match.keyword == liked.title and match.via == (liked.paper_id,)
    assert match.explain().startswith(f"because you liked {liked.title}")
    assert all(term in f"{because[0].paper.title} {because[0].paper.abstract}" for term in match.terms)
    model_based = next(p.id for p in sample() if p.title.startswith("RePo"))
    assert after[model_based].score > before[model_based].score  # the most alike gains


def test_disliking_lowers_but_never_excludes():
    index = build_index(sample(), related=model())
    disliked = marked("Critique-Coder", "less")
    keywords = reader("reinforcement learning", "reward model")
    before = {item.paper.id: item.score for item in rank(index, keywords, exclude_ids={disliked.paper_id})}
    after = {item.paper.id: item.score for item in rank(index, keywords, exclude_ids={disliked.paper_id},
                                                        feedback=[disliked])}
    assert after.keys() == before.keys()  # nothing left out
    lowered = [pid for pid in before if after[pid] < before[pid] - 1e-9]
    assert lowered
    assert all(after[pid] >= min(before[pid], 0.5) for pid in before)
    likeness = best_likeness(index, [disliked])
    numbers = {paper.id: n for n, paper in enumerate(index.papers)}
    for pid in lowered:
        assert before[pid] - after[pid] <= DISLIKED_WEIGHT * likeness[numbers[pid]] + 2e-6  # scores: 6 decimals


def test_feedback_reaches_papers_even_with_related_off_and_nothing_without_a_model():
    liked = marked("Value Gradient weighted Model-Based", "more")
    with_model = build_index(sample(), related=model())
    off = rank(with_model, reader("reinforcement learning", related="off"), feedback=[liked])
    assert any(m.tier == "liked" for item in off for m in item.matches)
    plain = build_index(sample())
    assert rank(plain, reader("reinforcement learning"), feedback=[liked]) == rank(plain, reader("reinforcement learning"))


def test_the_likeness_of_papers_is_shared_between_subscribers():
    index = build_index(sample(), related=model())
    liked = marked("Value Gradient weighted Model-Based", "more")
    first = best_likeness(index, [liked])
    assert liked.paper_id in index.feedback_scores
    assert np.array_equal(first, best_likeness(index, [liked]))
