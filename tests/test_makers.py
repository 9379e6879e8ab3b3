"""Render processes (flows.makers): the same mail and ledger as making messages in the
sending process, the work really done elsewhere, and a dying render process costs nothing."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from flows import makers
from flows.compose import renderer_for
from flows.daily import daily_digest
from flows.corpus import Corpus
from flows.fetch import fetch_dates
from flows.send import run_batch
from flows.settings import PROJECT_ROOT, Settings
from flows.sources import build_source
from flows.store import Store
from flows.subscribers import load_all
from tests.test_dask import add_readers, alive, ledger, mail


@pytest.fixture(autouse=True)
def no_pool_left():
    yield
    makers.close_pools()


@pytest.fixture
def ready(workspace):
    """Ten subscribers and the workspace's listings in the store."""
    add_readers(workspace.subscribers_dir)
    settings = Settings()
    with Store(settings.db_path) as store:
        fetch_dates(store, build_source("snapshot", settings), [workspace.day - timedelta(days=1), workspace.day])
    return workspace


def run(settings: Settings, day, corpus: Corpus | None = None):
    subscribers, _ = load_all(settings.subscribers_dir)
    with Store(settings.db_path) as store:
        corpus = corpus or Corpus.load(store, settings, day)
        return run_batch(subscribers, store=store, corpus=corpus, renderer=renderer_for(settings),
                         settings=settings)


@pytest.mark.usefixtures("prefect_harness")
def test_render_processes_give_the_same_mail_and_ledger(workspace, monkeypatch):
    add_readers(workspace.subscribers_dir)
    server = workspace.server
    monkeypatch.setenv("PAPERBOY_RENDER_PROCESSES", "0")
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(workspace.path / "here.db"))
    here = daily_digest(digest_date=workspace.day)
    first = len(server.received)

    monkeypatch.setenv("PAPERBOY_RENDER_PROCESSES", "2")
    monkeypatch.setenv("PAPERBOY_RENDER_PROCESSES_FROM", "1")
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(workspace.path / "pool.db"))
    pooled = daily_digest(digest_date=workspace.day)

    assert mail(server.received[first:]) == mail(server.received[:first])
    assert here["sent"] == pooled["sent"] == first == 7 and pooled["skipped"] == here["skipped"] == 2
    assert ledger(workspace.path / "pool.db") == ledger(workspace.path / "here.db")
    assert makers._POOL is None  # the flow stopped its render processes


def test_messages_are_made_in_the_render_processes(ready):
    settings = Settings(render_processes=2, render_processes_from=1)
    report = run(settings, ready.day)
    assert report.sent == 7 and report.skipped == 2
    seconds = report.seconds
    # ranked and rendered over there; here only waiting for the results, sending and recording
    assert seconds["pool_rank"] > 0 and seconds["pool_render"] > 0 and seconds["pool_index"] > 0
    assert seconds.get("rank", 0) == seconds.get("render", 0) == 0
    assert seconds["receive"] > 0
    pool = makers._POOL
    assert pool is not None and pool.processes == 2
    pids = {pid for pid in pool.executor._processes}
    assert pids and os.getpid() not in pids and all(alive(pid) for pid in pids)
    makers.close_pools()
    assert makers._POOL is None and all(_until(lambda pid=pid: not alive(pid)) for pid in pids)


def test_small_batches_and_the_setting_keep_the_work_here(ready):
    settings = Settings(render_processes=1, render_processes_from=11)
    report = run(settings, ready.day)  # 10 subscribers: under the threshold
    assert report.sent == 7 and "pool_rank" not in report.seconds and report.seconds["rank"] > 0
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, ready.day)
    assert makers.pool_for(corpus, Settings(render_processes=0, render_processes_from=1), 500) is None
    assert makers.pool_for(corpus, settings, 10) is None
    assert makers.pool_for(corpus, settings, 11) is not None


def test_a_render_process_dying_mid_batch_loses_nothing(ready, monkeypatch, caplog):
    """One subscriber per job, one job ahead: the render process is killed while the server
    holds the third message; the rest are made in the sending process, each sent once."""
    monkeypatch.setattr(makers, "CHUNK", 1)
    monkeypatch.setattr(makers, "AHEAD", 1)
    settings = Settings(render_processes=1, render_processes_from=1, smtp_connections=1)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, ready.day)
    pool = makers.pool_for(corpus, settings, 10)
    (pid,) = {pool.executor.submit(os.getpid).result()}  # started, and its pid known

    server = ready.server
    server.hold_after(2)
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(report=run(settings, ready.day, corpus)))
    with caplog.at_level(logging.WARNING, logger="flows.makers"):
        worker.start()
        assert _until(lambda: server.held == 1)
        os.kill(pid, signal.SIGKILL)
        assert _until(lambda: not alive(pid))
        server.release()
        worker.join(timeout=30)
    report = done["report"]
    assert report.sent == 7 and report.skipped == 2 and not report.failed and not report.deferred
    recipients = server.recipients()
    assert len(recipients) == len(set(recipients)) == 7
    assert "render process stopped" in caplog.text
    assert report.seconds["render"] > 0  # the rest were made here
    with Store(settings.db_path) as store:
        assert store.finished_subscribers(ready.day) >= set(recipients)
    assert makers._POOL is None  # the broken pool was let go


