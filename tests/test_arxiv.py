"""The arXiv source against a real HTTP server on loopback replaying recorded-style feeds and API pages."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from flows.models import Listing
from flows.settings import Settings
from flows.sources import Source, SourceFormatError, SourceRequestError, SourceUnavailable, build_source
from flows.sources.arxiv import (
    ArxivSource,
    RateLimiter,
    arxiv_id,
    feed_day,
    last_complete_submission_day,
    parse_document,
    parse_feed,
    search_query,
    shared_limiter,
    split_creators,
    submission_window,
)
from flows.sources.huggingface import parse_item
from flows.store import Store
from tests.support.http import Reply

DATA = Path(__file__).parent / "data" / "arxiv"
FEED_DAY = date(2025, 6, 4)  # a Wednesday: the day the recorded feeds announce
SATURDAY = date(2025, 6, 7)
API = "/api/query"
API_QUERY = "(cat:cs.LG OR cat:cs.AI) AND submittedDate:[202505300000 TO 202506022359]"


def api_params(start: int, query: str = API_QUERY) -> dict:
    return {
        "search_query": query,
        "start": start,
        "max_results": 2,
        "sortBy": "submittedDate",
        "sortOrder": "ascending",
    }


class Sleeps(list):
    """Records the waits asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def settings_for(server, **overrides) -> Settings:
    values = dict(
        arxiv_feed_url=server.url("/atom"),
        arxiv_api_url=server.url(API),
        arxiv_categories=["cs.LG", "cs.AI"],
        arxiv_min_interval=0,
        http_retries=3,
    )
    return Settings(**{**values, **overrides})


def source(server, sleeps, *, page_size: int = 2, range_days: int = 7, **overrides) -> ArxivSource:
    settings = settings_for(server, **overrides)
    return ArxivSource(settings, sleep=sleeps, page_size=page_size, range_days=range_days)


def route_feeds(server, day: date = FEED_DAY) -> None:
    if day == FEED_DAY:
        server.route("/atom/cs.LG", Reply.file(DATA / "atom_cs.LG_2025-06-04.atom"))
        server.route("/atom/cs.AI", Reply.file(DATA / "atom_cs.AI_2025-06-04.atom"))
    else:
        server.route("/atom/cs.LG", Reply.file(DATA / "atom_cs.LG_2025-06-07.atom"))
        server.route("/atom/cs.AI", Reply.file(DATA / "atom_cs.LG_2025-06-07.atom"))


def route_api(server, *first_page: Reply) -> None:
    page0 = Reply.file(DATA / "api_2025-05-30_2025-06-02_start0.xml")
    server.route(API, *first_page, page0, query=api_params(0))
    server.route(API, Reply.file(DATA / "api_2025-05-30_2025-06-02_start2.xml"), query=api_params(2))


def starts(server) -> list[str]:
    return [r.query["start"] for r in server.requests_for(API)]


def without_entries(path: Path) -> str:
    return re.sub(r"<entry>.*</entry>\s*", "", path.read_text(), flags=re.S)


# the daily feed


def test_feed_keeps_new_and_cross_drops_replacements_and_merges_categories(http_replay, sleeps):
    route_feeds(http_replay)
    listing = source(http_replay, sleeps).fetch(FEED_DAY)
    ids = ["2506.03101", "2506.03102", "2506.02877", "2506.03144", "2506.02950"]
    assert [p.id for p in listing.papers] == ids
    assert (listing.source, listing.listed, listing.skipped) == ("arxiv", FEED_DAY, 1)  # the entry without id
    papers = {p.id: p for p in listing.papers}
    # New in cs.LG, cross-listed in cs.AI, whose feed was built with one more category.
    icrl = papers["2506.03101"]
    assert icrl.categories == ("cs.LG", "cs.AI", "cs.RO")
    assert icrl.title == "Filtering Learning Histories Enhances In-Context Reinforcement Learning"
    assert icrl.abstract.startswith("Transformer models (TMs) have exhibited remarkable in-context")
    assert "Announce Type" not in icrl.abstract and "\n" not in icrl.abstract
    assert icrl.authors == ("Linyi Huang", "Fatima Rahman", "Weiyu Chen", "Dmitri Volkov")
    assert (icrl.published, icrl.listed, icrl.upvotes, icrl.comments) == (FEED_DAY, FEED_DAY, 0, 0)
    assert (icrl.url, icrl.source) == ("https://arxiv.org/abs/2506.03101", "arxiv")
    assert papers["2506.02877"].categories == ("cs.CL", "cs.LG")
    assert papers["2506.02877"].published is None  # a cross-listing: the paper appeared earlier
    # Atom summaries are plain text: maths with < and > survives.
    assert papers["2506.03102"].abstract.endswith(
        "For ranks $r<8$ and learning rates $\\eta>10^{-4}$ the gap is largest."
    )
    assert [r.path for r in http_replay.requests] == ["/atom/cs.LG", "/atom/cs.AI"]


