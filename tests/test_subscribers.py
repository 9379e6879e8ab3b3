"""Subscriber files: validation names the file and the field; one bad file spoils nothing."""

from pathlib import Path

import pytest

from flows.subscribers import SubscriberError, load_all, load_file

REPO_SUBSCRIBERS = Path(__file__).resolve().parent.parent / "subscribers"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_examples_are_valid():
    subscribers, errors = load_all(REPO_SUBSCRIBERS)
    assert errors == []
    assert len(subscribers) >= 2
    assert all(s.email.endswith("@example.org") for s in subscribers)


def test_minimal_file_gets_defaults(tmp_path):
    path = write(tmp_path, "a.yaml", "email: A@Example.org\nkeywords: [diffusion]\n")
    sub = load_file(path)
    assert sub.email == "A@example.org"  # the domain is normalised, the local part kept
    assert sub.max_papers == 20 and sub.active and sub.frequency == "daily"


@pytest.mark.parametrize("text, field, fragment", [
    ("email: not-an-email\nkeywords: [x]\n", "email", "not a valid email"),
    ("email: a@example.org\nkeywords: [x]\nmax_papers: 0\n", "max_papers", "greater than or equal"),
    ("email: a@example.org\nkeywords: [x]\nkeywrods: [y]\n", "keywrods", "unknown field"),
    ("keywords: [x]\n", "email", "is required"),
    ("email: a@example.org\nname: \"Eve\\r\\nBcc: x@evil.example\"\nkeywords: [x]\n", "name", "one line"),
    ("email: a@example.org\nkeywords: []\n", "", "at least one keyword"),
    ("email: a@example.org\nkeywords: [x]\nfrequency: hourly\n", "frequency", "daily"),
])
def test_errors_name_file_and_field(tmp_path, text, field, fragment):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(SubscriberError) as info:
        load_file(path)
    message = str(info.value)
    assert str(path) in message
    if field:
        assert f"field '{field}'" in message
    assert fragment in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "email: a@example.org\nkeywords: [x, y\nname: z\n")
    with pytest.raises(SubscriberError, match=r"broken.yaml: is not valid YAML at line \d+"):
        load_file(path)


def test_broken_file_does_not_stop_the_others(tmp_path):
    write(tmp_path, "a-good.yaml", "email: good@example.org\nkeywords: [rl]\n")
    write(tmp_path, "bad.yaml", "email: [oops\n")
    write(tmp_path, "z-dup.yaml", "email: good@example.org\nkeywords: [gan]\n")
    write(tmp_path, "notes.txt", "not a subscriber")
    subscribers, errors = load_all(tmp_path)
    assert [s.email for s in subscribers] == ["good@example.org"]
    assert {e.path.name for e in errors} == {"bad.yaml", "z-dup.yaml"}
    assert any("already subscribed" in str(e) for e in errors)
