"""PAPERBOY_MAX_PAPERS is the top N of every subscriber whose file does not set max_papers.

The README lists it ("default top N per digest"), but nothing read it: every such subscriber
got 20 whatever it said.
"""

from __future__ import annotations

from flows.preview import find_subscriber
from flows.settings import Settings
from flows.tasks import load_subscribers


def test_files_without_max_papers_get_the_configured_default(tmp_path):
    (tmp_path / "ada.yaml").write_text("email: ada@example.org\nkeywords: [x]\n")
    (tmp_path / "bob.yaml").write_text("email: bob@example.org\nkeywords: [x]\nmax_papers: 3\n")
    settings = Settings(subscribers_dir=tmp_path, max_papers=7)
    for only in (None, "ada@example.org"):
        subscribers, _ = load_subscribers.fn(settings, only)
        assert {s.email: s.max_papers for s in subscribers}["ada@example.org"] == 7
    assert {s.email: s.max_papers for s in load_subscribers.fn(settings, None)[0]}["bob@example.org"] == 3
    assert find_subscriber(settings, "ada@example.org").max_papers == 7  # `paperboy preview` too
    assert find_subscriber(Settings(subscribers_dir=tmp_path), "ada@example.org").max_papers == 20
