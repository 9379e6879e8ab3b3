"""Issue 12, V3: one hostile upstream value is one skipped, counted item, never a stopped run.

Every attack goes through the real loopback HTTP server (tests/support/http.py) into the
real sources; the last test runs the real daily flow under Prefect and sees the digests
go out with the bad items counted.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from flows.settings import Settings
from flows.sources.arxiv import ArxivSource
from flows.sources.huggingface import HuggingFaceSource
from flows.store import Store
from tests.support.corpus import api_item, seed_papers
from tests.support.http import Reply

DAY = date(2025, 6, 13)
PATH = "/api/daily_papers"
ARXIV = Path(__file__).parent / "data" / "arxiv"
FEED_DAY = date(2025, 6, 4)


def item(paper_id: str = "2506.99999", **paper_fields: str) -> str:
    """One Daily Papers item as raw JSON text; ``paper_fields`` are raw JSON values."""
    fields = {"id": json.dumps(paper_id), "title": '"A perfectly fine title"',
              "summary": '"An abstract."', "upvotes": "3", **paper_fields}
    inner = ", ".join(f'"{name}": {value}' for name, value in fields.items())
    return f'{{"paper": {{{inner}}}, "publishedAt": "{DAY}T00:00:00.000Z", "numComments": 0}}'


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# Each one, alone among good items, once stopped the run, lost the day, or hung it.
SKIPPED = {
    "upvotes 2**63": item(upvotes=str(2**63)),
    "upvotes 10**100": item(upvotes=str(10**100)),
    "upvotes of 5000 digits": item(upvotes="9" * 5000),
    "upvotes -2**70": item(upvotes=str(-2**70)),
    "comments 2**64": item().replace('"numComments": 0', f'"numComments": {2**64}'),
    "lone surrogate in title": item(title=r'"Attention \ud800 is all"'),
    "lone surrogate in abstract": item(summary=r'"We \udfff study"'),
    "lone surrogate in an author": item(authors=r'[{"name": "Ada \udc00"}]'),
    "nesting 100,000 deep": item(extra=nested(100_000)),
    "nesting 200 deep": item(authors=nested(200)),
    "id nested 5,000 deep": item().replace('"id": "2506.99999"', f'"id": {nested(5000)}'),
    "title of 2 MB": item(title=json.dumps("x" * 2_000_000)),
    "abstract of 3 MB": item(summary=json.dumps("word " * 600_000)),
}
KEPT = {  # odd but harmless: the paper is kept, cleaned
    "controls in title": (item(title=r'"Attention\u0000 is\u001b[31m all\u007f"'), "Attention is [31m all"),
    "float upvotes": (item(upvotes="1e308"), "A perfectly fine title"),
    "50,000 authors": (item(authors=json.dumps([{"name": f"A{n}"} for n in range(50_000)])),
                       "A perfectly fine title"),
}


def page(*raw_items: str) -> Reply:
    return Reply(200, ("[" + ", ".join(raw_items) + "]").encode(), "application/json")


def good_items(listed: date = DAY) -> list[str]:
    return [json.dumps(api_item(paper, listed)) for paper in seed_papers()[:3]]


def hf_source(server) -> HuggingFaceSource:
    return HuggingFaceSource(Settings(hf_base_url=server.base_url, hf_min_interval=0, http_retries=0))


@pytest.mark.parametrize("name", list(SKIPPED))
def test_one_hostile_item_is_skipped_and_counted(name, http_replay, tmp_path):
    good = good_items()
    http_replay.route(PATH, page(good[0], SKIPPED[name], *good[1:]))
    started = time.monotonic()
    listing = hf_source(http_replay).fetch(DAY)
    assert time.monotonic() - started < 10
    assert listing.skipped == 1
    assert sorted(p.id for p in listing.papers) == sorted(p["id"] for p in seed_papers()[:3])
    with Store(tmp_path / "db.sqlite") as store:  # what used to stop the run: storing it
        assert store.upsert_papers(listing.papers) == 3


@pytest.mark.parametrize("name", list(KEPT))
def test_odd_values_are_cleaned_not_fatal(name, http_replay, tmp_path):
    raw, title = KEPT[name]
    http_replay.route(PATH, page(*good_items(), raw))
    listing = hf_source(http_replay).fetch(DAY)
    assert listing.skipped == 0 and len(listing.papers) == 4
    odd = next(p for p in listing.papers if p.id == "2506.99999")
    assert odd.title == title
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", odd.title + odd.abstract + "".join(odd.authors))
    assert 0 <= odd.upvotes <= 10**9 and len(odd.authors) <= 3_000
    with Store(tmp_path / "db.sqlite") as store:
        assert store.upsert_papers(listing.papers) == 4


def test_an_endless_answer_is_cut_off(http_replay):
    http_replay.route(PATH, Reply(200, b"[" + b" " * (40 * 2**20) + b"]", "application/json"))
    from flows.sources import SourceFormatError

    with pytest.raises(SourceFormatError, match="larger than"):
        hf_source(http_replay).fetch(DAY)


def hostile_feed(title: str) -> bytes:
    feed = (ARXIV / "atom_cs.LG_2025-06-04.atom").read_text()
    first = feed.index("<title>", feed.index("<entry"))
    return (feed[:first + 7] + title + feed[first + 7:]).encode()


@pytest.mark.parametrize("title", ["&#xD800;", "&#55296;", "&#0;", "&#x110000;", "\x1b[31m", "\x00",
                                   "&#xDFFF;\x0b&#x1B;", "&#191999775047;", "&#x" + "F" * 40 + ";",
                                   "&#" + "9" * 5000 + ";"])
def test_a_hostile_arxiv_entry_leaves_the_feed_readable(title, http_replay, tmp_path):
    http_replay.route("/atom/cs.LG", Reply(200, hostile_feed(title), "application/atom+xml"))
    http_replay.route("/atom/cs.AI", Reply.file(ARXIV / "atom_cs.AI_2025-06-04.atom"))
    settings = Settings(arxiv_feed_url=http_replay.url("/atom"), arxiv_api_url=http_replay.url("/api"),
                        arxiv_categories=["cs.LG", "cs.AI"], arxiv_min_interval=0, http_retries=0)
    listing = ArxivSource(settings, sleep=lambda s: None).fetch(FEED_DAY)
    assert len(listing.papers) == 5  # as with the clean feed (test_arxiv)
    for paper in listing.papers:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", paper.title + paper.abstract)
    with Store(tmp_path / "db.sqlite") as store:
        assert store.upsert_papers(listing.papers) == 5


# -- the daily run: all of them at once, through Prefect, SQLite, ranking and SMTP ----------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_daily_run_survives_every_hostile_item(workspace, http_replay, monkeypatch):
    from flows.daily import daily_digest

    listed = [json.dumps(api_item(paper, workspace.day)) for paper in seed_papers()]
    hostile = [raw.replace("2506.99999", f"2506.9{n:04d}") for n, raw in enumerate(SKIPPED.values())]
    odd = [raw.replace("2506.99999", f"2506.8{n:04d}") for n, (raw, _) in enumerate(KEPT.values())]
    everything = listed[:6] + hostile + odd + listed[6:]
    http_replay.route(PATH, page(*everything), query={"date": str(workspace.day), "p": "0", "limit": "100"})
    http_replay.route(PATH, page(), query=None)  # every other day, page: nothing
    for name, value in {"SOURCES": "huggingface", "HF_BASE_URL": http_replay.base_url,
                        "HF_MIN_INTERVAL": "0", "HF_PAGE_SIZE": "100", "LOOKBACK_DAYS": "2",
                        "HTTP_RETRIES": "0"}.items():
        monkeypatch.setenv(f"PAPERBOY_{name}", value)
    result = daily_digest(digest_date=workspace.day)
    assert result["dates_failed"] == {}
    assert result["items_skipped"] == len(SKIPPED)
    assert result["papers_fetched"] == len(seed_papers()) + len(KEPT)
    assert result["sent"] == 3 and result["failed"] == {}
    with Store(workspace.db_path) as store:
        rows = store.db.query("SELECT skipped FROM fetches WHERE source = 'huggingface' AND listed = ?",
                              [workspace.day.isoformat()])
        assert [row["skipped"] for row in rows] == [len(SKIPPED)]
    assert workspace.server.wait_for(3)
