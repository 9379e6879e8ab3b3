"""Runs tell the truth (issue 13 findings 3 and 4): the Prefect state and the exit code say
what happened, and every configuration mistake is one clear line with exit 2.

Before: a run whose fetches all failed, or whose digests were deferred, was Completed with
exit 0; nine broken subscriber files exited 0; `--only unknown@example.org` served nobody
with exit 0; a `send_empty` subscriber got "nothing new" during an outage and so never the
real digest; `PAPERBOY_SOURCES=hf`, `--source bogus` and a stale PREFECT_API_URL printed
tracebacks; offline, a run took 84 s to fail and said only "ConnectError".
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.daily import daily_digest
from flows.store import Store
from flows.tasks import summary_of
from tests.support.corpus import api_item, seed_papers
from tests.support.http import Reply

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent
API = "/api/daily_papers"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def hf(http_replay, workspace, monkeypatch):
    for name, value in {"SOURCES": "huggingface", "HF_BASE_URL": http_replay.base_url, "HF_MIN_INTERVAL": "0",
                        "HTTP_RETRIES": "0", "HTTP_TIMEOUT": "5", "LOOKBACK_DAYS": "2"}.items():
        monkeypatch.setenv(f"PAPERBOY_{name}", value)
    return http_replay


def test_every_fetch_failed_is_a_failed_run_and_exit_1(hf, workspace):
    hf.route(API, Reply(status=500))
    state = daily_digest(digest_date=workspace.day, return_state=True)
    assert state.is_failed() and "all 2 listing dates failed" in state.message
    assert summary_of(state)["sent"] == 0
    result = cli("run", "--date", workspace.day.isoformat())
    assert result.exit_code == 1 and "HTTP 500" in result.output


def test_deferred_digests_are_a_failed_run_and_exit_1(workspace, monkeypatch):
    monkeypatch.setenv("PAPERBOY_SMTP_RETRIES", "0")
    workspace.server.fail_next(451, times=3)
    state = daily_digest(digest_date=workspace.day, return_state=True)
    assert state.is_failed() and "3 digests deferred" in state.message
    assert len(summary_of(state)["deferred"]) == 3


def test_broken_subscriber_files_exit_3_after_sending_the_rest(workspace):
    for n in range(9):
        (workspace.subscribers_dir / f"broken{n}.yaml").write_text(f"email: broken{n}\nkeywords: [x]\n")
    result = cli("run", "--date", workspace.day.isoformat())
    assert result.exit_code == 3, result.output
    assert "sent 3" in result.output and "9 broken subscriber files" in result.output
    state = daily_digest(digest_date=workspace.day, return_state=True)
    assert state.is_completed() and "9 broken subscriber files" in state.message


def test_only_an_unknown_address_exits_2_naming_it(workspace):
    result = cli("run", "--only", "unknown@example.org", "--date", workspace.day.isoformat())
    assert result.exit_code == 2 and "unknown@example.org" in result.output
    assert "no subscriber with that address" in result.output
    (workspace.subscribers_dir / "zed.yaml").write_text("email: zed@example.org\nkeywords: [x]\nmax_papers: 0\n")
    broken = cli("run", "--only", "zed@example.org", "--date", workspace.day.isoformat())
    assert broken.exit_code == 2 and "zed.yaml" in broken.output
    assert workspace.server.received == []


def test_no_empty_digest_during_a_source_outage_and_the_real_one_after(hf, workspace):
    (workspace.subscribers_dir / "eve.yaml").write_text(
        "email: eve@example.org\nkeywords: [curriculum learning]\nsend_empty: true\n")
    hf.route(API, Reply(status=503))
    daily_digest(digest_date=workspace.day, return_state=True)
    assert workspace.server.recipients() == []  # no "nothing new" while the source is down
    papers = seed_papers()
    hf.route(API, [api_item(p, workspace.day) for p in papers], query={"date": workspace.day.isoformat(), "p": 0, "limit": 50})
    hf.route(API, [])
    after = daily_digest(digest_date=workspace.day)
    assert "eve@example.org" in workspace.server.recipients()
    assert after["dates_failed"] == {}
    with Store(workspace.db_path) as store:
        eve = [r for r in store.digest_rows(workspace.day) if r["subscriber"] == "eve@example.org"]
        assert eve[0]["status"] == "sent" and eve[0]["papers"] > 0


@pytest.mark.parametrize("args, env, expected", [
    (["run"], {"PAPERBOY_SOURCES": "hf"}, "PAPERBOY_SOURCES: 'hf' is not a source"),
    (["run", "--source", "bogus"], {}, "--source 'bogus' is not a source"),
    (["backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--source", "bogus"], {}, "--source 'bogus'"),
    (["run"], {"PREFECT_API_URL": "http://127.0.0.1:{port}/api"}, "cannot reach the Prefect server"),
])
def test_configuration_mistakes_are_one_line_and_exit_2(workspace, args, env, expected):
    env = {k: v.format(port=closed_port()) for k, v in env.items()}
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, **workspace.environ, **env}, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


@pytest.mark.parametrize("base_url, cause", [
    ("http://paperboy-test.invalid", "cannot resolve the host name"),  # RFC 6761: never resolves
    ("http://127.0.0.1:{port}", "connection refused"),
])
def test_network_errors_name_their_root_cause_and_dns_fails_fast(hf, workspace, monkeypatch, base_url, cause):
    monkeypatch.setenv("PAPERBOY_HF_BASE_URL", base_url.format(port=closed_port()))
    monkeypatch.setenv("PAPERBOY_HTTP_RETRIES", "4")
    monkeypatch.setenv("PAPERBOY_LOOKBACK_DAYS", "7")
    started = time.monotonic()
    state = daily_digest(digest_date=workspace.day, dry_run=True, return_state=True)
    took = time.monotonic() - started
    failed = summary_of(state)["dates_failed"]
    assert len(failed) == 7 and all(cause in reason for reason in failed.values()), failed
    if "resolve" in cause:
        # one attempt, and the other six dates are not tried: seconds, not minutes
        print(f"\nunresolvable source: {took:.1f} s")
        assert sum("not tried" in reason for reason in failed.values()) == 6
        assert took < 30
