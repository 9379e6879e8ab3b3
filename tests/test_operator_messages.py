"""What an operator reads (issue 13 finding 5): previews that say when nobody would get the
digest, YAML errors that say how to quote, the subscriber fields `sources` and `categories`
applied, and the weekly option spelled either way."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.compose import compose
from flows.corpus import Corpus
from flows.models import Paper
from flows.preview import preview_digest
from flows.settings import SOURCE_NAMES, Settings
from flows.sources import SOURCE_NAMES as BUILDABLE
from flows.store import Store
from flows.subscribers import Subscriber, load_all

D = date(2025, 6, 13)  # a Friday


def paper(pid: str, source: str, categories: tuple[str, ...] = ()) -> Paper:
    return Paper(id=pid, title="Offline reinforcement learning at scale", abstract="offline RL",
                 listed=D, source=source, categories=categories, upvotes=3)


def test_settings_know_every_source_the_sources_package_builds():
    assert set(SOURCE_NAMES) == set(BUILDABLE)


def test_sources_and_categories_filter_what_a_subscriber_can_get(tmp_path):
    settings = Settings(db_path=tmp_path / "db", secret_key="operator-messages-key-0123456789-abcdef")
    corpus = Corpus([paper("hf1", "huggingface"), paper("ax-lg", "arxiv", ("cs.LG",)),
                     paper("ax-cv", "arxiv", ("cs.CV",))], settings, D)

    def got(**fields) -> set[str]:
        subscriber = Subscriber(email="ada@example.org", keywords=["offline reinforcement learning"], **fields)
        return {r.paper.id for r in compose(subscriber, corpus, set()).papers}

    assert got() == {"hf1", "ax-lg", "ax-cv"}
    assert got(sources=["arxiv"]) == {"ax-lg", "ax-cv"}
    assert got(categories=["cs.LG"]) == {"hf1", "ax-lg"}  # a paper without categories passes
    assert got(sources=["arxiv"], categories=["cs.CV"]) == {"ax-cv"}


@pytest.fixture
def listed(workspace):
    with Store(workspace.db_path) as store:
        store.upsert_papers([paper("2506.00001", "huggingface")])
    return workspace


@pytest.mark.parametrize("fields, says", [
    ("active: false\n", "is inactive: they get no digest"),
    ("frequency: weekly\nweekday: monday\n", "is not due on 2025-06-13 (friday)"),
])
def test_preview_says_when_the_subscriber_would_get_nothing(listed, fields, says):
    (listed.subscribers_dir / "ada.yaml").write_text(
        "email: ada@example.org\nkeywords: [offline reinforcement learning]\n" + fields)
    result = preview_digest(Settings(), "ada@example.org", D)
    assert says in result.would_get
    cli = CliRunner().invoke(app, ["preview", "ada@example.org", "--date", D.isoformat(),
                                   "-o", str(listed.path / "p.html")])
    assert cli.exit_code == 0 and says in cli.output


def test_preview_of_a_due_subscriber_has_no_note(listed):
    (listed.subscribers_dir / "ada.yaml").write_text("email: ada@example.org\nkeywords: [offline reinforcement learning]\n")
    assert preview_digest(Settings(), "ada@example.org", D).would_get == ""


def test_yaml_messages_say_how_to_quote(tmp_path):
    (tmp_path / "a.yaml").write_text("email: a@example.org\nkeywords:\n  - 2024\n")
    (tmp_path / "b.yaml").write_text("email: b@example.org\nkeywords:\n  - title: diffusion\n")
    (tmp_path / "c.yaml").write_text("email: c@example.org\nkeywords: [x]\nfrequency: Weekly\nweekday: FRI\n")
    subscribers, errors = load_all(tmp_path)
    assert [(s.frequency, s.weekday) for s in subscribers] == [("weekly", "friday")]
    messages = {e.path.name: e.message for e in errors}
    assert 'YAML read 2024 as a number; quote it to use it as a keyword: - "2024"' == messages["a.yaml"]
    assert '"title:diffusion"' in messages["b.yaml"] and "colon" in messages["b.yaml"]


def test_weekly_and_weekday_are_one_option_for_add_and_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERBOY_SUBSCRIBERS_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["subscribers", "add", "bob@example.org", "-k", "x", "--weekday", "tue"]).exit_code == 0
    assert runner.invoke(app, ["subscribers", "set", "bob@example.org", "--weekly", "Fri"]).exit_code == 0
    (bob,), _ = load_all(tmp_path)
    assert (bob.frequency, bob.weekday) == ("weekly", "friday")