def test_rss_flavour_gives_the_same_papers(http_replay, sleeps):
    http_replay.route("/rss/cs.LG", Reply.file(DATA / "rss_cs.LG_2025-06-04.rss"))
    http_replay.route("/atom/cs.LG", Reply.file(DATA / "atom_cs.LG_2025-06-04.atom"))
    by_rss = source(http_replay, sleeps, arxiv_feed_url=http_replay.url("/rss"), arxiv_categories=["cs.LG"])
    by_atom = source(http_replay, sleeps, arxiv_categories=["cs.LG"])
    rss, atom = by_rss.fetch(FEED_DAY), by_atom.fetch(FEED_DAY)

    def fields(listing: Listing) -> list[tuple]:
        return [(p.id, p.title, p.authors, p.categories, p.published, p.abstract[:200])
                for p in listing.papers]

    assert len(rss.papers) == 3 and fields(rss) == fields(atom)
    assert rss.skipped == atom.skipped == 1


def test_empty_weekend_feed_is_an_empty_listing(http_replay, sleeps):
    route_feeds(http_replay, SATURDAY)
    arxiv = source(http_replay, sleeps)
    assert arxiv.fetch(SATURDAY) == Listing("arxiv", SATURDAY, ())
    assert arxiv.fetch(SATURDAY + timedelta(days=1)) == Listing("arxiv", SATURDAY + timedelta(days=1), ())
    assert arxiv.latest_feed_day() == SATURDAY
    # The first category's feed is reused; the second is asked only for the feed's own day.
    assert [r.path for r in http_replay.requests] == ["/atom/cs.LG", "/atom/cs.AI"]


# past days through the query API


def test_past_weekday_asks_the_api_for_its_submission_window_over_two_pages(http_replay, sleeps):
    route_feeds(http_replay)
    route_api(http_replay)
    tuesday = date(2025, 6, 3)
    listing = source(http_replay, sleeps).fetch(tuesday)
    assert [r.query for r in http_replay.requests_for(API)] == [
        {k: str(v) for k, v in api_params(0).items()},
        {k: str(v) for k, v in api_params(2).items()},
    ]
    assert [p.id for p in listing.papers] == ["2505.24671", "2505.24790", "2506.01957"]
    assert (listing.listed, listing.skipped) == (tuesday, 1)  # the entry whose id is only "abs/"
    assert all(p.listed == tuesday for p in listing.papers)
    first, weekend, _ = listing.papers
    assert [p.published for p in listing.papers] == [date(2025, 5, 30), date(2025, 5, 31), date(2025, 6, 2)]
    assert weekend.categories == ("cs.CV", "cs.AI", "cs.LG")  # primary category first
    assert first.authors == ("Sheng Liu", "Jonathan Niles-Weed", "Narges Razavian", "Carlos Fernandez-Granda")
    assert first.abstract.startswith("We propose a novel framework to perform classification via deep")
    assert "\n" not in first.abstract and "  " not in first.abstract
    assert first.title == "Early-Learning Regularization Prevents Memorization of Noisy Labels"
    assert first.url == "https://arxiv.org/abs/2505.24671"


def test_weekend_before_the_feed_day_is_empty_without_asking_the_api(http_replay, sleeps):
    route_feeds(http_replay)
    saturday = date(2025, 5, 31)
    assert source(http_replay, sleeps).fetch(saturday) == Listing("arxiv", saturday, ())
    assert http_replay.requests_for(API) == []


