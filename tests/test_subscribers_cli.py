"""`paperboy subscribers …` on a real directory of YAML files, through Typer's CliRunner."""

import os
import pty
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from flows.models import Paper
from flows.store import Store
from flows.subscribers import load_all, load_file
from flows.subscribers import KeywordSyntaxError, split_keywords
from flows.subscribers_cli import app

ROOT = Path(__file__).resolve().parent.parent
GRACE = """\
# Interested in reasoning.
email: grace@example.org
name: Grace Hopper
keywords:
  - reasoning  # the core
  - "RLHF"
max_papers: 8
"""


@pytest.fixture
def folder(tmp_path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "grace.yaml").write_text(GRACE)
    (directory / "alan.yaml").write_text(
        "email: alan@example.org\nkeywords: [graph neural networks]\nfrequency: weekly\nweekday: friday\n"
    )
    return directory


def cli(folder: Path, *args: str):
    return CliRunner().invoke(app, ["--dir", str(folder), *args])


def assert_friendly_failure(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text, expected", [
    ("a, b", ["a", "b"]),
    ('diffusion, "world, models", RL', ["diffusion", '"world, models"', "RL"]),
    ('  spaced  ,, ,"x"^2 ', ["spaced", '"x"^2']),
    ("", []),
    ('title:"a, b", -survey', ['title:"a, b"', "-survey"]),
])
def test_split_keywords(text, expected):
    assert split_keywords(text) == expected


def test_split_keywords_rejects_an_unbalanced_quote():
    with pytest.raises(KeywordSyntaxError, match="unbalanced"):
        split_keywords('a, "b, c')


def test_list_shows_a_table(folder):
    result = cli(folder, "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["email", "name", "frequency", "keywords", "active", "file"]
    assert lines[1].split() == ["alan@example.org", "weekly", "(friday)", "1", "yes", "alan.yaml"]
    assert lines[2].split() == ["grace@example.org", "Grace", "Hopper", "daily", "2", "yes", "grace.yaml"]


def test_malformed_file_fails_check_but_list_shows_the_good_ones(folder):
    (folder / "broken.yaml").write_text("email: bob@example.org\nkeywords: [gan\n")
    checked = cli(folder, "check")
    assert checked.exit_code == 1
    assert f"{folder / 'broken.yaml'}: is not valid YAML at line" in checked.stderr
    listed = cli(folder, "list")
    assert listed.exit_code == 1
    assert "grace@example.org" in listed.stdout and "alan@example.org" in listed.stdout
    assert "broken.yaml" in listed.stderr


def test_check_names_file_and_field(folder):
    (folder / "bob.yaml").write_text("email: bob@example.org\nkeywords: [gan]\nmax_papers: 500\n")
    result = cli(folder, "check")
    assert result.exit_code == 1
    assert f"{folder / 'bob.yaml'} (field 'max_papers'):" in result.stderr
    assert "e.g. max_papers: 20" in result.stderr
    (folder / "bob.yaml").unlink()
    result = cli(folder, "check")
    assert result.exit_code == 0
    assert result.stdout.strip() == "2 subscribers OK"


def test_directory_from_the_environment(folder, monkeypatch):
    monkeypatch.setenv("PAPERBOY_SUBSCRIBERS_DIR", str(folder))
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0
    assert "2 subscribers OK" in result.stdout
    monkeypatch.setenv("PAPERBOY_SUBSCRIBERS_DIR", str(folder / "missing"))
    for command in (["check"], ["list"], ["remove", "grace@example.org", "--yes"]):
        assert_friendly_failure(CliRunner().invoke(app, command), "missing")


def test_show_prints_path_and_yaml(folder):
    result = cli(folder, "show", "GRACE@example.org")
    assert result.exit_code == 0
    assert result.stdout == f"# {folder / 'grace.yaml'}\n{GRACE}"
    assert_friendly_failure(cli(folder, "show", "nobody@example.org"), "no subscriber nobody@example.org")


def test_show_a_broken_file_shows_it_and_its_error(folder):
    (folder / "grace.yaml").write_text(GRACE + "max_papers: 0\n")
    result = cli(folder, "show", "grace@example.org")
    assert result.exit_code == 1
    assert "name: Grace Hopper" in result.stdout
    assert "max_papers" in result.stderr


def test_add_creates_a_file(folder):
    result = cli(folder, "add", "bob@example.org", "--keywords", 'gan, "world, models"',
                 "--name", "Bob", "--exclude", "survey", "--max", "5", "--weekly", "Tue")
    assert result.exit_code == 0, result.output
    path = folder / "bob_at_example.org.yaml"
    assert str(path) in result.stdout
    bob = load_file(path)
    assert bob.keywords == ["gan", '"world, models"']
    assert (bob.name, bob.exclude, bob.max_papers, bob.frequency, bob.weekday) == (
        "Bob", ["survey"], 5, "weekly", "tuesday")


def test_add_refusals_change_nothing(folder):
    before = sorted(p.name for p in folder.iterdir())
    assert_friendly_failure(cli(folder, "add", "Grace@example.org", "-k", "x"), "already subscribed")
    assert_friendly_failure(cli(folder, "add", "bob@example.org", "-k", "x", "--max", "0"),
                            "(field 'max_papers')")
    assert_friendly_failure(cli(folder, "add", "not-an-address", "-k", "x"), "not a valid email")
    assert_friendly_failure(cli(folder, "add", "bob@example.org", "-k", 'a, "b'), "unbalanced double quote")
    assert_friendly_failure(cli(folder, "add", "bob@example.org", "-k", "x", "--weekly", "someday"),
                            "not a weekday")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == before


def test_set_edits_fields_and_keeps_comments(folder):
    result = cli(folder, "set", "grace@example.org", "--add-keyword", "planning, world models",
                 "--remove-keyword", "rlhf", "--max", "12", "--weekday", "monday", "--trending")
    assert result.exit_code == 0, result.output
    assert "updated grace@example.org" in result.stdout
    text = (folder / "grace.yaml").read_text()
    assert text.startswith("# Interested in reasoning.\nemail: grace@example.org\n")
    assert "  - reasoning  # the core\n" in text
    grace = load_file(folder / "grace.yaml")
    assert grace.keywords == ["reasoning", "planning", "world models"]
    assert (grace.max_papers, grace.frequency, grace.weekday, grace.include_trending) == (
        12, "weekly", "monday", True)


def test_set_replace_lists_and_pause(folder):
    assert cli(folder, "set", "alan@example.org", "-k", "gnn, message passing", "--exclude", "survey").exit_code == 0
    assert cli(folder, "set", "alan@example.org", "--inactive", "--frequency", "daily").exit_code == 0
    alan = load_file(folder / "alan.yaml")
    assert (alan.keywords, alan.exclude, alan.active, alan.frequency) == (
        ["gnn", "message passing"], ["survey"], False, "daily")
    assert cli(folder, "set", "alan@example.org", "--exclude", "").exit_code == 0
    assert load_file(folder / "alan.yaml").exclude == []


def test_set_failures_leave_the_file_alone(folder):
    before = (folder / "grace.yaml").read_bytes()
    assert_friendly_failure(cli(folder, "set", "grace@example.org", "--max", "0"),
                            f"{folder / 'grace.yaml'} (field 'max_papers')")
    assert_friendly_failure(cli(folder, "set", "grace@example.org", "--frequency", "hourly"), "field 'frequency'")
    assert_friendly_failure(cli(folder, "set", "grace@example.org", "--remove-keyword", "gan"), "'gan'")
    assert_friendly_failure(cli(folder, "set", "grace@example.org"), "nothing to change")
    assert_friendly_failure(cli(folder, "set", "nobody@example.org", "--max", "3"), "no subscriber")
    assert (folder / "grace.yaml").read_bytes() == before


def test_remove_needs_yes_when_not_interactive(folder):
    assert_friendly_failure(cli(folder, "remove", "grace@example.org"), "--yes")
    assert (folder / "grace.yaml").exists()
    result = cli(folder, "remove", "grace@example.org", "--yes")
    assert result.exit_code == 0
    assert ".removed" in result.stdout
    assert [s.email for s in load_all(folder)[0]] == ["alan@example.org"]
    assert_friendly_failure(cli(folder, "remove", "grace@example.org", "--yes"), "no subscriber")


def test_remove_asks_at_a_terminal(folder):
    """A real process on a pseudo-terminal: answering "n" keeps the file, "y" removes it."""
    code = "from flows.subscribers_cli import app; app()"
    for answer, kept in (("n", True), ("y", False)):
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-c", code, "--dir", str(folder), "remove", "grace@example.org"],
            stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        )
        os.close(follower)
        os.write(leader, f"{answer}\n".encode())
        out, err = process.communicate(timeout=30)
        os.close(leader)
        assert (folder / "grace.yaml").exists() is kept, (out, err)
        assert process.returncode == (2 if kept else 0)


