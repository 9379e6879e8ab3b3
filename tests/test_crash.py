"""A run killed in the middle of sending, then rerun, delivers every digest exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flows.daily import daily_digest
from flows.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parent.parent


def add_subscribers(directory: Path, count: int) -> list[str]:
    emails = []
    for n in range(count):
        email = f"reader{n:02d}@example.org"
        (directory / f"reader{n:02d}.yaml").write_text(
            f"email: {email}\nkeywords: [reinforcement learning, language models]\n")
        emails.append(email)
    return emails


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_killed_mid_send_then_rerun_delivers_each_digest_exactly_once(workspace, prefect_harness):
    emails = add_subscribers(workspace.subscribers_dir, 16) + [
        "ada@example.org", "alan@example.org", "grace@example.org"]
    server = workspace.server
    server.hold_after(6)  # accept six, then leave every connection hanging in DATA

    env = {**os.environ, **workspace.environ, "PREFECT_API_URL": prefect_harness,
           "PAPERBOY_SMTP_CONNECTIONS": "2"}
    child = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--date", workspace.day.isoformat()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # both connections are now blocked mid-message: the run is killed "while sending"
        wait_until(lambda: server.held >= 2 or child.poll() is not None, 120, "the sender to block")
        assert child.poll() is None, child.stdout.read().decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    # The killed client's held messages are dropped once the server sees its connections go;
    # released before that, a held DATA would still be recorded (a race on a busy machine).
    wait_until(lambda: server.held == 0, 30, "the server to drop the killed run's connections")
    server.release()
    accepted_before = len(server.received)
    assert accepted_before == 6

    with Store(workspace.db_path) as store:
        assert len([r for r in store.digest_rows(workspace.day) if r["status"] == "sent"]) == 6

    result = daily_digest(digest_date=workspace.day)
    counts = Counter(server.recipients())
    assert sorted(counts) == sorted(emails)  # none missing
    assert set(counts.values()) == {1}  # no duplicates
    assert result["sent"] == len(emails) - 6 and result["already"] == 6