def test_a_day_after_the_feed_day_is_not_announced_yet(http_replay, sleeps):
    route_feeds(http_replay)
    with pytest.raises(SourceUnavailable, match="not announced 2025-06-05 yet"):
        source(http_replay, sleeps).fetch(FEED_DAY + timedelta(days=1))
    assert http_replay.requests_for(API) == []


def test_an_empty_page_before_the_total_is_asked_again(http_replay, sleeps):
    route_feeds(http_replay)
    empty = Reply.xml(without_entries(DATA / "api_2025-05-30_2025-06-02_start2.xml"))
    http_replay.route(API, Reply.file(DATA / "api_2025-05-30_2025-06-02_start0.xml"), query=api_params(0))
    page2 = Reply.file(DATA / "api_2025-05-30_2025-06-02_start2.xml")
    http_replay.route(API, empty, page2, query=api_params(2))
    listing = source(http_replay, sleeps).fetch(date(2025, 6, 3))
    assert len(listing.papers) == 3
    assert starts(http_replay) == ["0", "2", "2"]


# backfills


def test_fetch_range_groups_by_submission_date(http_replay, sleeps):
    route_feeds(http_replay)
    route_api(http_replay)
    listings = list(source(http_replay, sleeps).fetch_range(date(2025, 5, 30), date(2025, 6, 2)))
    assert [(x.listed, [p.id for p in x.papers], x.skipped) for x in listings] == [
        (date(2025, 5, 30), ["2505.24671"], 0),
        (date(2025, 5, 31), ["2505.24790"], 0),
        (date(2025, 6, 1), [], 0),
        (date(2025, 6, 2), ["2506.01957"], 1),
    ]
    assert all(p.listed == x.listed == p.published for x in listings for p in x.papers)
    assert starts(http_replay) == ["0", "2"]


def test_fetch_range_stops_at_the_last_day_announced_in_full(http_replay, sleeps):
    route_feeds(http_replay)
    route_api(http_replay)
    listings = list(source(http_replay, sleeps).fetch_range(date(2025, 5, 30), date(2025, 6, 6)))
    # The feed shows Wednesday: Tuesday's late submissions come out on Thursday.
    assert listings[-1].listed == date(2025, 6, 2) == last_complete_submission_day(FEED_DAY)
    assert [r.query["search_query"] for r in http_replay.requests_for(API)] == [API_QUERY, API_QUERY]


def test_fetch_range_queries_in_chunks(http_replay, sleeps):
    route_feeds(http_replay)
    http_replay.route(API, Reply.xml(without_entries(DATA / "api_2025-05-30_2025-06-02_start0.xml").replace(
        ">4</opensearch:totalResults>", ">0</opensearch:totalResults>")))
    arxiv = source(http_replay, sleeps, range_days=2)
    listings = list(arxiv.fetch_range(date(2025, 5, 29), date(2025, 6, 2)))
    assert [x.listed for x in listings] == [date(2025, 5, 29) + timedelta(n) for n in range(5)]
    assert all(x.papers == () for x in listings)
    assert [r.query["search_query"][-30:] for r in http_replay.requests_for(API)] == [
        "[202505290000 TO 202505302359]",
        "[202505310000 TO 202506012359]",
        "[202506020000 TO 202506022359]",
    ]


# faults


def test_429_with_retry_after_then_success(http_replay, sleeps):
    feed = Reply.file(DATA / "atom_cs.LG_2025-06-04.atom")
    http_replay.route("/atom/cs.LG", Reply(429, headers={"Retry-After": "7"}), feed)
    listing = source(http_replay, sleeps, arxiv_categories=["cs.LG"]).fetch(FEED_DAY)
    assert len(listing.papers) == 3
    assert sleeps == [7.0]
    assert len(http_replay.requests) == 2


def test_500s_on_the_api_then_success(http_replay, sleeps):
    route_feeds(http_replay)
    route_api(http_replay, Reply(500), Reply(503))
    listing = source(http_replay, sleeps).fetch(date(2025, 6, 3))
    assert len(listing.papers) == 3
    assert starts(http_replay) == ["0", "0", "0", "2"]
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


