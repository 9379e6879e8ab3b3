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
