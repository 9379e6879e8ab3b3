"""`paperboy run --only EMAIL` started a second temporary Prefect server after the run.

Checking --only imported flows.tasks, and with it Prefect, before `run_flow` had set
PREFECT_API_URL; after the run (its own temporary server stopped), reading the flow's result
made Prefect start a temporary server of its own: "Starting temporary server on
http://127.0.0.1:8934" after the summary, 4-5 s more, and once 85 s more with
"--- Error logging to API --- All connection attempts failed" on a loaded machine. Prefect is
now imported only to refuse an unknown --only (when no run starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def clean_env(workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERBOY_", "PREFECT_"))}
    env.update(workspace.environ)
    env.update({"PREFECT_HOME": str(workspace.path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1"})
    return env


def test_checking_only_does_not_import_prefect(workspace):
    code = ("import sys; from flows.cli import check_only, load_settings; "
            "check_only(load_settings(), 'ada@example.org'); print('prefect' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(workspace), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_a_run_with_only_starts_one_temporary_server(workspace):
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--only", "ada@example.org",
                           "--date", workspace.day.isoformat()],
                          env=clean_env(workspace), cwd=ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "sent 1" in output
    assert "Starting temporary server" not in output and "Error logging to API" not in output, output[-3000:]
    assert workspace.server.recipients() == ["ada@example.org"]