def test_500s_until_retries_run_out_is_unavailable(http_replay, sleeps):
    route_feeds(http_replay)
    http_replay.route(API, Reply(502))
    with pytest.raises(SourceUnavailable, match="HTTP 502 after 2 attempts"):
        source(http_replay, sleeps, http_retries=1).fetch(date(2025, 6, 3))


def test_timeout_then_success(http_replay, sleeps):
    feed = DATA / "atom_cs.LG_2025-06-04.atom"
    http_replay.route("/atom/cs.LG", Reply.file(feed, delay=1.0), Reply.file(feed))
    started = time.monotonic()
    listing = source(http_replay, sleeps, arxiv_categories=["cs.LG"], http_timeout=0.2).fetch(FEED_DAY)
    assert len(listing.papers) == 3
    assert len(http_replay.requests) == 2 and len(sleeps) == 1
    assert time.monotonic() - started < 1.0  # gave up on the slow answer


@pytest.mark.parametrize(
    "body",
    [
        (DATA / "atom_cs.LG_2025-06-04.atom").read_text()[:3000],  # cut off mid-download
        "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        '{"error": "not a feed"}',
    ],
    ids=["truncated", "html", "json"],
)
def test_malformed_feed_is_a_format_error_naming_the_url(http_replay, sleeps, body):
    http_replay.route("/atom/cs.LG", Reply.xml(body))
    with pytest.raises(SourceFormatError, match=re.escape(http_replay.url("/atom/cs.LG"))):
        source(http_replay, sleeps).fetch(FEED_DAY)


