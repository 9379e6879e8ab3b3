"""The preferences page and PAPERBOY_MAX_PAPERS: a file without ``max_papers`` gets the
operator's default in its digests, so the page shows that number, previews with it, and
saves it into the file only when the subscriber changes it.

Before, the page showed the model's 20 whatever the setting said, previewed "a digest lists
the best 20", and saving any change wrote ``max_papers: 20`` into the file: from then on the
subscriber got 20 papers, not the operator's number.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from flows.links import make_token
from flows.store import Store
from flows.subscribers import find
from flows.web import create_app
from tests.support.browser import mail_to, run_digests
from tests.support.smtp import settings_for
from tests.test_web import papers

KEY = "max-papers-default-key-0123456789-abcdefgh"
ADA = "# Ada's file: the operator's number of papers applies\nemail: ada@example.org\nkeywords:\n  - language model\n  - reinforcement learning\n"
TOKEN = functools.cache(lambda: make_token(KEY, "ada@example.org", "prefs"))  # the CSRF token is bound to it
DEFAULT = 3  # PAPERBOY_MAX_PAPERS; the seed papers match these keywords more often than that


@pytest.fixture
def world(smtp_server, tmp_path):
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "ada.yaml").write_text(ADA, encoding="utf-8")
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url="http://testserver", max_papers=DEFAULT)
    with Store(settings.db_path) as store:
        store.upsert_papers(papers(datetime.now(UTC).date()))
    with TestClient(create_app(settings)) as client:
        yield settings, folder, client


def page(client: TestClient) -> tuple[str, str]:
    """The preferences page's HTML and its form's CSRF token."""
    html = client.get(f"/preferences/{TOKEN()}").text
    return html, re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def shown_max(html: str) -> str:
    return re.search(r'id="max_papers"[^>]*value="([^"]*)"', html).group(1)


def save(client: TestClient, csrf: str, **values: str):
    form = {"csrf": csrf, "keywords": "language model\nreinforcement learning", "frequency": "daily",
            "weekday": "monday", "related": "near", **values}
    return client.post(f"/preferences/{TOKEN()}", data=form)


def test_the_page_shows_and_previews_the_operators_default(world):
    _, _, client = world
    html, _ = page(client)
    assert shown_max(html) == str(DEFAULT)
    assert f"a digest lists the best {DEFAULT}." in html  # the preview's summary


def test_saving_other_fields_leaves_the_default_out_of_the_file_and_the_digest_uses_it(world, smtp_server):
    settings, folder, client = world
    html, csrf = page(client)
    response = save(client, csrf, keywords="language model\nreward model", max_papers=shown_max(html))
    assert response.status_code == 200 and "Saved." in response.text
    text = (folder / "ada.yaml").read_text()
    assert "reward model" in text and "max_papers" not in text and text.startswith("# Ada's file:")
    assert shown_max(response.text) == str(DEFAULT)

    report = run_digests(settings, datetime.now(UTC).date(), [])  # the daily run, over SMTP
    assert report.sent == 1
    (digest,) = mail_to(smtp_server, "ada@example.org")
    assert digest.get_body(("html",)).get_content().count('class="card-cell"') == DEFAULT


def test_a_number_the_subscriber_picks_is_written_even_the_models_own_default(world):
    _, folder, client = world
    _, csrf = page(client)
    assert save(client, csrf, max_papers="20").status_code == 200  # 20: what the model says, not the operator
    assert "max_papers: 20" in (folder / "ada.yaml").read_text()
    assert find(folder, "ada@example.org")[1].max_papers == 20
    html, csrf = page(client)
    assert shown_max(html) == "20"
    save(client, csrf, max_papers=str(DEFAULT))  # now set in the file, the default is a choice too
    assert f"max_papers: {DEFAULT}" in (folder / "ada.yaml").read_text()


def test_the_live_preview_uses_the_default_too(world):
    _, _, client = world
    html, csrf = page(client)
    form = {"csrf": csrf, "keywords": "language model", "max_papers": shown_max(html), "frequency": "daily",
            "weekday": "monday", "related": "near"}
    response = client.post(f"/preferences/{TOKEN()}/preview", data=form)
    answer = response.json()
    assert answer["ok"] and answer["summary"].endswith(f"a digest lists the best {DEFAULT}.")


def test_the_operators_default_is_within_what_a_file_may_say():
    """PAPERBOY_MAX_PAPERS takes 1 to 100, as max_papers in a file does: a default of 150 could
    be shown on the page but never typed back once the subscriber had changed it."""
    from pydantic import ValidationError

    from flows.settings import Settings

    with pytest.raises(ValidationError, match="max_papers"):
        Settings(max_papers=150)
    assert Settings(max_papers=100).max_papers == 100
