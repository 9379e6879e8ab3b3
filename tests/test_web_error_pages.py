"""What a subscriber reads when something is wrong: a broken or expired link, too much text.

Each page says what happened and what to do next, in a page a phone shows at its size.
The app runs on real files, a real SQLite database and a real SMTP server (see test_web.py).
"""

from __future__ import annotations

import re

import lxml.html
import pytest
from itsdangerous import URLSafeTimedSerializer

from flows.links import make_confirm_token
from tests.test_web import KEY, _LongAgo, client, folder, settings, token  # noqa: F401 (fixtures)


def test_a_link_cut_short_says_how_to_open_it_whole(client):  # noqa: F811
    whole = token()
    response = client.get(f"/preferences/{whole[:-6]}")  # a wrapped link, its last line missed
    assert response.status_code == 403
    text = lxml.html.document_fromstring(response.text).text_content()
    assert "this link is not valid" in text
    assert "split across two lines, copy all of it" in text and "most recent digest" in text


def test_an_expired_confirmation_link_says_to_sign_up_again_not_to_look_in_a_digest(client):  # noqa: F811
    # The person has no digest yet: "use the link in your latest digest" sends them nowhere.
    old = URLSafeTimedSerializer(KEY, salt="paperboy-confirm", signer=_LongAgo).dumps(
        {"email": "grace@example.org", "keywords": ["world models"], "nonce": "n0nce"})
    response = client.get(f"/confirm/{old}")
    assert response.status_code == 403
    assert "sign up again to get a new one" in response.text and "digest" not in response.text.split("<main")[1].split("</main>")[0]
    fresh = make_confirm_token(KEY, "grace@example.org", ["world models"])
    assert client.get(f"/confirm/{fresh}").status_code == 200


def test_an_expired_digest_link_still_points_at_the_latest_digest(client):  # noqa: F811
    old = URLSafeTimedSerializer(KEY, salt="paperboy-prefs", signer=_LongAgo).dumps("ada@example.org")
    response = client.get(f"/preferences/{old}")
    assert "use the link in your latest digest" in response.text
    assert "split across two lines" not in response.text  # that hint is for a broken link only


def test_too_much_text_gets_a_readable_page_that_says_nothing_was_saved(client, folder):  # noqa: F811
    before = (folder / "ada.yaml").read_bytes()
    response = client.post(f"/preferences/{token()}", data={"keywords": "diffusion\n" * 8000})
    assert response.status_code == 413
    doc = lxml.html.document_fromstring(response.text)
    assert doc.get("lang") == "en"
    assert doc.xpath("//meta[@name='viewport']/@content") == ["width=device-width, initial-scale=1"]
    assert doc.xpath("//h1")[0].text_content() == "Too much text"
    assert "Nothing was saved" in doc.text_content() and "at most 50 keywords" in doc.text_content()
    assert (folder / "ada.yaml").read_bytes() == before


@pytest.mark.parametrize("field, value, message", [
    ("related", "sideways", "choose off, near or far"),
    ("frequency", "hourly", "choose daily or weekly"),
])
def test_a_refused_choice_is_named_in_its_group_and_the_summary_link_lands_there(client, field, value, message):  # noqa: F811
    # Only a hand-made form sends these; the summary's link and the message must still work.
    page = client.get(f"/preferences/{token()}").text
    form = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1), "keywords": "offline RL",
            "max_papers": "10", "frequency": "daily", "weekday": "monday", "related": "near", field: value}
    response = client.post(f"/preferences/{token()}", data=form)
    assert response.status_code == 422
    doc = lxml.html.document_fromstring(response.text)
    target = doc.xpath("//div[@id='form-error']//a/@href")[0]
    assert target == f"#{field}" and doc.get_element_by_id(field) is not None
    error = doc.get_element_by_id(f"{field}-error")
    assert message in error.text_content().lower()
    described = doc.xpath(f"//*[contains(concat(' ', @aria-describedby, ' '), ' {field}-error ')]")
    assert described, "no field points at the message"


def test_the_related_hint_describes_the_group_once(client):  # noqa: F811
    doc = lxml.html.document_fromstring(client.get(f"/preferences/{token()}").text)
    assert doc.xpath("//fieldset[@id='related']/@aria-describedby") == ["related-hint"]
    assert doc.xpath("//input[@name='related'][@aria-describedby]") == []
