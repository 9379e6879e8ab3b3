"""The daily flow on a Dask cluster: the same ledger and the same mail as with threads, the
batches on worker processes, and SQLite opened by the flow's process only."""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from markupsafe import escape

from flows.daily import daily_digest
from flows.corpus import Corpus
from flows.fetch import fetch_dates
from flows.send import BatchAborted, BatchPlan, BatchReport, plan_batch, send_detached
from flows.tasks import task_runner_for
from flows.settings import PROJECT_ROOT, Settings
from flows.sources import build_source
from flows.store import Store
from flows.subscribers import load_all
from tests.support.corpus import seed_papers

EXTRA_READERS = {  # with ada, grace and alan: 10 subscribers, 4 batches of at most 3
    "reader0": "keywords: [reinforcement learning, language models]",
    "reader1": "keywords: [reward model]\ninclude_trending: true",
    "reader2": "keywords: [protein folding]",  # nothing matches: skipped
    "reader3": "keywords: [curriculum learning, offline RL]\nmax_papers: 2",
    "reader4": "keywords: [language models]\nactive: false",  # not due
    "reader5": "keywords: [diffusion, transformer]",  # nothing matches either
    "reader6": "keywords: [model-based reinforcement learning]\nfrequency: weekly\nweekday: friday",
}

# SQLite databases a worker process opened, filled by the audit hook `watch_sqlite` installs.
OPENED: list[str] = []


def watch_sqlite() -> list[str]:
    """Runs on each worker: record every sqlite3.connect from now on (an audit hook cannot
    be bypassed by any import path), checked once with an in-memory database."""
    sys.addaudithook(lambda event, args: OPENED.append(str(args[0])) if event == "sqlite3.connect" else None)
    sqlite3.connect(":memory:").close()
    return list(OPENED)


def opened_databases() -> list[str]:
    return list(OPENED)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, started before any PAPERBOY_* variable is set:
    the workers get their settings from the flow, not from their environment. The client is
    not the process default, which the flow's runner would pick up instead of its settings."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        assert all(checked == [":memory:"] for checked in client.run(watch_sqlite).values())
        yield local, client


def add_readers(directory: Path) -> None:
    for name, body in EXTRA_READERS.items():
        (directory / f"{name}.yaml").write_text(f"email: {name}@example.org\n{body}\n", encoding="utf-8")


def ledger(db_path: Path) -> tuple[list[tuple], list[tuple]]:
    """Digest rows and deliveries, without row ids and timestamps."""
    with Store(db_path) as store:
        digests = sorted(
            (r["subscriber"], r["digest_date"], r["status"], r["message_id"], r["papers"], r["attempts"], r["error"])
            for r in store.digest_rows())
        deliveries = sorted(store.db.execute(
            "SELECT subscriber, paper_id, digest_date FROM deliveries").fetchall())
    return digests, deliveries


def mail(received) -> list[tuple]:
    """What each delivered message said, comparable across runs (link tokens carry a time)."""
    titles = [p["title"] for p in seed_papers()]
    out = []
    for item in received:
        html = item.message.get_body(("html",)).get_content()
        shown = frozenset(t for t in titles if str(escape(t)) in html)
        out.append((item.rcpt_tos, item.message["Subject"], item.message["Message-ID"], shown))
    return sorted(out, key=lambda m: m[0])


def batch_states(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.state_type.value for r in runs if r.name.startswith("send-batch")]