def _until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


UNGUARDED = """
import os
from datetime import date
from flows.daily import daily_digest

print("script ran in", os.getpid(), flush=True)
print("sent", daily_digest(digest_date=date.fromisoformat("{day}"))["sent"], flush=True)
"""


def test_a_script_without_a_main_guard_runs_once(workspace, prefect_harness, tmp_path):
    """Spawned processes normally run the parent's script again: not the render processes."""
    add_readers(workspace.subscribers_dir)
    script = tmp_path / "morning.py"
    script.write_text(UNGUARDED.format(day=workspace.day.isoformat()), encoding="utf-8")
    env = {**os.environ, **workspace.environ, "PREFECT_API_URL": prefect_harness,
           "PAPERBOY_RENDER_PROCESSES": "1", "PAPERBOY_RENDER_PROCESSES_FROM": "1"}
    done = subprocess.run([sys.executable, str(script)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("script ran in") == 1 and "sent 7" in done.stdout
    recipients = workspace.server.recipients()
    assert len(recipients) == len(set(recipients)) == 7


@pytest.mark.usefixtures("prefect_harness")
def test_a_rerun_does_not_start_render_processes(workspace, monkeypatch, caplog):
    add_readers(workspace.subscribers_dir)
    monkeypatch.setenv("PAPERBOY_RENDER_PROCESSES", "1")
    monkeypatch.setenv("PAPERBOY_RENDER_PROCESSES_FROM", "5")  # 10 subscribers, 7 get mail
    with caplog.at_level(logging.INFO, logger="flows.makers"):
        assert daily_digest(digest_date=workspace.day)["sent"] == 7
        assert caplog.text.count("started 1 render process") == 1
        again = daily_digest(digest_date=workspace.day)
    assert again["sent"] == 0 and again["already"] == 7
    assert caplog.text.count("started 1 render process") == 1  # 3 left to consider: made here


def test_a_render_process_gets_plain_values_and_imports_no_pydantic(ready, tmp_path):
    """The corpus, settings and subscribers a render process unpickles need no pydantic
    (flows/shipped.py: ≈ 15 MB of imports it would hold for nothing), and hold every value
    the models do."""
    import pickle

    from flows.shipped import PlainSettings, PlainSubscriber, plain_settings, plain_subscriber
    from flows.subscribers import Subscriber

    settings = Settings()
    subscribers, _ = load_all(settings.subscribers_dir)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, ready.day)
    shipped = corpus.shipped()
    assert isinstance(shipped.settings, PlainSettings) and corpus.settings is settings
    assert shipped.papers == corpus.papers and shipped.token == corpus.token
    plain = plain_settings(settings)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        assert getattr(plain, name) == (None if name == "secret_key" else value), name
    assert plain.from_domain == settings.from_domain == "example.org"
    assert set(Subscriber.model_fields) - {"suppressed"} == {f for f in PlainSubscriber.__slots__}
    for subscriber in subscribers:
        copy = plain_subscriber(subscriber)
        assert all(getattr(copy, name) == getattr(subscriber, name) for name in PlainSubscriber.__slots__)
        assert copy.display_name == subscriber.display_name
        assert [copy.wants(p) for p in corpus.papers] == [subscriber.wants(p) for p in corpus.papers]

    shipment = tmp_path / "shipment.pickle"
    shipment.write_bytes(pickle.dumps((shipped, plain, [plain_subscriber(s) for s in subscribers])))
    script = ("import pickle, sys; import flows.makers; "
              f"corpus, settings, subscribers = pickle.loads(open({str(shipment)!r}, 'rb').read()); "
              "corpus.warm(); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('pydantic', 'pydantic_settings', 'pydantic_core', 'email_validator', 'ruamel', 'aiosmtplib')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_job_gives_freed_memory_back_or_does_nothing():
    from flows import makers

    makers.give_back()  # glibc: malloc_trim; elsewhere nothing
    assert makers._MALLOC_TRIM is None or callable(makers._MALLOC_TRIM)
