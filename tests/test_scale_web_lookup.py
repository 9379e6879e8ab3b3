"""A page of the web app reads the subscriber files it needs, not the whole folder: among
10,000 files each preferences page, save and unsubscribe read every one (0.4 s a page).
Counted with an audit hook on every file the process opens: real files, real app."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.links import make_token
from flows.subscribers import FolderIndex, locate, set_active
from flows.web import create_app
from flows.web.security import csrf_token
from tests.support.smtp import settings_for

KEY = "test-secret-key-0123456789-abcdefghij"
FILES = 300

_opened: list[str] = []
_counting = threading.local()


def _hook(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_hook)  # cannot be removed: it only appends to a list


def opened_in(folder: Path, call) -> int:
    """How many times ``call`` opened a file of ``folder``."""
    start = len(_opened)
    call()
    return sum(1 for name in _opened[start:] if name.startswith(str(folder)))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    for n in range(FILES):
        (directory / f"reader{n:04d}.yaml").write_text(
            f"email: reader{n:04d}@example.org\nkeywords: [diffusion, world models]\nactive: true\n", encoding="utf-8")
    return directory


@pytest.fixture
def client(smtp_server, tmp_path, folder):
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url="http://testserver")
    with TestClient(create_app(settings)) as client:
        yield client


def test_pages_read_a_few_files_not_the_folder(client, folder):
    who = "reader0250@example.org"
    prefs = make_token(KEY, who, "prefs")
    assert client.get(f"/preferences/{prefs}").status_code == 200  # the first page reads the folder once
    assert opened_in(folder, lambda: client.get(f"/preferences/{prefs}")) <= 3
    other = make_token(KEY, "reader0007@example.org", "prefs")
    assert opened_in(folder, lambda: client.get(f"/preferences/{other}")) <= 3
    form = {"csrf": csrf_token(KEY, prefs), "keywords": "diffusion\nrobotics", "max_papers": "10",
            "frequency": "daily", "weekday": "monday"}
    saved = lambda: client.post(f"/preferences/{prefs}", data=form, follow_redirects=False)  # noqa: E731
    assert opened_in(folder, lambda: _expect(saved(), 303)) <= 8
    assert "robotics" in (folder / "reader0250.yaml").read_text()
    # the saved file changed (new inode, new size): read again, the other 299 not
    assert opened_in(folder, lambda: client.get(f"/preferences/{prefs}")) <= 4
    unsub = make_token(KEY, who, "unsubscribe")
    post = lambda: client.post(f"/unsubscribe/{unsub}", data={"List-Unsubscribe": "One-Click"})  # noqa: E731
    assert opened_in(folder, lambda: _expect(post(), 200)) <= 8
    assert "active: false" in (folder / "reader0250.yaml").read_text()


def _expect(response, status: int):
    assert response.status_code == status, response.text[:300]
    return response


def test_the_index_finds_what_locate_finds(folder):
    index = FolderIndex(folder)
    assert index.locate("Reader0042@Example.org") == folder / "reader0042.yaml" == locate(folder, "reader0042@example.org")
    # renamed by hand, and a second file for the same address sorting first: the first wins, as in a run
    (folder / "reader0042.yaml").rename(folder / "zz-renamed.yaml")
    assert index.locate("reader0042@example.org") == folder / "zz-renamed.yaml"
    (folder / "aa-copy.yaml").write_text("email: reader0042@example.org\nkeywords: [x]\n", encoding="utf-8")
    assert index.locate("reader0042@example.org") == folder / "aa-copy.yaml" == locate(folder, "reader0042@example.org")
    # a file that only mentions the address (a comment) is not its file
    (folder / "a-note.yaml").write_text("# was reader0043@example.org\nemail: someone@example.org\nkeywords: [x]\n")
    assert index.locate("reader0043@example.org") == folder / "reader0043.yaml"
    # an address written with a YAML escape: not in the text as written, found as locate finds it
    (folder / "escaped.yaml").write_text('email: "new\\x40example.org"\nkeywords: [x]\n', encoding="utf-8")
    assert index.locate("new@example.org") == folder / "escaped.yaml"
    # edited in place to another address (same inode), then removed
    (folder / "reader0044.yaml").write_text("email: moved@example.org\nkeywords: [y]\n", encoding="utf-8")
    assert index.locate("reader0044@example.org") is None
    assert index.locate("moved@example.org") == folder / "reader0044.yaml"
    set_active(folder, "moved@example.org", False, at=index.locate("moved@example.org"))
    assert "active: false" in (folder / "reader0044.yaml").read_text()
    (folder / "reader0044.yaml").unlink()
    assert index.locate("moved@example.org") is None