def pids(workers: list[str]) -> set[int]:
    return {int(w.rsplit(":", 1)[1]) for w in workers}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_dask_workers_give_the_same_ledger_and_mail_as_threads(workspace, cluster, monkeypatch):
    local, client = cluster
    add_readers(workspace.subscribers_dir)
    monkeypatch.setenv("PAPERBOY_BATCH_SIZE", "3")
    server = workspace.server

    monkeypatch.setenv("PAPERBOY_DB_PATH", str(workspace.path / "thread.db"))
    threads = daily_digest(digest_date=workspace.day)
    first = len(server.received)
    by_threads = mail(server.received[:first])

    monkeypatch.setenv("PAPERBOY_DB_PATH", str(workspace.path / "dask.db"))
    monkeypatch.setenv("PAPERBOY_TASK_RUNNER", "dask")
    monkeypatch.setenv("PAPERBOY_DASK_ADDRESS", local.scheduler_address)
    state = daily_digest(digest_date=workspace.day, return_state=True)
    on_dask = state.result()

    assert mail(server.received[first:]) == by_threads
    assert len(by_threads) == threads["sent"] == on_dask["sent"] == 7
    assert all(titles for *_, titles in by_threads)  # the comparison covers the papers shown
    counts = ("subscribers", "sent", "skipped", "not_due", "already", "failed", "deferred")
    assert [on_dask[k] for k in counts] == [threads[k] for k in counts] == [10, 7, 2, 1, 0, {}, {}]
    assert ledger(workspace.path / "dask.db") == ledger(workspace.path / "thread.db")
    assert len(ledger(workspace.path / "dask.db")[1]) > 7

    # where the work happened
    worker_pids = set(client.run(os.getpid).values())
    assert pids(threads["workers"]) == {os.getpid()}
    assert pids(on_dask["workers"]) and pids(on_dask["workers"]) <= worker_pids
    assert os.getpid() not in worker_pids
    for worker, opened in client.run(opened_databases).items():
        assert opened == [":memory:"], f"{worker} opened {opened}"  # never the ledger
    # the workers reported their task runs to the flow's Prefect API
    assert batch_states(state.state_details.flow_run_id) == ["COMPLETED"] * 4

    # a rerun on the cluster reads the ledger the workers' outcomes were written to
    again = daily_digest(digest_date=workspace.day)
    assert again["sent"] == 0 and again["already"] == 7 and len(server.received) == 2 * first


