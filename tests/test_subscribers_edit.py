"""Editing subscriber files: comments and key order survive, writes are all-or-nothing,
and concurrent edits from several processes never lose one another."""

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from flows import subscribers as subs
from flows.subscribers import (
    SubscriberError,
    SubscriberExists,
    SubscriberLocked,
    SubscriberNotFound,
    add,
    find,
    load_all,
    load_file,
    modify,
    remove,
    set_active,
    subscriber_path,
    update,
    write_atomic,
)

HAND_WRITTEN = """\
# Ada's preferences; edited by hand and by `paperboy subscribers set`.
email: ada@example.org
name: Ada Lovelace   # shown in the greeting
keywords:
  - "model-based reinforcement learning"
  - world models  # the main interest
  - offline RL
# the rest are defaults spelled out
max_papers: 10
sources: [huggingface, arxiv]
active: true
"""


@pytest.fixture
def folder(tmp_path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "lovelace.yaml").write_text(HAND_WRITTEN, encoding="utf-8")
    return directory


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- finding and naming -------------------------------------------------------------------


def test_find_searches_the_email_field_not_the_file_name(folder):
    path, sub = find(folder, "ADA@example.org")
    assert path.name == "lovelace.yaml"
    assert sub.name == "Ada Lovelace"
    assert subscriber_path(folder, "ada@EXAMPLE.ORG") == path
    with pytest.raises(SubscriberNotFound, match="nobody@example.org"):
        find(folder, "nobody@example.org")


@pytest.mark.parametrize("email, expected", [
    ("bob@example.org", "bob_at_example.org.yaml"),
    ("Bob.Smith+papers@Example.ORG", "bob.smith-papers_at_example.org.yaml"),
    ("jörg@example.org", "jorg_at_example.org.yaml"),
    ("../../etc/passwd@example.org", "etc-passwd_at_example.org.yaml"),
    ("._x@example.org", "x_at_example.org.yaml"),
])
def test_new_file_names_are_safe(folder, email, expected):
    path = subscriber_path(folder, email)
    assert path.name == expected
    assert path.parent == folder


def test_file_name_collision_gets_a_suffix(folder):
    (folder / "bob_at_example.org.yaml").write_text("email: someone-else@example.org\nkeywords: [x]\n")
    path = add(folder, "bob@example.org", keywords=["gan"])
    assert path.name == "bob_at_example.org-2.yaml"
    assert load_file(path).email == "bob@example.org"
    assert load_file(folder / "bob_at_example.org.yaml").email == "someone-else@example.org"


# -- add ----------------------------------------------------------------------------------------


def test_add_writes_a_valid_file_in_field_order(folder):
    path = add(folder, "Grace@Example.org", keywords=[" reasoning ", "RLHF"],
               name="Grace Hopper", frequency="weekly", weekday="friday")
    assert path.read_text() == (
        "email: Grace@example.org\nname: Grace Hopper\nkeywords:\n  - reasoning\n  - RLHF\n"
        "frequency: weekly\nweekday: friday\n"
    )
    assert find(folder, "grace@example.org")[0] == path
    assert len(load_all(folder)[0]) == 2


def test_add_refuses_an_existing_address(folder):
    with pytest.raises(SubscriberExists, match="lovelace.yaml"):
        add(folder, "Ada@Example.org", keywords=["gan"])
    assert subs.subscriber_files(folder) == [folder / "lovelace.yaml"]


def test_add_invalid_writes_nothing_and_names_the_field(folder):
    with pytest.raises(SubscriberError, match=r"bob_at_example.org.yaml \(field 'max_papers'\).*e.g. max_papers: 20"):
        add(folder, "bob@example.org", keywords=["gan"], max_papers=500)
    assert not (folder / "bob_at_example.org.yaml").exists()
    assert leftovers(folder) == []


# -- update keeps the file as the person wrote it ------------------------------------------


def test_update_changes_only_the_touched_line(folder):
    path = folder / "lovelace.yaml"
    update(folder, "ada@example.org", max_papers=5)
    before, after = HAND_WRITTEN.splitlines(), path.read_text().splitlines()
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert changed == [("max_papers: 10", "max_papers: 5")]
    assert len(after) == len(before)


