"""An absurd backfill range fails fast with one line (exit 2) before anything is fetched.

Before, `paperboy backfill --from 1900-01-01 --to <today>` was accepted: 46,000 listing dates,
hours of requests to Hugging Face (0.6 s apart) or days to arXiv's API (3 s apart), for dates
no source lists. A typo (1025 for 2025) was a night of hammering an API. Now a range that starts
before a source's first listing, or spans more than a year without --long-range, is refused;
a legitimate multi-month backfill runs as before (tests/test_backfill.py).
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from typer.testing import CliRunner

from flows.backfill import BackfillRangeError, backfill, check_backfill
from flows.cli import app
from flows.sources import FIRST_LISTING, MAX_BACKFILL_DATES, backfill_range_problem

TODAY = date(2025, 6, 13)


def invoke(*args: str):
    started = time.monotonic()
    result = CliRunner().invoke(app, list(args))
    return result, time.monotonic() - started


def refused_with_one_line(result, *phrases: str) -> None:
    output = result.output  # stdout and stderr, as a terminal shows them
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for phrase in phrases:
        assert phrase in output, output


@pytest.mark.parametrize("sources, start", [("huggingface", "1900-01-01"), ("huggingface", "2023-05-03"),
                                            ("arxiv", "1025-05-01"), ("huggingface,arxiv", "2023-01-01")])
def test_a_range_before_the_first_listing_is_refused_at_once(workspace, http_replay, monkeypatch,
                                                             sources, start):
    monkeypatch.setenv("PAPERBOY_SOURCES", sources)
    monkeypatch.setenv("PAPERBOY_HF_BASE_URL", http_replay.base_url)
    monkeypatch.setenv("PAPERBOY_ARXIV_API_URL", http_replay.base_url + "/api/query")
    result, took = invoke("backfill", "--from", start, "--to", "2025-06-12")
    refused_with_one_line(result, f"--from {start}", "before the first", "or later")
    assert took < 5, "refused before any Prefect server or fetch"
    assert http_replay.requests == [], "nothing was fetched"


def test_a_range_of_more_than_a_year_needs_long_range(workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_SOURCES", "arxiv")
    result, _ = invoke("backfill", "--from", "2020-01-01", "--to", "2025-06-12")
    refused_with_one_line(result, "1,990 listing dates", "--long-range")


def test_the_rule_in_numbers():
    hf = FIRST_LISTING["huggingface"]
    assert hf == date(2023, 5, 4)
    assert backfill_range_problem(hf, TODAY, ["snapshot"], long_range=True) is None
    assert backfill_range_problem(date(2025, 1, 1), date(2025, 5, 31), ["huggingface", "arxiv"]) is None  # five months
    end = date(2024, 12, 31)
    year = date.fromordinal(end.toordinal() - MAX_BACKFILL_DATES + 1)
    assert backfill_range_problem(year, end, ["huggingface"]) is None
    longer = date.fromordinal(year.toordinal() - 1)
    assert "--long-range" in backfill_range_problem(longer, end, ["huggingface"])
    assert backfill_range_problem(longer, end, ["huggingface"], long_range=True) is None
    assert "first huggingface listing (2023-05-04)" in backfill_range_problem(date(2023, 5, 3), end, ["huggingface"])
    assert backfill_range_problem(date(1900, 1, 1), end, ["snapshot"], long_range=True) is None  # a folder of saved pages
    with pytest.raises(BackfillRangeError, match="after"):  # the older checks still come first
        check_backfill(date(2025, 6, 2), date(2025, 6, 1), ["huggingface"], TODAY)


def test_the_flow_refuses_it_too(workspace, http_replay, monkeypatch, prefect_harness):
    """A deployment run (`prefect deployment run backfill/backfill -p start=1900-01-01 …`) does
    not pass through the CLI: the flow checks the same rule and fetches nothing."""
    monkeypatch.setenv("PAPERBOY_SOURCES", "huggingface")
    monkeypatch.setenv("PAPERBOY_HF_BASE_URL", http_replay.base_url)
    with pytest.raises(BackfillRangeError, match="before the first huggingface listing"):
        backfill(start=date(1900, 1, 1), end=date(2025, 6, 12))
    assert http_replay.requests == []
