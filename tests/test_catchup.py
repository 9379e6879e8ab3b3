"""Missed mornings: each daily run catches up on every listing date since the last good fetch.

The clock is moved with time-machine (the flow asks it for "today" in PAPERBOY_TIMEZONE);
a loopback server plays the Hugging Face Daily Papers API for the days around it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from flows.daily import daily_digest
from tests.support.corpus import api_item, seed_papers

pytestmark = pytest.mark.usefixtures("prefect_harness")

# 07:00 in Tokyo is 22:00 UTC the day before: a flow that took "today" from UTC would
# fetch and mail the wrong dates.
ZONE = "Asia/Tokyo"
D = date(2025, 6, 13)  # a Friday; D-3 .. D are Tuesday .. Friday
API = "/api/daily_papers"
PAGE = 50

# Three different papers listed each day; which subscriber each one matches (by the real ranker).
LISTED = {
    D - timedelta(days=3): ["2506.10001", "2506.10005", "2506.10003"],  # ada, grace, -
    D - timedelta(days=2): ["2506.10002", "2506.10006", "2506.10011"],  # ada, -, -
    D - timedelta(days=1): ["2506.10007", "2506.10004", "2506.10012"],  # grace, -, -
    D: ["2506.10008", "2506.10010", "2506.10009"],  # alan, alan, -
}
MATCHES = {
    "ada@example.org": {"2506.10001", "2506.10002"},
    "grace@example.org": {"2506.10005", "2506.10007"},
    "alan@example.org": {"2506.10008", "2506.10010"},
}
PAPER_URL = re.compile(r"https://huggingface\.co/papers/(\S+)")


def at(day: date, hour: int = 7) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(ZONE))


def run_at(moment: datetime) -> dict:
    """One scheduled morning: the daily flow with no date, the clock at `moment`."""
    with time_machine.travel(moment, tick=True):
        return daily_digest()


@pytest.fixture
def hf(http_replay, workspace, monkeypatch):
    """The replayed Hugging Face API (every date not in LISTED lists nothing) as the only source."""
    papers = {p["id"]: p for p in seed_papers()}
    for day, ids in LISTED.items():
        http_replay.route(API, [api_item(papers[i], day) for i in ids],
                          query={"date": day.isoformat(), "p": 0, "limit": PAGE})
    http_replay.route(API, [])
    for name, value in {"SOURCES": "huggingface", "HF_BASE_URL": http_replay.base_url,
                        "HF_PAGE_SIZE": str(PAGE), "HF_MIN_INTERVAL": "0", "HTTP_RETRIES": "1",
                        "HTTP_TIMEOUT": "5", "TIMEZONE": ZONE}.items():
        monkeypatch.setenv(f"PAPERBOY_{name}", value)
    return http_replay


def fetched(server, since: int = 0) -> list[date]:
    return [date.fromisoformat(r.query["date"]) for r in server.requests_for(API)[since:]]


def delivered(smtp) -> Counter:
    """(recipient, paper id) -> how many messages carried that paper to that recipient."""
    counts: Counter = Counter()
    for received in smtp.received:
        text = received.message.get_body(("plain",)).get_content()
        for rcpt in received.rcpt_tos:
            counts.update((rcpt, paper_id) for paper_id in PAPER_URL.findall(text))
    return counts


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_two_day_outage_is_caught_up_with_nothing_lost_or_sent_twice(hf, workspace):
    first = run_at(at(D - timedelta(days=3)))
    assert first["digest_date"] == (D - timedelta(days=3)).isoformat()
    assert first["sent"] == 2 and first["dates_failed"] == {}  # ada and grace; alan has nothing yet

    # D-2 and D-1: the machine was down, no runs.
    before = len(hf.requests_for(API))
    caught_up = run_at(at(D))
    assert fetched(hf, before) == days(D - timedelta(days=3), D)
    assert caught_up["digest_date"] == D.isoformat() and caught_up["dates_failed"] == {}
    assert caught_up["sent"] == 3

    counts = delivered(workspace.server)
    assert set(counts.values()) == {1}, "a paper reached someone twice"
    assert {(rcpt, pid) for rcpt, pid in counts} == {
        (rcpt, pid) for rcpt, ids in MATCHES.items() for pid in ids}
    outage = {pid for day in days(D - timedelta(days=2), D) for pid in LISTED[day]}
    for rcpt, ids in MATCHES.items():
        assert {pid for r, pid in counts if r == rcpt} >= ids & outage  # none lost

    received = len(workspace.server.received)
    rerun = run_at(at(D, 9))
    assert len(workspace.server.received) == received
    assert rerun["sent"] == 0 and rerun["already"] == 3


def test_empty_weekend_listings_are_normal(hf, workspace):
    friday, monday = D, D + timedelta(days=3)
    run_at(at(friday))
    before = len(hf.requests_for(API))
    result = run_at(at(monday))
    assert fetched(hf, before) == days(friday, monday)  # Saturday and Sunday asked, answered []
    assert result["dates_failed"] == {}
    assert f"{len(days(friday, monday))} listing dates" in result["line"]
    assert "failed 0" in result["line"] and "listing dates failed" not in result["line"]


def test_catch_up_reaches_back_no_further_than_the_lookback(hf, workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_LOOKBACK_DAYS", "5")
    run_at(at(D - timedelta(days=31)))
    before = len(hf.requests_for(API))
    result = run_at(at(D))  # thirty days without a run
    assert fetched(hf, before) == days(D - timedelta(days=4), D)
    assert len(result["dates_fetched"]) == 5


def test_first_run_fetches_the_lookback_window(hf, workspace):
    result = run_at(at(D))
    assert fetched(hf) == days(D - timedelta(days=6), D)  # default lookback: 7 days
    assert result["papers_new"] == 12


def test_new_subscriber_gets_only_the_recency_window(hf, workspace):
    run_at(at(D - timedelta(days=1)))
    (workspace.subscribers_dir / "rita.yaml").write_text(
        "email: rita@example.org\nkeywords: [model-based reinforcement learning, reward model, "
        "curriculum learning]\n", encoding="utf-8")
    run_at(at(D))
    recency = 3  # the default PAPERBOY_RECENCY_DAYS
    window = days(D - timedelta(days=recency - 1), D)
    got = {pid for rcpt, pid in delivered(workspace.server) if rcpt == "rita@example.org"}
    everything = set().union(*MATCHES.values())
    assert got == {pid for pid in everything if any(pid in LISTED[day] for day in window)}
    assert "2506.10001" not in got and "2506.10005" not in got  # listed D-3: too old for her


def test_recency_window_is_configurable(hf, workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_RECENCY_DAYS", "1")
    run_at(at(D))
    got = delivered(workspace.server)
    assert {pid for _, pid in got} == {"2506.10008", "2506.10010"}  # only what D listed
    assert {rcpt for rcpt, _ in got} == {"alan@example.org"}


def test_late_additions_to_the_last_good_day_survive_an_outage(hf, workspace):
    papers = {p["id"]: p for p in seed_papers()}
    late = D - timedelta(days=3)
    morning = [api_item(papers[i], late) for i in LISTED[late]]
    # the day's list grows after the 07:00 run: a reward-modeling paper joins it
    hf.route(API, morning, morning + [api_item(papers["2506.10007"], late)],
             query={"date": late.isoformat(), "p": 0, "limit": PAGE})
    hf.route(API, [api_item(papers[i], D - timedelta(days=1)) for i in ("2506.10004", "2506.10012")],
             query={"date": (D - timedelta(days=1)).isoformat(), "p": 0, "limit": PAGE})
    run_at(at(late))
    run_at(at(D))
    assert delivered(workspace.server)[("grace@example.org", "2506.10007")] == 1
