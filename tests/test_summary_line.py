"""The summary line an operator reads names malformed items the sources skipped.

The README says a malformed upstream item is "skipped and counted ('malformed items skipped'
in the run's summary)", but only the Prefect artifact said so: the line `paperboy run` and
`backfill` print did not, so at a terminal or in cron mail nine dropped items went unseen.
"""

from __future__ import annotations

from datetime import date

from flows.fetch import FetchReport
from flows.report import BackfillSummary, RunSummary
from flows.send import BatchReport

DAY = date(2025, 6, 13)


def fetched(skipped: int) -> FetchReport:
    return FetchReport(dates_fetched=[f"huggingface:{DAY}"], papers_fetched=12, papers_new=12, items_skipped=skipped)


def test_the_run_line_counts_malformed_items_only_when_there_are_some():
    line = RunSummary(digest_date=DAY, dry_run=False, fetch=fetched(9), batch=BatchReport()).line()
    assert "fetched 12 papers (12 new) from 1 listing dates (9 malformed items skipped)" in line
    assert "malformed" not in RunSummary(digest_date=DAY, dry_run=False, fetch=fetched(0), batch=BatchReport()).line()


def test_the_backfill_line_counts_them_too():
    assert "(9 malformed items skipped)" in BackfillSummary(start=DAY, end=DAY, fetch=fetched(9)).line()


def test_many_digests_with_one_reason_are_one_line_after_the_summary(capsys):
    """A Dask batch whose worker died makes 500 digests uncertain with one reason: the CLI
    printed 500 identical lines after the summary. Now one line names a few and counts the
    rest; reasons shared by fewer than four stay one line each."""
    from flows.cli import GROUPED_FROM, print_summary

    lost = "the Dask worker with this digest's batch died before returning its outcomes"
    result = RunSummary(digest_date=DAY, dry_run=False, fetch=fetched(0), batch=BatchReport(
        uncertain={f"r{n:03d}@example.org": lost for n in range(500)} | {"odd@example.org": "no reply in 600 s"},
        failed={"a@example.org": "550 5.1.1 no such user", "b@example.org": "550 5.1.1 no such user"},
    )).as_dict()
    print_summary(result)
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  ! ")]
    assert problems == [
        "  ! failed a@example.org: 550 5.1.1 no such user",
        "  ! failed b@example.org: 550 5.1.1 no such user",
        f"  ! uncertain 500 digests: {lost} (r000@example.org, r001@example.org, r002@example.org and 497 more)",
        "  ! uncertain odd@example.org: no reply in 600 s",
    ]
    assert GROUPED_FROM > 2


def test_dates_of_one_source_failing_alike_are_one_line():
    from flows.cli import fetch_problems

    failed = {f"huggingface:2025-06-{d:02d}": "not tried: cannot resolve the host name" for d in range(2, 31)}
    failed["huggingface:2025-06-01"] = "GET …?date=2025-06-01: cannot resolve the host name"
    failed["arxiv:2025-06-05"] = "HTTP 503"
    assert fetch_problems(failed) == [
        "fetch arxiv:2025-06-05: HTTP 503",
        "fetch huggingface:2025-06-01: GET …?date=2025-06-01: cannot resolve the host name",
        "fetch huggingface: 29 dates, 2025-06-02 … 2025-06-30: not tried: cannot resolve the host name",
    ]
