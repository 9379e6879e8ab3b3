"""Listing sources against a real HTTP server on loopback, and the offline snapshot."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from flows.models import Listing
from flows.sample_data import build_sample
from flows.settings import PROJECT_ROOT, SAMPLE_SNAPSHOT_DIR, Settings
from flows.sources import (
    MalformedItem,
    Source,
    SourceError,
    SourceFormatError,
    SourceRequestError,
    SourceUnavailable,
    build_source,
)
from flows.sources.http import backoff_delay, get_json, make_client, retry_after_seconds
from flows.sources.huggingface import HuggingFaceSource, http_url, parse_item, parse_page
from flows.sources.snapshot import SnapshotSource
from tests.support.http import Reply

DATA = Path(__file__).parent / "data" / "hf"
SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"
DAY = date(2025, 4, 17)
PATH = "/api/daily_papers"


def recorded() -> list[dict]:
    return json.loads((DATA / "daily_papers_2025-04-17.json").read_text())


def item(paper_id: str, title: str = "A paper", **paper: object) -> dict:
    return {"paper": {"id": paper_id, "title": title, "summary": "text", **paper}, "numComments": 0}


class Sleeps(list):
    """Records the waits asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def hf(server, sleeps: Sleeps, **overrides) -> HuggingFaceSource:
    settings = Settings(hf_base_url=server.base_url,
                        **{"hf_page_size": 2, "http_retries": 3, "hf_min_interval": 0, **overrides})
    return HuggingFaceSource(settings, sleep=sleeps)


def pages_requested(server) -> list[str]:
    return [r.query["p"] for r in server.requests_for(PATH)]


# parsing


def test_parse_item_realistic():
    paper = parse_item(recorded()[0], DAY)
    assert paper.id == "2504.12345"
    assert paper.title == "RewardBench 2: Advancing Reward Model Evaluation"
    assert paper.abstract.startswith("Reward models are used throughout the post-training of language models to ")
    assert "\n" not in paper.abstract and "  " not in paper.abstract
    assert paper.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper")
    assert paper.published == date(2025, 4, 16)
    assert paper.listed == DAY
    assert (paper.upvotes, paper.comments) == (12, 2)
    assert paper.ai_keywords == ("reward models", "RLHF", "benchmark")
    assert paper.github_repo == "https://github.com/allenai/reward-bench"
    assert paper.project_page == "https://huggingface.co/spaces/allenai/reward-bench"
    assert paper.url == "https://huggingface.co/papers/2504.12345"
    assert paper.source == "huggingface"


def test_parse_item_keeps_markup_as_text_and_drops_non_http_links():
    paper = parse_item(recorded()[1], DAY)
    assert paper.title == "<script>alert('x')</script> & \"Friends\": Escaping Titles"
    assert paper.abstract == "Abstracts may contain <b>markup</b> & ampersands, which stay as text."
    assert paper.authors == ("Mallory <img src=x onerror=alert(1)>",)
    assert paper.github_repo is None  # javascript:
    assert paper.project_page is None  # ftp:


def test_parse_item_without_optional_fields():
    paper = parse_item(recorded()[2], DAY)
    assert paper.title == "GraphFM: A Comprehensive Benchmark for Graph Foundation Model"
    assert (paper.abstract, paper.authors, paper.published) == ("", (), None)
    assert (paper.upvotes, paper.comments, paper.ai_keywords) == (0, 0, ())
    assert paper.github_repo is None and paper.project_page is None


def test_parse_item_tolerates_odd_optional_values():
    odd = item("2504.00001", authors="nobody", publishedAt="yesterday", upvotes="many", ai_keywords=[None, " x"])
    odd["numComments"] = True
    paper = parse_item(odd, DAY)
    assert (paper.authors, paper.published, paper.upvotes, paper.comments) == ((), None, 0, 0)
    assert paper.ai_keywords == ("x",)


def test_parse_item_falls_back_to_the_item_title():
    paper = parse_item({"paper": {"id": "2504.00002"}, "title": "  Outer\ntitle "}, DAY)
    assert paper.title == "Outer title"


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"paper": None},
        {"paper": {"title": "no id"}},
        {"paper": {"id": "", "title": "empty id"}},
        {"paper": {"id": 2504.12345, "title": "numeric id"}},
        {"paper": {"id": "../../etc passwd", "title": "not an arXiv id"}},
        {"paper": {"id": "2504.00003", "title": "   "}},
        "not a dict",
    ],
)
def test_parse_item_rejects_items_without_id_or_title(bad):
    with pytest.raises(MalformedItem):
        parse_item(bad, DAY)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://github.com/a/b", "https://github.com/a/b"),
        (" http://example.org/x ", "http://example.org/x"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("//github.com/a/b", None),
        ("github.com/a/b", None),
        ("https://", None),
        ("https://exa mple.org", None),
        (None, None),
        (42, None),
    ],
)
def test_http_url(value, expected):
    assert http_url(value) == expected