def broken_templates(workspace) -> Path:
    """A copy of the templates that cannot render grace's digest (her keywords: reward model)."""
    templates = workspace.path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    text = templates / "digest.txt.j2"
    text.write_text('{% if "reward model" in reason %}{{ no_such_value }}{% endif %}' + text.read_text())
    return templates


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_failing_batch_on_a_worker_still_gets_its_sent_digests_recorded(workspace, cluster, monkeypatch):
    local, _ = cluster
    monkeypatch.setenv("PAPERBOY_TASK_RUNNER", "dask")
    monkeypatch.setenv("PAPERBOY_DASK_ADDRESS", local.scheduler_address)
    monkeypatch.setenv("PAPERBOY_SMTP_CONNECTIONS", "1")  # ada, alan, then grace: in that order
    monkeypatch.setenv("PAPERBOY_SMTP_RETRIES", "10")  # grace's attempts trip the relay breaker
    workspace.server.refuse_after(2, code=451, text="4.3.2 system not accepting messages")
    with pytest.raises(BatchAborted, match="refuses everything"):
        daily_digest(digest_date=workspace.day)
    assert sorted(workspace.server.recipients()) == ["ada@example.org", "alan@example.org"]
    with Store(workspace.db_path) as store:
        assert {r["subscriber"]: r["status"] for r in store.digest_rows()} == {
            "ada@example.org": "sent", "alan@example.org": "sent"}

    workspace.server.refuse_after(None)
    again = daily_digest(digest_date=workspace.day)
    assert again["sent"] == 1 and again["already"] == 2
    assert sorted(workspace.server.recipients()) == [
        "ada@example.org", "alan@example.org", "grace@example.org"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_without_an_address_the_flow_starts_its_own_cluster(workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_TASK_RUNNER", "dask")
    monkeypatch.setenv("PAPERBOY_DASK_WORKERS", "2")
    monkeypatch.setenv("PAPERBOY_BATCH_SIZE", "1")
    result = daily_digest(digest_date=workspace.day)
    assert result["sent"] == 3 and sorted(workspace.server.recipients()) == [
        "ada@example.org", "alan@example.org", "grace@example.org"]
    assert result["workers"] and os.getpid() not in pids(result["workers"])
    assert not any(alive(pid) for pid in pids(result["workers"]))  # the cluster went with the run
    with Store(workspace.db_path) as store:
        assert [r["status"] for r in store.digest_rows(workspace.day)] == ["sent"] * 3


def test_the_runner_follows_the_settings():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert type(task_runner_for(Settings(task_runner="thread"))) is ThreadPoolTaskRunner
    remote = task_runner_for(Settings(task_runner="dask", dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = task_runner_for(Settings(task_runner="dask", dask_workers=3), api_url="http://127.0.0.1:8123/api")
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True,
                                    "preload": ["flows.signals"],
                                    "env": {"PREFECT_API_URL": "http://127.0.0.1:8123/api"}}
    assert isinstance(daily_digest.task_runner.duplicate(), ThreadPoolTaskRunner)


# -- what a worker is sent and sends back (no Prefect, no cluster) ---------------------------


@pytest.fixture
def planned(workspace):
    """The workspace's listings in the store and one plan for all its subscribers."""
    settings = Settings()
    with Store(settings.db_path) as store:
        fetch_dates(store, build_source("snapshot", settings), [workspace.day - timedelta(days=1), workspace.day])
        corpus = Corpus.load(store, settings, workspace.day)
        subscribers, _ = load_all(settings.subscribers_dir)
        return settings, corpus, plan_batch(subscribers, store, corpus)


def test_what_is_shipped_pickles_without_the_rank_index(planned):
    settings, corpus, plan = planned
    before = len(pickle.dumps(corpus))
    corpus.index(3)  # built on first use, then cached in this process
    assert corpus._indexes and len(pickle.dumps(corpus)) == before
    copy = pickle.loads(pickle.dumps(corpus))
    assert copy._indexes == {} and copy.paper_ids() == corpus.paper_ids()
    # a worker's next batch brings another copy: it reuses the index the first one built
    assert pickle.loads(pickle.dumps(corpus)).index(3) is copy.index(3) is not corpus.index(3)
    assert pickle.loads(pickle.dumps(settings)).secret_key.get_secret_value() == "test-secret-key-0123456789-abcdefghij"
    assert pickle.loads(pickle.dumps(plan)) == plan and len(plan.todo) == 3


def test_a_detached_batch_returns_its_outcomes_and_writes_no_ledger(planned, workspace):
    settings, corpus, plan = planned
    result = send_detached(plan, corpus, settings)
    assert [o.status for o in result.outcomes] == ["sent"] * 3 == ["sent"] * result.report.sent
    assert {o.subscriber for o in result.outcomes} == set(workspace.server.recipients())
    with Store(settings.db_path) as store:
        assert store.digest_rows() == []  # recording is the caller's job


def test_a_batch_stopping_part_way_still_hands_back_what_was_sent(planned, workspace):
    settings, corpus, plan = planned
    # one connection, so the order is exactly: ada sent, then the relay refuses everything
    refused = settings.model_copy(update={"smtp_connections": 1, "smtp_retries": 10})
    workspace.server.refuse_after(1)
    todo = {s.email: s for s in plan.todo}
    order = BatchPlan([todo[e] for e in ("ada@example.org", "grace@example.org", "alan@example.org")],
                      plan.seen, BatchReport())
    with pytest.raises(BatchAborted) as raised:
        send_detached(order, corpus, refused)
    aborted = pickle.loads(pickle.dumps(raised.value))  # as it travels back from a worker
    assert [(o.subscriber, o.status) for o in aborted.outcomes] == [("ada@example.org", "sent")]
    assert "refuses everything" in str(aborted) and workspace.server.recipients() == ["ada@example.org"]


def test_a_message_that_cannot_be_made_is_that_subscribers_outcome_only(planned, workspace):
    settings, corpus, plan = planned
    broken = settings.model_copy(update={"templates_dir": broken_templates(workspace), "smtp_connections": 1})
    result = send_detached(plan, corpus, broken)
    by_email = {o.subscriber: o for o in result.outcomes}
    grace = by_email.pop("grace@example.org")
    assert grace.status == "failed" and not grace.permanent and "no_such_value" in grace.error
    assert {o.status for o in by_email.values()} == {"sent"}
    assert sorted(workspace.server.recipients()) == ["ada@example.org", "alan@example.org"]
