"""Issue 15.1: SIGTERM or SIGINT at a random moment of sending, sent to the run's whole
process group as a service manager or a terminal does, then a rerun: every digest arrives
exactly once. A subset of `make soak` (flows/bench/soak.py), against a server that takes
5-20 ms to answer each final dot."""

from __future__ import annotations

import os
import random
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
READERS = 60


def write_readers(directory: Path, trial: int) -> list[str]:
    directory.mkdir(parents=True)
    emails = []
    for n in range(READERS):
        email = f"t{trial}.reader{n:02d}@example.org"
        (directory / f"reader{n:02d}.yaml").write_text(
            f"email: {email}\nname: Reader {n}, Trial {trial}\nkeywords: [reinforcement learning]\n"
            "send_empty: true\n")
        emails.append(email)
    return emails


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_a_random_moment_loses_and_duplicates_nothing(workspace, prefect_harness, monkeypatch, signum):
    rng = random.Random()
    server = workspace.server
    server.delay_replies(0.005, 0.020)
    trial = rng.randrange(10**6)
    readers = workspace.path / f"readers-{trial}"
    emails = write_readers(readers, trial)
    monkeypatch.setenv("PAPERBOY_SUBSCRIBERS_DIR", str(readers))
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "PAPERBOY_SMTP_CONNECTIONS": "2"}
    kill_after = rng.randint(1, READERS - 10)  # messages received before the signal

    child = subprocess.Popen(
        [sys.executable, "-m", "flows.bench.stoppable", "run", "--date", workspace.day.isoformat()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # its own process group, signalled whole
    try:
        deadline = time.monotonic() + 120
        while len(server.received) < kill_after and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert child.poll() is None, child.stdout.read()[-3000:]
        os.killpg(child.pid, signum)
        output, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    name = signal.Signals(signum).name
    assert f"stopped early ({name})" in output, output[-3000:]
    assert child.returncode == {"SIGINT": 130, "SIGTERM": 143}[name]  # the summary was printed, the rest is for the rerun
    first = len(server.received)
    assert first < READERS  # it did stop early
    with Store(workspace.db_path) as store:
        rows = {r["subscriber"]: r["status"] for r in store.digest_rows(workspace.day)}
    assert set(rows.values()) <= {"sent"} and len(rows) == first  # every accepted one recorded, nothing in flight

    result = daily_digest(digest_date=workspace.day)
    counts = Counter(server.recipients())
    assert sorted(counts) == sorted(emails)  # none missing
    assert set(counts.values()) == {1}  # no duplicates
    assert result["sent"] == READERS - first and result["already"] == first and not result["uncertain"]