def test_parse_page_skips_and_counts_malformed_items_and_drops_duplicates():
    no_id = {"paper": {"title": "no id"}}
    items = [item("2504.00001"), no_id, item("2504.00001", "again"), item("2504.00002"), 7]
    papers, skipped = parse_page(items, DAY)
    assert [p.id for p in papers] == ["2504.00001", "2504.00002"]
    assert papers[0].title == "A paper"  # the first occurrence wins
    assert skipped == 2


def test_parse_page_needs_a_list():
    with pytest.raises(SourceFormatError):
        parse_page({"error": "Invalid date"}, DAY)


# retries and Retry-After


def test_retry_after_seconds_and_http_date():
    now = datetime(2025, 4, 17, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds("Thu, 17 Apr 2025 12:00:07 GMT", now) == 7.0
    assert retry_after_seconds("Thu, 17 Apr 2025 11:00:00 GMT", now) == 0.0  # already past
    assert retry_after_seconds("-5", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_backoff_grows_with_jitter_and_is_capped():
    for attempt in range(4):
        delay = backoff_delay(attempt, 0.5, 60)
        assert 0.5 * 2**attempt <= delay <= 0.75 * 2**attempt
    assert backoff_delay(20, 0.5, 60) == 60


def test_get_json_caps_retry_after_by_max_wait(http_replay, sleeps):
    http_replay.route("/x", Reply(503, headers={"Retry-After": "120"}), Reply.json({"ok": True}))
    with httpx.Client() as client:
        assert get_json(client, http_replay.url("/x"), retries=1, max_wait=2, sleep=sleeps) == {"ok": True}
    assert sleeps == [2]


def test_get_json_honours_an_http_date_retry_after(http_replay, sleeps):
    soon = datetime.now(timezone.utc) + timedelta(seconds=3)
    header = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    http_replay.route("/x", Reply(429, headers={"Retry-After": header}), Reply.json([1]))
    with httpx.Client() as client:
        assert get_json(client, http_replay.url("/x"), retries=1, sleep=sleeps) == [1]
    assert len(sleeps) == 1 and 1 <= sleeps[0] <= 3


def test_make_client_sends_user_agent_and_uses_timeout(http_replay):
    http_replay.route("/x", Reply.json([]))
    with make_client(Settings(http_timeout=7)) as client:
        client.get(http_replay.url("/x"))
        assert client.timeout.read == 7
    assert http_replay.requests[0].headers["user-agent"] == "paperboy/0.1.0"


# the Hugging Face source over HTTP


def test_fetch_pages_until_an_empty_page(http_replay, sleeps):
    pages = [[item("2504.00001"), item("2504.00002")], [item("2504.00003"), item("2504.00004")], []]
    for n, page in enumerate(pages):
        http_replay.route(PATH, page, query={"date": "2025-04-17", "p": n, "limit": 2})
    listing = hf(http_replay, sleeps).fetch(DAY)
    assert isinstance(listing, Listing)
    assert [p.id for p in listing.papers] == ["2504.00001", "2504.00002", "2504.00003", "2504.00004"]
    assert (listing.source, listing.listed, listing.skipped) == ("huggingface", DAY, 0)
    assert all(p.listed == DAY for p in listing.papers)
    assert [r.query for r in http_replay.requests] == [
        {"date": "2025-04-17", "p": str(n), "limit": "2"} for n in range(3)
    ]
    assert sleeps == []


def test_page_requests_are_spaced_by_the_rate_limit(http_replay, sleeps):
    pages = [[item("2504.00001"), item("2504.00002")], [item("2504.00003")]]
    for n, page in enumerate(pages):
        http_replay.route(PATH, page, query={"date": "2025-04-17", "p": n, "limit": 2})
    hf(http_replay, sleeps, hf_min_interval=5.0).fetch(DAY)
    assert len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0  # the second start waited for the first


def test_fetch_stops_after_a_short_page(http_replay, sleeps):
    query = {"date": "2025-04-17", "limit": 2}
    http_replay.route(PATH, [item("2504.00001"), item("2504.00002")], query={**query, "p": 0})
    http_replay.route(PATH, [item("2504.00003")], query={**query, "p": 1})
    assert len(hf(http_replay, sleeps).fetch(DAY).papers) == 3
    assert pages_requested(http_replay) == ["0", "1"]


def test_fetch_deduplicates_across_pages_and_stops_when_a_page_brings_nothing_new(http_replay, sleeps):
    # A server that ignores p answers page 0 every time.
    http_replay.route(PATH, [item("2504.00001"), item("2504.00002")])
    listing = hf(http_replay, sleeps).fetch(DAY)
    assert [p.id for p in listing.papers] == ["2504.00001", "2504.00002"]
    assert pages_requested(http_replay) == ["0", "1"]


def test_fetch_skips_and_counts_malformed_items(http_replay, sleeps):
    page = [item("2504.00001"), {"paper": {"id": "2504.00002"}}, {"paper": {}}, *recorded()]
    http_replay.route(PATH, page, query={"date": "2025-04-17", "p": 0, "limit": 10})
    http_replay.route(PATH, [], query={"date": "2025-04-17", "p": 1, "limit": 10})
    listing = hf(http_replay, sleeps, hf_page_size=10).fetch(DAY)
    assert [p.id for p in listing.papers] == ["2504.00001", "2504.12345", "2504.12346", "2504.12347"]
    assert listing.skipped == 2


def test_fetch_waits_for_retry_after_on_429(http_replay, sleeps):
    http_replay.route(PATH, Reply(429, headers={"Retry-After": "1"}), [item("2504.00001")])
    assert [p.id for p in hf(http_replay, sleeps).fetch(DAY).papers] == ["2504.00001"]
    assert sleeps == [1.0]
    assert pages_requested(http_replay) == ["0", "0"]


def test_fetch_retries_500_twice_then_succeeds(http_replay, sleeps):
    http_replay.route(PATH, Reply(500), Reply(502), [item("2504.00001")])
    assert len(hf(http_replay, sleeps).fetch(DAY).papers) == 1
    assert len(http_replay.requests) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.5


def test_fetch_raises_source_unavailable_when_retries_run_out(http_replay, sleeps):
    http_replay.route(PATH, Reply(503))
    with pytest.raises(SourceUnavailable) as caught:
        hf(http_replay, sleeps, http_retries=2).fetch(DAY)
    assert len(http_replay.requests) == 3 and len(sleeps) == 2
    message = str(caught.value)
    assert http_replay.base_url + PATH in message and "date=2025-04-17" in message
    assert "HTTP 503 after 3 attempts" in message


def test_fetch_retries_after_a_timeout(http_replay, sleeps):
    http_replay.route(PATH, Reply(delay=2.0), [item("2504.00001")])
    started = time.monotonic()
    listing = hf(http_replay, sleeps, http_timeout=0.2).fetch(DAY)
    assert [p.id for p in listing.papers] == ["2504.00001"]
    assert len(http_replay.requests) == 2 and len(sleeps) == 1
    assert time.monotonic() - started < 1.5  # the client gave up on the slow answer


def test_fetch_retries_a_dropped_connection(http_replay, sleeps):
    http_replay.route(PATH, Reply.dropped(), [item("2504.00001")])
    assert len(hf(http_replay, sleeps).fetch(DAY).papers) == 1
    assert len(http_replay.requests) == 2


def test_fetch_timeouts_exhausted_are_unavailable(http_replay, sleeps):
    http_replay.route(PATH, Reply(delay=2.0))
    with pytest.raises(SourceUnavailable, match="ReadTimeout after 2 attempts"):
        hf(http_replay, sleeps, http_timeout=0.1, http_retries=1).fetch(DAY)


def test_fetch_malformed_json_is_a_format_error(http_replay, sleeps):
    http_replay.route(PATH, Reply.malformed_json())
    with pytest.raises(SourceFormatError, match="not (valid )?JSON") as caught:
        hf(http_replay, sleeps).fetch(DAY)
    assert http_replay.base_url + PATH in str(caught.value)
    assert len(http_replay.requests) == 1


def test_fetch_a_json_object_instead_of_a_list_is_a_format_error(http_replay, sleeps):
    http_replay.route(PATH, {"error": "something else"})
    with pytest.raises(SourceFormatError, match="not a JSON list"):
        hf(http_replay, sleeps).fetch(DAY)


def test_fetch_400_is_a_request_error_without_retry(http_replay, sleeps):
    http_replay.route(PATH, Reply.json({"error": "Date is in the future"}, status=400))
    with pytest.raises(SourceRequestError, match="HTTP 400") as caught:
        hf(http_replay, sleeps).fetch(date(2099, 1, 1))
    assert "date=2099-01-01" in str(caught.value)
    assert len(http_replay.requests) == 1 and sleeps == []


def test_fetch_uses_a_given_client_and_leaves_it_open(http_replay, sleeps):
    http_replay.route(PATH, [])
    settings = Settings(hf_base_url=http_replay.base_url + "/")
    with httpx.Client(headers={"User-Agent": "given"}) as client:
        source = HuggingFaceSource(settings, client, sleep=sleeps)
        assert source.fetch(DAY).papers == ()
        assert not client.is_closed
    assert http_replay.requests[0].path == PATH
    assert http_replay.requests[0].headers["user-agent"] == "given"


def test_replay_server_serves_feeds_and_404s(http_replay, tmp_path):
    feed = tmp_path / "cs.LG.atom"
    feed.write_text("<feed xmlns='http://www.w3.org/2005/Atom'><title>cs.LG</title></feed>")
    http_replay.route("/atom/cs.LG", Reply.file(feed))
    response = httpx.get(http_replay.url("/atom/cs.LG"))
    assert response.headers["content-type"] == "application/atom+xml"
    assert response.text.startswith("<feed")
    assert httpx.get(http_replay.url("/nowhere?q=1")).status_code == 404
    assert [(r.path, r.raw_query) for r in http_replay.requests] == [("/atom/cs.LG", ""), ("/nowhere", "q=1")]


# the snapshot source


def write_snapshot(directory: Path, days: dict[str, list]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for day, items in days.items():
        (directory / f"{day}.json").write_text(json.dumps(items))
    return directory


def test_snapshot_fetch_and_missing_day(tmp_path):
    days = {"2025-06-12": [item("2506.00001")], "2025-06-13": [item("2506.00002"), {}]}
    snap = write_snapshot(tmp_path, days)
    (tmp_path / "README.txt").write_text("not a listing")
    source = SnapshotSource(snap)
    listing = source.fetch(date(2025, 6, 13))
    assert [p.id for p in listing.papers] == ["2506.00002"]
    assert (listing.source, listing.listed, listing.skipped) == ("snapshot", date(2025, 6, 13), 1)
    assert source.fetch(date(2025, 6, 14)) == Listing("snapshot", date(2025, 6, 14), ())
    assert source.available_dates() == [date(2025, 6, 12), date(2025, 6, 13)]


def test_snapshot_replay_shifts_every_date(tmp_path):
    snap = write_snapshot(tmp_path, {"2025-06-11": [item("2506.00001")], "2025-06-13": [item("2506.00002")]})
    source = SnapshotSource(snap, replay_to=date(2026, 1, 5))
    assert source.available_dates() == [date(2026, 1, 3), date(2026, 1, 5)]
    newest = source.fetch(date(2026, 1, 5))
    assert [p.id for p in newest.papers] == ["2506.00002"]
    assert newest.listed == date(2026, 1, 5) and newest.papers[0].listed == date(2026, 1, 5)
    assert [p.id for p in source.fetch(date(2026, 1, 3)).papers] == ["2506.00001"]
    assert source.fetch(date(2026, 1, 4)).papers == ()
    assert source.fetch(date(2025, 6, 13)).papers == ()  # the unshifted date is empty now


def test_snapshot_malformed_file_names_the_file(tmp_path):
    (tmp_path / "2025-06-13.json").write_text('[{"paper": ')
    (tmp_path / "2025-06-12.json").write_text('{"not": "a list"}')
    source = SnapshotSource(tmp_path)
    with pytest.raises(SourceFormatError, match="2025-06-13.json"):
        source.fetch(date(2025, 6, 13))
    with pytest.raises(SourceFormatError, match="2025-06-12.json"):
        source.fetch(date(2025, 6, 12))


def test_snapshot_missing_directory_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        SnapshotSource(tmp_path / "nope").fetch(DAY)


# build_source


def test_build_source_by_name(tmp_path):
    settings = Settings(snapshot_dir=tmp_path)
    hf_source = build_source("huggingface", settings)
    snap = build_source("snapshot", settings)
    assert isinstance(hf_source, HuggingFaceSource) and isinstance(hf_source, Source)
    assert isinstance(snap, SnapshotSource) and isinstance(snap, Source)
    assert (snap.directory, snap.replay_to) == (tmp_path, None)
    assert build_source("snapshot", settings, replay_to=DAY).replay_to == DAY


def test_build_source_replays_onto_today_when_configured(tmp_path):
    settings = Settings(snapshot_dir=tmp_path, snapshot_replay=True, timezone="UTC")
    assert build_source("snapshot", settings).replay_to == datetime.now(timezone.utc).date()


def test_build_source_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="huggingface, snapshot"):
        build_source("rss", Settings())


# the bundled sample


def test_bundled_sample_loads():
    source = SnapshotSource(SAMPLE_SNAPSHOT_DIR)
    days = source.available_dates()
    assert days == [date(2025, 12, 8) + timedelta(days=n) for n in range(5)]
    listings = [source.fetch(day) for day in days]
    papers = [p for listing in listings for p in listing.papers]
    assert len(papers) > 150 and all(35 <= len(listing.papers) <= 40 for listing in listings)
    assert sum(listing.skipped for listing in listings) == 0
    assert len({p.id for p in papers}) == len(papers)
    titles = {p.title for p in papers}
    assert "CLIMB: Curriculum Learning for Infant-inspired Model Building" in titles
    assert "Value Gradient weighted Model-Based Reinforcement Learning" in titles
    climb = next(p for p in papers if p.title.startswith("CLIMB"))
    assert (len(climb.authors), climb.published, climb.upvotes) == (7, date(2023, 11, 15), 0)
    assert climb.abstract.startswith("We describe our team's contribution to the STRICT-SMALL track")
    assert all(p.github_repo is None or p.github_repo.startswith("https://github.com/") for p in papers)


def test_bundled_sample_replays_onto_any_day():
    source = SnapshotSource(SAMPLE_SNAPSHOT_DIR, replay_to=date(2030, 2, 1))
    assert source.available_dates()[-1] == date(2030, 2, 1)
    assert len(source.fetch(date(2030, 2, 1)).papers) >= 35


SEED_TEXT = """new

Daily Papers

byAK and the research community

Nov 4

First Title

First abstract.

  • 3 authors
·
Jun 6, 2024 2

Second Title

Second abstract, its card has no author line.

Third Title

Third abstract.

nvidia NVIDIA
·
Sep 26 4

First title

A duplicate, differently cased.

  • 1 author
·
Jan 5, 2018
"""


def test_parse_seed_reads_cards_dates_and_upvotes():
    cards = build_sample.parse_seed(SEED_TEXT)
    assert [c.title for c in cards] == ["First Title", "Second Title", "Third Title", "First title"]
    first, second, third, again = cards
    assert (first.authors, first.published, first.upvotes) == (3, date(2024, 6, 6), 2)
    assert (second.authors, second.published, second.upvotes) == (0, None, 0)
    assert (third.organization, third.published, third.upvotes) == ("nvidia NVIDIA", date(2025, 9, 26), 4)
    assert (again.authors, again.published) == (1, date(2018, 1, 5))
    assert len(build_sample.merge([cards])) == 3


def test_parse_seed_rejects_a_broken_layout():
    with pytest.raises(build_sample.SeedFormatError):
        build_sample.parse_seed("Title only\n\n  • 2 authors\n·\nJun 6, 2024\n")


needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside the checkout")


@needs_seeds
def test_build_sample_is_deterministic_and_matches_the_bundled_files(tmp_path):
    for out in ("a", "b"):
        assert build_sample.main([str(SEEDS), str(tmp_path / out)]) == 0
    first = {p.name: p.read_bytes() for p in sorted((tmp_path / "a").glob("*.json"))}
    second = {p.name: p.read_bytes() for p in sorted((tmp_path / "b").glob("*.json"))}
    assert len(first) == 5 and first == second
    bundled = {p.name: p.read_bytes() for p in sorted(SAMPLE_SNAPSHOT_DIR.glob("*.json"))}
    rebuild = "python -m flows.sample_data.build_sample ../shared/seeds flows/sample_data/huggingface"
    assert bundled == first, f"the bundled sample is stale; rerun: {rebuild}"


@needs_seeds
def test_build_sample_keeps_every_seed_title_once():
    seed_titles = {
        " ".join(card.title.split()).casefold()
        for path in SEEDS.glob("*.txt")
        for card in build_sample.parse_seed(path.read_text(encoding="utf-8"))
    }
    listings = build_sample.build(SEEDS)
    built = [entry["paper"]["title"] for items in listings.values() for entry in items]
    assert len(built) == len(seed_titles) > 150
    assert {" ".join(t.split()).casefold() for t in built} == seed_titles
