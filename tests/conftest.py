"""Shared fixtures. Real components only: SQLite files, aiosmtpd and HTTP servers on loopback,
Prefect's test harness."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support.corpus import seed_papers, write_snapshot

pytest_plugins = ["tests.support.smtp", "tests.support.http", "tests.support.imap"]

DAY = date(2025, 6, 13)  # a Friday

SUBSCRIBERS = {
    "ada.yaml": "# Ada follows model-based RL\nemail: ada@example.org\nname: Ada Lovelace\n"
                "keywords:\n  - model-based reinforcement learning\n  - offline RL\nmax_papers: 5\n",
    "grace.yaml": "email: grace@example.org\nname: Grace Hopper\nkeywords: [reward model, reward modeling]\n",
    "alan.yaml": "email: alan@example.org\nname: Alan Turing\nkeywords: [curriculum learning]\n",
}


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API server for the whole session (it takes seconds to start)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


def env_for(settings_values: dict) -> dict[str, str]:
    """PAPERBOY_* environment variables for these settings values."""
    env = {}
    for key, value in settings_values.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(value)
        env[f"PAPERBOY_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@pytest.fixture
def workspace(tmp_path: Path, smtp_server, monkeypatch):
    """A complete Paperboy installation in tmp_path: snapshot listings for two days, three
    subscribers, a SQLite file, the test SMTP server; exported as PAPERBOY_* variables."""
    papers = seed_papers()
    snapshot = write_snapshot(tmp_path / "snapshot", {DAY - timedelta(days=1): papers[:6], DAY: papers[6:]})
    subscribers = tmp_path / "subscribers"
    subscribers.mkdir()
    for name, text in SUBSCRIBERS.items():
        (subscribers / name).write_text(text, encoding="utf-8")
    values = {
        "db_path": tmp_path / "paperboy.db", "subscribers_dir": subscribers,
        "sources": ["snapshot"], "snapshot_dir": snapshot, "snapshot_replay": False,
        "smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_tls": "none",
        "smtp_retry_delay": 0.01, "smtp_timeout": 5, "smtp_connections": 2,
        "mail_from": "Paperboy <paperboy@example.org>", "secret_key": "test-secret-key-0123456789-abcdefghij",
        "public_base_url": "https://paperboy.example.org",
    }
    env = env_for(values)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Workspace:
        path = tmp_path
        server = smtp_server
        subscribers_dir = subscribers
        snapshot_dir = snapshot
        db_path = tmp_path / "paperboy.db"
        environ = env
        day = DAY

    return Workspace


@pytest.fixture(autouse=True)
def no_stop_request_left_over():
    """A test that asks a run to stop (flows/stopping.py) leaves no request for the next."""
    from flows.stopping import clear_stop

    clear_stop()
    yield
    clear_stop()
