"""The daily flow end to end under Prefect's test harness, against the recording SMTP server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flows.daily import daily_digest
from flows.store import Store
from flows.tasks import summary_of

pytestmark = pytest.mark.usefixtures("prefect_harness")


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def by_recipient(server) -> dict[str, list]:
    out: dict[str, list] = {}
    for received in server.received:
        for rcpt in received.rcpt_tos:
            out.setdefault(rcpt, []).append(received.message)
    return out


def test_first_run_mails_each_subscriber_their_ranked_digest(workspace):
    result = daily_digest(digest_date=workspace.day)
    mail = by_recipient(workspace.server)
    assert sorted(mail) == ["ada@example.org", "alan@example.org", "grace@example.org"]
    assert all(len(messages) == 1 for messages in mail.values())
    ada = html_of(mail["ada@example.org"][0])
    assert "Value Gradient weighted Model-Based Reinforcement Learning" in ada
    assert "Tool-Augmented Reward Modeling" not in ada
    assert "Tool-Augmented Reward Modeling" in html_of(mail["grace@example.org"][0])
    assert "CLIMB: Curriculum Learning" in html_of(mail["alan@example.org"][0])
    assert result["sent"] == 3 and result["failed"] == {} and result["papers_new"] == 12
    assert "sent 3" in result["line"]


def test_same_date_twice_sends_nothing_the_second_time(workspace):
    daily_digest(digest_date=workspace.day)
    first = len(workspace.server.received)
    again = daily_digest(digest_date=workspace.day)
    assert len(workspace.server.received) == first == 3
    assert again["sent"] == 0 and again["already"] == 3
    assert "already sent 3" in again["line"]


def test_next_day_sends_only_unseen_papers(workspace):
    daily_digest(digest_date=workspace.day)
    with Store(workspace.db_path) as store:
        first_ids = {r["paper_id"] for r in store.db.query(
            "select paper_id from deliveries where subscriber = 'ada@example.org'")}
    result = daily_digest(digest_date=workspace.day + timedelta(days=1))
    # same candidates (nothing new listed): everything was already sent, nobody is mailed
    assert result["sent"] == 0 and result["skipped"] == 3
    assert len(workspace.server.received) == 3
    assert first_ids


def test_broken_subscriber_file_is_reported_and_the_others_served(workspace):
    (workspace.subscribers_dir / "broken.yaml").write_text("email: nobody@\nkeywords: [x]\n")
    result = daily_digest(digest_date=workspace.day)
    assert result["sent"] == 3
    assert len(result["subscriber_errors"]) == 1
    assert "broken.yaml" in result["subscriber_errors"][0]
    assert "email" in result["subscriber_errors"][0]


def test_permanent_rejection_fails_one_digest_and_the_rest_go_out(workspace):
    workspace.server.reject_recipient("grace@example.org", 550)
    state = daily_digest(digest_date=workspace.day, return_state=True)
    assert state.is_failed() and state.message == "1 digests failed"  # not "Completed" (issue 13)
    result = summary_of(state)
    assert sorted(by_recipient(workspace.server)) == ["ada@example.org", "alan@example.org"]
    assert "550" in result["failed"]["grace@example.org"]
    with Store(workspace.db_path) as store:
        rows = {r["subscriber"]: r for r in store.digest_rows(workspace.day)}
        assert rows["grace@example.org"]["status"] == "failed"
        assert store.delivered_count("grace@example.org") == 0  # her papers stay unseen
    again = daily_digest(digest_date=workspace.day)  # permanent: final for that date
    assert again["sent"] == 0 and len(workspace.server.received) == 2


def test_transient_rejection_is_retried_and_delivered_once(workspace):
    workspace.server.fail_next(451, times=2, stage="RCPT")
    result = daily_digest(digest_date=workspace.day)
    assert result["sent"] == 3
    assert sorted(workspace.server.recipients()) == [
        "ada@example.org", "alan@example.org", "grace@example.org"]


def test_dry_run_sends_and_records_nothing(workspace):
    result = daily_digest(digest_date=workspace.day, dry_run=True)
    assert workspace.server.received == []
    assert sorted(result["would_send"]) == ["ada@example.org", "alan@example.org", "grace@example.org"]
    with Store(workspace.db_path) as store:
        assert store.digest_rows() == [] and store.delivered_count() == 0
    assert "would send 3" in result["line"]


def test_only_one_subscriber(workspace):
    result = daily_digest(digest_date=workspace.day, only="grace@example.org")
    assert workspace.server.recipients() == ["grace@example.org"]
    assert result["subscribers"] == 1


def test_summary_artifact_is_published(workspace):
    from prefect.client.orchestration import get_client

    daily_digest(digest_date=workspace.day)

    async def latest():
        async with get_client() as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["daily-digest-summary"])))
            return found

    artifacts = asyncio.run(latest())
    assert artifacts
    assert any("| sent | 3 |" in (a.data or "") for a in artifacts)