def test_malformed_api_page_is_a_format_error(http_replay, sleeps):
    route_feeds(http_replay)
    text = (DATA / "api_2025-05-30_2025-06-02_start0.xml").read_text()
    http_replay.route(API, Reply.xml(text[: len(text) // 2]))
    with pytest.raises(SourceFormatError, match="not well-formed"):
        source(http_replay, sleeps).fetch(date(2025, 6, 3))


@pytest.mark.parametrize("status", [400, 200])
def test_api_error_feed_is_a_request_error_with_its_message(http_replay, sleeps, status):
    route_feeds(http_replay)
    http_replay.route(API, Reply.file(DATA / "api_error.xml", status=status))
    with pytest.raises(SourceRequestError, match="max_results must be less than or equal to 2000"):
        source(http_replay, sleeps).fetch(date(2025, 6, 3))
    assert len(http_replay.requests_for(API)) == 1  # not worth retrying


def test_feed_without_a_date_is_a_format_error(http_replay, sleeps):
    text = (DATA / "atom_cs.LG_2025-06-07.atom").read_text()
    http_replay.route("/atom/cs.LG", Reply.xml(re.sub(r"<updated>.*</updated>", "", text)))
    with pytest.raises(SourceFormatError, match="no channel date"):
        source(http_replay, sleeps).fetch(SATURDAY)


# one request at a time, spaced out


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_turn_starts():
    clock = FakeClock()
    limiter = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    started = []
    for work in (0.5, 4.0, 0.0, 1.0):
        with limiter.turn():
            started.append(clock.now)
            clock.now += work  # the request itself
    assert started == [100.0, 103.0, 107.0, 110.0]  # a 4 s request needs no extra wait
    assert clock.sleeps == [2.5, 3.0]


def test_shared_limiter_is_one_per_url_and_keeps_the_longest_interval():
    url = "http://127.0.0.1:9/api/query-shared-test"
    first = shared_limiter(url, 0.5)
    assert shared_limiter(url + "/", 3.0) is first and first.interval == 3.0
    assert shared_limiter(url, 1.0).interval == 3.0
    assert shared_limiter(url + "-other", 0.5) is not first


def test_concurrent_callers_share_one_spaced_api_client(http_replay):
    interval = 0.15
    route_feeds(http_replay)
    route_api(http_replay)
    settings = settings_for(http_replay, arxiv_min_interval=interval)
    sent: list[tuple[str, float]] = []

    def record(request: httpx.Request) -> None:
        sent.append((request.url.path, time.monotonic()))

    clients = [httpx.Client(event_hooks={"request": [record]}) for _ in range(3)]
    sources = [ArxivSource(settings, client, page_size=2) for client in clients]
    assert sources[0].api_limiter is sources[1].api_limiter is sources[2].api_limiter
    results: list[Listing] = []
    tuesday = date(2025, 6, 3)
    threads = [threading.Thread(target=lambda s=s: results.append(s.fetch(tuesday))) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for client in clients:
        client.close()
    assert [len(listing.papers) for listing in results] == [3, 3, 3]
    api_times = sorted(at for path, at in sent if path == API)
    assert len(api_times) == 6 == len(http_replay.requests_for(API))
    gaps = [later - earlier for earlier, later in zip(api_times, api_times[1:])]
    # The hook fires a few microseconds after the limiter stamps a request's start.
    assert min(gaps) >= interval - 0.002, gaps


# one paper across sources


def test_paper_on_both_sources_is_stored_once_keeps_upvotes_gains_categories(http_replay, sleeps, tmp_path):
    route_feeds(http_replay)
    arxiv_listing = source(http_replay, sleeps).fetch(FEED_DAY)
    hf_item = {
        "paper": {
            "id": "2506.03101",
            "title": "Filtering Learning Histories Enhances In-Context Reinforcement Learning",
            "summary": "Transformer models (TMs) have exhibited remarkable in-context RL capabilities.",
            "authors": [{"name": "Linyi Huang"}],
            "publishedAt": "2025-06-03T09:12:44.000Z",
            "upvotes": 27,
        },
        "numComments": 3,
    }
    with Store(tmp_path / "paperboy.db") as store:
        assert store.upsert_papers([parse_item(hf_item, FEED_DAY)]) == 1
        assert store.upsert_papers(arxiv_listing.papers) == len(arxiv_listing.papers) - 1
        assert store.paper_count() == len(arxiv_listing.papers)
        rows = list(store.db.query("SELECT * FROM papers WHERE id = ?", ["2506.03101"]))
    assert len(rows) == 1
    row = rows[0]
    assert (row["upvotes"], row["comments"]) == (27, 3)
    assert sorted(json.loads(row["categories"])) == ["cs.AI", "cs.LG", "cs.RO"]
    assert sorted(json.loads(row["sources"])) == ["arxiv", "huggingface"]
    assert row["url"] == "https://huggingface.co/papers/2506.03101"
    assert row["abstract"].startswith("Transformer models (TMs)")
    assert len(row["abstract"]) > 1000  # arXiv's full abstract beats the short one


# building blocks


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("oai:arXiv.org:2506.01234v1", "2506.01234"),
        ("http://arxiv.org/abs/2506.01234v12", "2506.01234"),
        ("https://arxiv.org/abs/2506.01234", "2506.01234"),
        ("2506.01234", "2506.01234"),
        ("0704.0001v2", "0704.0001"),
        ("http://arxiv.org/abs/hep-th/9901001v1", "hep-th/9901001"),
        ("oai:arXiv.org:math.GT/0309136v2", "math.GT/0309136"),
        ("cond-mat/0102536", "cond-mat/0102536"),
        ("http://arxiv.org/abs/", None),
        ("http://arxiv.org/api/errors#max_results_must_be_less_than_or_equal_to_2000", None),
        ("oai:arXiv.org:../../etc/passwd", None),
        (None, None),
    ],
)
def test_arxiv_id(value, expected):
    assert arxiv_id(value) == expected


def test_split_creators_drops_affiliations():
    text = "Ada Lovelace (Univ. of London, Dept. of Maths), Alan Turing,  Grace Hopper, and Edsger Dijkstra"
    assert split_creators(text) == ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra")
    assert split_creators("") == () and split_creators(None) == ()


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("<pubDate>Wed, 04 Jun 2025 00:00:00 -0400</pubDate>", date(2025, 6, 4)),
        ("<lastBuildDate>Wed, 04 Jun 2025 04:00:14 +0000</lastBuildDate>", date(2025, 6, 4)),
        # 23:59 in New York: still the day before
        ("<lastBuildDate>Wed, 04 Jun 2025 03:59:00 +0000</lastBuildDate>", date(2025, 6, 3)),
    ],
)
def test_feed_day_reads_the_channel_date_in_new_york(channel, expected):
    rss = f'<rss version="2.0"><channel><title>t</title>{channel}</channel></rss>'
    doc = parse_document(rss.encode(), "u")
    assert feed_day(doc) == expected


