"""After `paperboy demo`, the commands it prints work on the demo's own database and key
(issue 13 finding 5: `paperboy preview` said to fetch from the internet, and the digest's
"Edit your keywords" link got 403 from `paperboy web`, signed with another key)."""

from __future__ import annotations

import mailbox
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.settings import Settings
from flows.web import create_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_prints_commands_that_work_on_its_database_and_key(tmp_path):
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERBOY_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    done = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--home", str(home)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f". {home / 'demo.env'}" in done.stdout
    exported = dict(re.findall(r"^export (\w+)=(.*)$", (home / "demo.env").read_text(), re.M))
    demo_env = {k: shlex.split(v)[0] for k, v in exported.items()}
    assert demo_env["PAPERBOY_DB_PATH"] == str(home / "paperboy.db")

    preview_line = next(line for line in done.stdout.splitlines() if " preview " in line)
    email = preview_line.split(" preview ")[1].split()[0]
    preview = subprocess.run([sys.executable, "-m", "flows.cli", "preview", email, "-o", str(tmp_path / "p.html")],
                             cwd=ROOT, env={**env, **demo_env}, capture_output=True, text=True, timeout=120)
    assert preview.returncode == 0, preview.stderr
    assert "papers for" in preview.stdout and (tmp_path / "p.html").exists()

    # the "Edit your keywords" link of a digest the demo delivered opens in `paperboy web`
    message = next(iter(mailbox.Maildir(home / "mail", create=False)))
    body = message.get_payload(0).get_payload(decode=True).decode() if message.is_multipart() else message.get_payload()
    link = re.search(r"http://localhost:8000(/preferences/\S+)", body)
    assert link, body[:2000]
    saved = {k: os.environ.get(k) for k in demo_env}
    os.environ.update(demo_env)
    try:
        with TestClient(create_app(Settings())) as client:
            page = client.get(link.group(1).rstrip(">").rstrip(")"))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    assert page.status_code == 200, page.text[:500]