def test_appending_and_removing_keywords_keeps_comments_and_quotes(folder):
    path = folder / "lovelace.yaml"
    modify(folder, "ada@example.org", lambda s: {"keywords": [*s.keywords, "planning"]})
    update(folder, "ada@example.org", keywords=["model-based reinforcement learning", "world models", "planning"])
    text = path.read_text()
    assert '  - "model-based reinforcement learning"\n' in text  # the quotes as written
    assert "  - world models  # the main interest\n" in text
    assert "offline RL" not in text
    assert text.index("world models") < text.index("planning") < text.index("# the rest are defaults")
    untouched = [line for line in HAND_WRITTEN.splitlines() if "offline RL" not in line]
    assert [line for line in text.splitlines() if "planning" not in line] == untouched
    assert load_file(path).keywords == ["model-based reinforcement learning", "world models", "planning"]


def test_comment_lines_below_a_list_stay_above_the_next_key(folder):
    path = folder / "lovelace.yaml"
    modify(folder, "ada@example.org", lambda s: {"keywords": [*s.keywords, "planning"]})
    assert "  - offline RL\n  - planning\n# the rest are defaults spelled out\nmax_papers: 10\n" in path.read_text()
    update(folder, "ada@example.org", keywords=["model-based reinforcement learning", "offline RL"])
    assert path.read_text() == HAND_WRITTEN.replace("  - world models  # the main interest\n", "")


def test_reordering_keywords_and_flow_lists_keep_their_style(folder):
    path = folder / "lovelace.yaml"
    update(folder, "ada@example.org", keywords=["offline RL", "world models"], sources=["arxiv"])
    text = path.read_text()
    assert "sources: [arxiv]\n" in text
    assert load_file(path).keywords == ["offline RL", "world models"]
    assert text.startswith("# Ada's preferences")


def test_the_files_own_list_indentation_is_kept(folder):
    path = folder / "flat.yaml"
    path.write_text("email: bob@example.org\nkeywords:\n- gan\n- vae\nexclude: [survey]\n")
    modify(folder, "bob@example.org", lambda s: {"keywords": [*s.keywords, "flow matching"],
                                                 "exclude": [*s.exclude, "benchmark"]})
    assert path.read_text() == (
        "email: bob@example.org\nkeywords:\n- gan\n- vae\n- flow matching\nexclude: [survey, benchmark]\n"
    )


def test_new_keys_go_at_the_end_and_none_removes_a_key(folder):
    path = folder / "lovelace.yaml"
    update(folder, "ada@example.org", include_trending=True, sources=None)
    lines = path.read_text().splitlines()
    assert lines[-1] == "include_trending: true"
    assert not any(line.startswith("sources") for line in lines)
    assert load_file(path).sources is None


def test_invalid_update_writes_nothing(folder):
    path = folder / "lovelace.yaml"
    before = path.read_bytes()
    for bad in ({"max_papers": 0}, {"frequency": "hourly"}, {"keywords": ["x" * 500]},
                {"keywords": []}, {"colour": "blue"}, {"sources": ["myspace"]}):
        with pytest.raises(SubscriberError, match="lovelace.yaml"):
            update(folder, "ada@example.org", **bad)
    assert path.read_bytes() == before
    assert leftovers(folder) == []


def test_update_can_repair_a_broken_file(folder):
    path = folder / "broken.yaml"
    path.write_text("# keep me\nemail: bob@example.org\nkeywords: [gan]\nmax_papers: 0\n")
    with pytest.raises(SubscriberError, match="max_papers"):
        find(folder, "bob@example.org")
    assert update(folder, "bob@example.org", max_papers=12).max_papers == 12
    assert path.read_text() == "# keep me\nemail: bob@example.org\nkeywords: [gan]\nmax_papers: 12\n"


