"""What a subscriber reads when something is wrong: a broken or expired link, too much text.

Each page says what happened and what to do next, in a page a phone shows at its size.
The app runs on real files, a real SQLite database and a real SMTP server (see test_web.py).
"""

from __future__ import annotations

import lxml.html
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
