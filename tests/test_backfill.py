"""Backfills: a month of replayed Hugging Face listings, failures, resume after interrupt,
--refresh, and one catch-up digest per subscriber with --send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from flows.backfill import BackfillRangeError, backfill, check_range
from flows.store import Store
from tests.support.corpus import api_item, seed_papers
from tests.support.http import Reply
from tests.support.signals import ctrl_c_works

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/daily_papers"
START, END = date(2025, 5, 1), date(2025, 5, 31)


def month_of_listings(server, *, failing: date | None = None, slow: float = 0.0) -> dict[date, list[str]]:
    """Replay a month: weekdays list two or three real papers (ids unique per day), weekends nothing."""
    papers = seed_papers()
    listed: dict[date, list[str]] = {}
    day = START
    n = 0
    while day <= END:
        items = []
        if day.weekday() < 5:
            for k in range(2 + day.day % 2):
                paper = dict(papers[(n + k) % len(papers)], id=f"2505.{day.day:02d}{k:03d}")
                items.append(api_item(paper, day))
            n += 1
        listed[day] = [i["paper"]["id"] for i in items]
        query = {"date": day.isoformat(), "p": 0, "limit": 50}
        if day == failing:
            server.route(PATH, Reply.json({"error": "boom"}, status=500), query=query)
        else:
            server.route(PATH, Reply.json(items, delay=slow), query=query)
        day += timedelta(days=1)
    return listed


@pytest.fixture
def hf_env(workspace, http_replay, monkeypatch):
    monkeypatch.setenv("PAPERBOY_SOURCES", "huggingface")
    monkeypatch.setenv("PAPERBOY_HF_BASE_URL", http_replay.base_url)
    monkeypatch.setenv("PAPERBOY_HTTP_RETRIES", "1")
    monkeypatch.setenv("PAPERBOY_HF_MIN_INTERVAL", "0")
    monkeypatch.setenv("PAPERBOY_RECENCY_DAYS", "3")
    return workspace


def requested_dates(server) -> list[str]:
    return [r.query["date"] for r in server.requests_for(PATH)]


def test_a_month_is_indexed_and_a_failing_date_reported(hf_env, http_replay):
    listed = month_of_listings(http_replay, failing=date(2025, 5, 14))
    result = backfill(start=START, end=END)
    assert len(result["dates_fetched"]) == 30
    assert list(result["dates_failed"]) == ["huggingface:2025-05-14"]
    assert "HTTP 500" in result["dates_failed"]["huggingface:2025-05-14"]
    expected = sum(len(v) for d, v in listed.items() if d != date(2025, 5, 14))
    assert result["papers_new"] == expected
    assert hf_env.server.received == []  # index only: no email by default
    with Store(hf_env.db_path) as store:
        assert len(store.fetched_dates("huggingface")) == 30
    # the rerun fetches only the failed date, now answering
    http_replay.route(PATH, [], query={"date": "2025-05-14", "p": 0, "limit": 50})
    before = len(http_replay.requests)
    again = backfill(start=START, end=END)
    assert [r.query["date"] for r in http_replay.requests[before:]] == ["2025-05-14"]
    assert again["dates_failed"] == {} and len(again["dates_fetched"]) == 1


def test_refresh_fetches_every_date_again(hf_env, http_replay):
    month_of_listings(http_replay)
    backfill(start=date(2025, 5, 5), end=date(2025, 5, 9))
    before = len(http_replay.requests)
    result = backfill(start=date(2025, 5, 5), end=date(2025, 5, 9), refresh=True)
    assert sorted(requested_dates(http_replay)[before:]) == [f"2025-05-0{d}" for d in range(5, 10)]
    assert result["papers_new"] == 0  # same papers: upserted, not duplicated


def test_send_mails_one_catch_up_digest_per_subscriber(hf_env, http_replay):
    listed = month_of_listings(http_replay)
    result = backfill(start=START, end=END, send=True)
    counts = Counter(hf_env.server.recipients())
    assert counts and set(counts.values()) == {1}  # never one email per day
    assert result["sent"] == len(counts)
    # papers from early in the month made it into the catch-up digest
    early = set(listed[date(2025, 5, 1)])
    with Store(hf_env.db_path) as store:
        delivered = {r["paper_id"] for r in store.db.query("select paper_id from deliveries")}
    assert early & delivered
    again = backfill(start=START, end=END, send=True)  # the ledger still rules
    assert again["sent"] == 0 and len(hf_env.server.received) == len(counts)


def test_range_checks():
    today = date(2025, 6, 13)
    with pytest.raises(BackfillRangeError, match="after"):
        check_range(date(2025, 6, 2), date(2025, 6, 1), today)
    with pytest.raises(BackfillRangeError, match="future"):
        check_range(date(2025, 6, 1), date(2025, 6, 14), today)


@pytest.mark.slow
def test_interrupted_backfill_resumes_where_it_stopped(hf_env, http_replay, prefect_harness):
    listed = month_of_listings(http_replay, slow=0.15)
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "PAPERBOY_BACKFILL_CONCURRENCY": "2"}
    child = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "backfill", "--from", START.isoformat(), "--to", END.isoformat()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_works)

    def fetched_dates() -> set[date]:
        with Store(hf_env.db_path) as store:
            return store.fetched_dates("huggingface")

    def fetched() -> int:
        return len(fetched_dates())

    deadline = time.monotonic() + 120
    while fetched() < 8:
        assert child.poll() is None, child.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "backfill made no progress"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)  # Ctrl-C
    output = child.communicate(timeout=60)[0].decode()
    assert child.returncode != 0, output[-3000:]
    stored = fetched_dates()
    done = len(stored)
    assert 8 <= done < 31, output[-3000:]
    assert "done" in output and "remaining" in output  # progress was reported

    first_pass = Counter(requested_dates(http_replay))
    result = backfill(start=START, end=END)
    second_pass = Counter(requested_dates(http_replay)) - first_pass
    assert len(result["dates_fetched"]) == 31 - done
    # the resumed run asked only for the dates missing at the interrupt, each once
    assert set(second_pass) == {d.isoformat() for d in (set(listed) - stored)}
    assert set(second_pass.values()) == {1}
    with Store(hf_env.db_path) as store:
        assert len(store.fetched_dates("huggingface")) == 31
        assert store.paper_count() == sum(len(v) for v in listed.values())


def test_an_unreachable_source_is_tried_once_per_worker_and_reported_in_a_few_lines(hf_env, monkeypatch):
    """A backfill without a network (a host name that cannot resolve) stops trying after the
    dates already in flight: the month's other dates are recorded "not tried" (the next run
    tries them again), and the summary says them in one line, not one per date."""
    from flows.cli import fetch_problems
    from flows.tasks import summary_of

    monkeypatch.setenv("PAPERBOY_HF_BASE_URL", "http://paperboy-test.invalid")  # RFC 6761: never resolves
    monkeypatch.setenv("PAPERBOY_BACKFILL_CONCURRENCY", "2")
    state = backfill(start=START, end=END, return_state=True)
    assert state.is_failed()  # nothing fetched at all
    result = summary_of(state)
    failed = result["dates_failed"]
    assert len(failed) == 31 and not result["dates_fetched"]
    tried = [key for key, why in failed.items() if not why.startswith("not tried: ")]
    assert 1 <= len(tried) <= 2, tried  # the two workers' first dates, no more
    assert all("cannot resolve the host name" in why for why in failed.values())
    lines = fetch_problems(failed)
    assert len(lines) == len(tried) + 1, lines
    assert any(line.startswith(f"fetch huggingface: {31 - len(tried)} dates, 2025-05-") for line in lines), lines
    with Store(hf_env.db_path) as store:
        assert store.fetched_dates("huggingface") == set()  # untried dates are the next run's