def test_changing_the_email_to_a_taken_one_is_refused(folder):
    add(folder, "bob@example.org", keywords=["gan"])
    with pytest.raises(SubscriberExists):
        update(folder, "bob@example.org", email="ADA@example.org")
    assert update(folder, "bob@example.org", email="robert@example.org").email == "robert@example.org"
    assert find(folder, "robert@example.org")[0].name == "bob_at_example.org.yaml"


def test_a_file_mentioning_the_address_but_not_yaml_blocks_add(folder):
    (folder / "bob.yaml").write_text("email: bob@example.org\nkeywords: [gan\n")
    with pytest.raises(SubscriberError, match="bob.yaml: is not valid YAML"):
        add(folder, "bob@example.org", keywords=["gan"])
    (folder / "bobcat.yaml").write_text("email: bobcat@example.org\nkeywords: [gan\n")
    assert add(folder, "bob@example.net", keywords=["gan"]).exists()  # only the whole address blocks


def test_file_mode_is_kept(folder):
    path = folder / "lovelace.yaml"
    path.chmod(0o600)
    update(folder, "ada@example.org", max_papers=3)
    assert path.stat().st_mode & 0o777 == 0o600


# -- atomicity --------------------------------------------------------------------------------


def test_crash_in_the_middle_of_a_dump_leaves_the_file_intact(folder, monkeypatch):
    def dump_half_then_crash(yaml, data, handle):
        handle.write("email: ada@example.org\nkeyw")
        raise OSError("disk full")

    monkeypatch.setattr(subs.edit, "_dump", dump_half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        update(folder, "ada@example.org", max_papers=3)
    assert (folder / "lovelace.yaml").read_text() == HAND_WRITTEN
    assert leftovers(folder) == []


def test_write_atomic_replaces_all_or_nothing(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("old\n")

    def interrupted(handle):
        handle.write("new but only half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, interrupted)
    assert path.read_text() == "old\n"
    write_atomic(path, lambda handle: handle.write("new\n"))
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]


# -- concurrency ------------------------------------------------------------------------------


def append_keywords(directory: str, prefix: str, count: int) -> None:
    for n in range(count):
        word = f"{prefix}{n}"
        modify(Path(directory), "ada@example.org", lambda s, word=word: {"keywords": [*s.keywords, word]})


def test_concurrent_edits_from_two_processes_are_all_kept(folder):
    # spawn, not fork: the test process has threads (servers, Prefect), and forking those is unsafe
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=append_keywords, args=(str(folder), prefix, 20))
               for prefix in ("alpha", "beta")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    keywords = load_file(folder / "lovelace.yaml").keywords
    expected = {f"{p}{n}" for p in ("alpha", "beta") for n in range(20)}
    assert expected <= set(keywords)
    assert len(keywords) == 3 + 40
    assert "# the main interest" in (folder / "lovelace.yaml").read_text()
    assert leftovers(folder) == []


def test_concurrent_edits_from_threads_are_all_kept(folder):
    threads = [threading.Thread(target=append_keywords, args=(str(folder), f"t{i}x", 5)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(load_file(folder / "lovelace.yaml").keywords) == 3 + 20


def test_lock_wait_is_bounded(folder):
    with subs.locked(folder):
        with pytest.raises(SubscriberLocked, match="try again"):
            with subs.locked(folder, timeout=0.05):
                pass
    with subs.locked(folder, timeout=0.05):  # free again
        pass


# -- remove and set_active ------------------------------------------------------------------


def test_remove_moves_the_file_aside(folder):
    target = remove(folder, "ada@example.org")
    assert target.parent == folder / ".removed"
    assert target.read_text() == HAND_WRITTEN
    assert load_all(folder) == ([], [])
    with pytest.raises(SubscriberNotFound):
        remove(folder, "ada@example.org")
    add(folder, "ada@example.org", keywords=["gan"])  # can subscribe again
    assert len(load_all(folder)[0]) == 1


def test_set_active_pauses_and_resumes(folder):
    assert set_active(folder, "ada@example.org", False).active is False
    assert "active: false" in (folder / "lovelace.yaml").read_text()
    assert set_active(folder, "ada@example.org", True).active is True
    assert os.listdir(folder).count("lovelace.yaml") == 1
