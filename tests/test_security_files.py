"""Issue 12, V9: every file Paperboy creates is private (0600 files, 0700 directories).

The attack run found the database and the subscriber files world-readable (0644). The
product's own code paths create the files here, under the common default umask 022, and
the CLI is run as a real process to see the umask it sets.
"""

from __future__ import annotations

import os
import smtplib
import stat
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from flows.links import secret_key
from flows.mailsink import MaildirSink
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import add, update


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_its_journal_are_private(tmp_path, umask_022):
    db = tmp_path / "var" / "paperboy.db"
    with Store(db) as store:
        store.record_fetch("huggingface", __import__("datetime").date(2025, 6, 13), papers=1)
        wal = db.with_name(db.name + "-wal")
        assert wal.exists()
        assert mode(wal) == 0o600
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700


def test_an_existing_world_readable_database_is_tightened(tmp_path, umask_022):
    db = tmp_path / "paperboy.db"
    Store(db).close()
    os.chmod(db, 0o644)
    Store(db).close()
    assert mode(db) == 0o600


def test_generated_key_and_subscriber_files_are_private(tmp_path, umask_022):
    settings = Settings(db_path=tmp_path / "state" / "paperboy.db")
    secret_key(settings)
    assert mode(tmp_path / "state" / "secret_key") == 0o600
    folder = tmp_path / "subscribers"
    path = add(folder, "ada@example.org", keywords=["reinforcement learning"])
    assert mode(path) == 0o600 and mode(folder) == 0o700
    update(folder, "ada@example.org", keywords=["offline RL"])  # an edit keeps it private
    assert mode(path) == 0o600


def test_the_demo_maildir_is_private(tmp_path, umask_022):
    with MaildirSink(tmp_path / "demo" / "mail") as sink:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "p@localhost", "ada@example.org", "digest"
        message.set_content("plain")
        message.add_alternative("<p>html</p>", subtype="html")
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            client.send_message(message)
    maildir = tmp_path / "demo" / "mail"
    files = [p for p in maildir.rglob("*") if p.is_file()]
    folders = [maildir, *(p for p in maildir.rglob("*") if p.is_dir())]
    assert len(files) == 2  # the message and its HTML part
    assert {mode(p) for p in files} == {0o600}
    assert {mode(p) for p in folders} == {0o700}


@pytest.mark.slow
def test_the_cli_creates_private_files_whatever_the_umask(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_")}
    env.update(PAPERBOY_SUBSCRIBERS_DIR=str(tmp_path / "subs"), PAPERBOY_DB_PATH=str(tmp_path / "db" / "p.db"))
    paperboy = Path(sys.executable).with_name("paperboy")
    done = subprocess.run(
        ["sh", "-c", f"umask 000 && '{paperboy}' subscribers add ada@example.org --keywords 'offline RL'"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    created = [p for p in (tmp_path / "subs").rglob("*")]
    assert created and all(mode(p) & 0o077 == 0 for p in created), {str(p): oct(mode(p)) for p in created}


def test_many_threads_opening_a_new_database_at_once_all_succeed(tmp_path):
    # Found by the sign-up burst (V5): each opener applied the migrations itself.
    import threading

    for trial in range(20):
        path = tmp_path / f"trial{trial}" / "paperboy.db"
        errors: list[str] = []

        def open_it() -> None:
            try:
                Store(path).close()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(repr(exc))

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
