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


def test_packed_subscribers_read_back_equal(tmp_path):
    import pickle

    subscribers, _ = load_all(REPO_SUBSCRIBERS)
    packed, errors = load_all(REPO_SUBSCRIBERS, packed=True)
    assert errors == [] and len(packed) == len(subscribers)
    assert list(packed) == subscribers and packed[1:] == subscribers[1:] and packed[-1] == subscribers[-1]
    assert [s.model_fields_set for s in packed] == [s.model_fields_set for s in subscribers]
    assert list(pickle.loads(pickle.dumps(packed))) == subscribers


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


# -- every field's error names the file, the field and the fix ------------------------------

BASE = "email: a@example.org\nkeywords: [x]\n"


@pytest.mark.parametrize("extra, field, fix", [
    ("max_papers: 500\n", "max_papers", "e.g. max_papers: 20"),
    ("max_papers: lots\n", "max_papers", "e.g. max_papers: 20"),
    ("frequency: hourly\n", "frequency", "frequency: weekly with weekday: monday"),
    ("frequency: weekly\nweekday: caturday\n", "weekday", "e.g. weekday: monday"),
    ("include_trending: sometimes\n", "include_trending", "true or false"),
    ("popularity: 11\n", "popularity", "e.g. popularity: 1.0"),
    ("send_empty: [1]\n", "send_empty", "true or false"),
    ("active: maybe\n", "active", "e.g. active: true"),
    ("sources: [myspace]\n", "sources", "huggingface, arxiv, snapshot"),
    ("sources: []\n", "sources", "leave the field out"),
    ("categories: [\"cs LG\"]\n", "categories", "like cs.LG"),
    ("exclude: survey\n", "exclude", "e.g. exclude: [survey]"),
    ("name: [Ada]\n", "name", "e.g. name: Ada Lovelace"),
])
def test_each_field_error_says_how_to_fix_it(tmp_path, extra, field, fix):
    path = write(tmp_path, "bob.yaml", BASE + extra)
    with pytest.raises(SubscriberError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path} (field '{field}'): ")
    assert fix in str(info.value)


@pytest.mark.parametrize("keywords, fragment", [
    (["x" * 101], "longer than 100 characters"),
    ([f"k{n}" for n in range(51)], "at most 50 items"),
    (["bad\x07bell"], "control characters"),
])
def test_keywords_are_bounded(tmp_path, keywords, fragment):
    from ruamel.yaml import YAML

    path = tmp_path / "big.yaml"
    with path.open("w") as handle:
        YAML().dump({"email": "a@example.org", "keywords": keywords}, handle)
    with pytest.raises(SubscriberError, match=fragment):
        load_file(path)


@pytest.mark.parametrize("text, field, keyword", [
    ('keywords: [\'"world models\']\n', "keywords", '"world models'),
    ("keywords: [diffusion^20]\n", "keywords", "diffusion^20"),
    ("keywords: [x]\nexclude: [survey^2]\n", "exclude", "survey^2"),
])
def test_keyword_syntax_errors_name_the_keyword(tmp_path, text, field, keyword):
    path = write(tmp_path, "q.yaml", "email: a@example.org\n" + text)
    with pytest.raises(SubscriberError) as info:
        load_file(path)
    message = str(info.value)
    assert f"(field '{field}')" in message
    assert repr(keyword) in message
    assert "fix or remove it" in message


def test_ranking_syntax_is_accepted(tmp_path):
    path = write(tmp_path, "ok.yaml", 'email: a@example.org\nkeywords: [diffusion^2, "title:\\"world model\\"", -survey]\n'
                 "sources: [arxiv, arxiv]\ncategories: [cs.LG, hep-th, astro-ph.GA]\n")
    sub = load_file(path)
    assert sub.keywords == ["diffusion^2", 'title:"world model"', "-survey"]
    assert sub.sources == ["arxiv"]
