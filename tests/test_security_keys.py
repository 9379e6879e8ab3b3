"""Issue 12, V1 and V2: the link-signing key is never weak, and never half-written.

V1: an empty or short key (PAPERBOY_SECRET_KEY= or an empty ``secret_key`` file) let
anyone forge links. V2: two processes starting at once raced to create the key file.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from flows.links import SecretKeyError, make_token, secret_key
from flows.settings import MIN_SECRET_KEY, Settings
from flows.web import create_app
from flows.web.security import csrf_token

ROOT = Path(__file__).resolve().parent.parent
ADA = "email: ada@example.org\nname: Ada\nkeywords: [reinforcement learning]\n"


def forge_keyword_change(settings: Settings, forged_with: str) -> int:
    """The attack: build the app as configured, then post a preferences change through a
    link signed with ``forged_with``; the HTTP status it got."""
    app = create_app(settings)
    token = make_token(forged_with, "ada@example.org", "prefs")
    with TestClient(app) as client:
        response = client.post(f"/preferences/{token}", data={
            "csrf": csrf_token(forged_with, token), "keywords": "attacker chosen",
            "max_papers": "10", "frequency": "daily", "weekday": "monday"})
    return response.status_code


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "ada.yaml").write_text(ADA, encoding="utf-8")
    return directory


@pytest.mark.parametrize("weak", ["", "short-key", "a" * 64, " " * 40])
def test_a_weak_key_from_the_environment_is_refused(weak, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBOY_SECRET_KEY", weak)
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(tmp_path / "db.sqlite"))
    with pytest.raises(ValidationError) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"] == ("secret_key",)
    if weak.strip():
        assert weak not in str(caught.value)  # not even a weak key is echoed


@pytest.mark.parametrize("content", ["", "\n", "tooshort"])
def test_a_weak_key_file_is_refused_and_forged_links_never_work(content, tmp_path, folder):
    settings = Settings(db_path=tmp_path / "db.sqlite", subscribers_dir=folder)
    keyfile = tmp_path / "secret_key"
    keyfile.write_text(content)
    with pytest.raises(SecretKeyError, match="secret_key") as caught:
        status = forge_keyword_change(settings, forged_with=content.strip())
        pytest.fail(f"the app ran with a weak key; a forged link got HTTP {status}")
    assert str(keyfile) in str(caught.value) and "PAPERBOY_SECRET_KEY" in str(caught.value)
    assert "attacker" not in (folder / "ada.yaml").read_text()


def test_a_good_key_still_rejects_forged_links(tmp_path, folder):
    settings = Settings(db_path=tmp_path / "db.sqlite", subscribers_dir=folder,
                        secret_key="k" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz")
    assert forge_keyword_change(settings, forged_with="") == 403
    assert "attacker" not in (folder / "ada.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("variable, expected", [
    ("PAPERBOY_SECRET_KEY=", "PAPERBOY_SECRET_KEY"),
    ("file:", "secret_key"),
])
def test_the_cli_refuses_to_start_with_a_weak_key(variable, expected, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_")}
    env["PAPERBOY_DB_PATH"] = str(tmp_path / "db.sqlite")
    if variable == "file:":
        (tmp_path / "secret_key").write_text("")
    else:
        env["PAPERBOY_SECRET_KEY"] = ""
    paperboy = Path(sys.executable).with_name("paperboy")
    done = subprocess.run([str(paperboy), "web", "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "at least 32" in done.stderr


# -- V2: two real processes create the key at once ----------------------------------------


def _race(folders: list[str], barrier, results) -> None:  # runs in a child process
    out = []
    for folder in folders:
        barrier.wait()
        try:
            out.append(secret_key(Settings(db_path=Path(folder) / "db.sqlite")))
        except Exception as exc:  # noqa: BLE001 - the test reports what went wrong
            out.append(f"CRASH {type(exc).__name__}: {exc}")
    results.put(out)


def test_two_processes_creating_the_key_at_once_agree(tmp_path):
    trials = [str(tmp_path / f"trial{n}") for n in range(150)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(trials, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    first, second = results.get(timeout=120), results.get(timeout=120)
    for worker in workers:
        worker.join(timeout=30)
    crashes = [key for key in first + second if key.startswith("CRASH")]
    assert not crashes, crashes[:3]
    differ = [n for n, (a, b) in enumerate(zip(first, second)) if a != b]
    assert not differ, f"{len(differ)} of {len(trials)} trials gave the processes different keys"
    assert all(len(key) >= MIN_SECRET_KEY for key in first)
    for n, folder in enumerate(trials):
        keyfile = Path(folder) / "secret_key"
        assert keyfile.read_text() == first[n]
        assert keyfile.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in Path(folder).iterdir()] == ["secret_key"]  # no temp file left