def test_feed_bytes_are_never_opened_as_a_file_name(tmp_path):
    secret = tmp_path / "secret.xml"
    secret.write_text((DATA / "atom_cs.LG_2025-06-04.atom").read_text())
    with pytest.raises(SourceFormatError):
        parse_document(str(secret).encode(), "u")


def test_parse_feed_counts_an_unknown_announce_type_as_malformed():
    text = (DATA / "atom_cs.AI_2025-06-04.atom").read_text()
    text = text.replace(">new</arxiv:announce_type>", ">absorbed</arxiv:announce_type>")
    papers, skipped = parse_feed(parse_document(text.encode(), "u"), FEED_DAY)
    assert [p.id for p in papers] == ["2506.03101"] and skipped == 2


WEEK = {  # listing day -> (first, last) submission day asked of the API
    date(2025, 6, 2): (date(2025, 5, 29), date(2025, 5, 30)),  # Monday <- Thursday..Friday
    date(2025, 6, 3): (date(2025, 5, 30), date(2025, 6, 2)),  # Tuesday <- Friday..Monday, the weekend too
    date(2025, 6, 4): (date(2025, 6, 2), date(2025, 6, 3)),
    date(2025, 6, 5): (date(2025, 6, 3), date(2025, 6, 4)),
    date(2025, 6, 6): (date(2025, 6, 4), date(2025, 6, 5)),
}


def test_submission_window_for_each_weekday():
    assert {day: submission_window(day) for day in WEEK} == WEEK


def test_submission_windows_cover_every_day_and_overlap():
    days = [date(2025, 5, 1) + timedelta(n) for n in range(60)]
    weekdays = [day for day in days if day.weekday() < 5]
    covered = set()
    for earlier, later in zip(weekdays, weekdays[1:]):
        assert submission_window(later)[0] <= submission_window(earlier)[1]  # no gap between neighbours
    for day in weekdays:
        first, last = submission_window(day)
        covered |= {first + timedelta(n) for n in range((last - first).days + 1)}
    assert covered == {min(covered) + timedelta(n) for n in range((max(covered) - min(covered)).days + 1)}


def test_search_query_text():
    assert search_query(["cs.LG"], date(2025, 6, 2), date(2025, 6, 2)) == (
        "(cat:cs.LG) AND submittedDate:[202506020000 TO 202506022359]"
    )


def test_build_source_and_settings_checks(http_replay):
    built = build_source("arxiv", settings_for(http_replay))
    assert isinstance(built, ArxivSource) and isinstance(built, Source)
    assert built.categories == ("cs.LG", "cs.AI")
    with pytest.raises(ValueError, match="not arXiv categories"):
        ArxivSource(settings_for(http_replay, arxiv_categories=["cs.LG) OR (all:x"]))
    with pytest.raises(ValueError, match="empty"):
        ArxivSource(settings_for(http_replay, arxiv_categories=[]))


def test_a_backfill_stops_at_an_unreachable_api_and_leaves_the_later_ranges_untried(sleeps, tmp_path):
    """Range queries run per stretch of dates not fetched yet; when the first stretch finds
    the host unresolvable, the later stretches are recorded "not tried" (the next run
    tries them), not asked for one by one to fail the same way."""
    from flows.fetch import fetch_backfill

    unresolvable = "http://paperboy-test.invalid"  # RFC 6761: never resolves
    settings = Settings(arxiv_feed_url=f"{unresolvable}/atom", arxiv_api_url=f"{unresolvable}{API}",
                        arxiv_categories=["cs.LG"], arxiv_min_interval=0, http_retries=3)
    days = [date(2025, 5, 26), date(2025, 5, 27), date(2025, 5, 29), date(2025, 5, 30)]  # two stretches
    with Store(tmp_path / "p.db") as store:
        report = fetch_backfill(store, ArxivSource(settings, sleep=sleeps), days, workers=2)
        failed = report.dates_failed
        assert sorted(failed) == [f"arxiv:{day}" for day in days]
        assert all("cannot resolve the host name" in why for why in failed.values())
        untried = sorted(key for key, why in failed.items() if why.startswith("not tried: "))
        assert untried == ["arxiv:2025-05-29", "arxiv:2025-05-30"]
        assert store.fetched_dates("arxiv") == set()