def test_preview_writes_html_and_explains(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(tmp_path / "paperboy.db"))
    monkeypatch.setenv("PAPERBOY_SECRET_KEY", "test-key-0123456789-abcdefghijklmnop")
    out = tmp_path / "preview.html"
    assert_friendly_failure(cli(folder, "preview", "grace@example.org", "--out", str(out)), "no papers")
    today = datetime.now(ZoneInfo("UTC")).date()
    with Store(tmp_path / "paperboy.db") as store:
        store.upsert_papers([Paper(
            id="2501.00001", title="Reasoning with reward models", listed=today, upvotes=5,
            abstract="We study reasoning in language models trained with RLHF.",
            url="https://huggingface.co/papers/2501.00001", source="huggingface",
        )])
    result = cli(folder, "preview", "grace@example.org", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "1 papers for grace@example.org" in result.stdout
    assert "Reasoning with reward models" in result.stdout
    assert "Reasoning with reward models" in out.read_text()
    assert_friendly_failure(cli(folder, "preview", "nobody@example.org", "--out", str(out)), "nobody@example.org")


def test_related_is_set_on_add_and_set_and_checked(folder):
    before = (folder / "grace.yaml").read_bytes()
    assert_friendly_failure(cli(folder, "set", "grace@example.org", "--related", "sideways"), "--related")
    assert (folder / "grace.yaml").read_bytes() == before
    assert load_file(folder / "grace.yaml").related == "near"  # the default
    assert cli(folder, "set", "grace@example.org", "--related", "FAR").exit_code == 0
    assert "related: far" in (folder / "grace.yaml").read_text()
    assert load_file(folder / "grace.yaml").related == "far"
    added = cli(folder, "add", "bob@example.org", "--keywords", "diffusion", "--related", "off")
    assert added.exit_code == 0, added.output
    bob = next(s for s in load_all(folder)[0] if s.email == "bob@example.org")
    assert bob.related == "off"


def test_a_bad_related_level_in_a_file_names_the_field_and_the_choices(tmp_path):
    path = tmp_path / "z.yaml"
    path.write_text("email: z@example.org\nkeywords: [x]\nrelated: sideways\n", encoding="utf-8")
    with pytest.raises(Exception) as raised:
        load_file(path)
    assert "field 'related'" in str(raised.value) and "off" in str(raised.value) and "far" in str(raised.value)
