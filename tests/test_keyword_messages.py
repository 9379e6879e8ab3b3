"""A refused keyword is named once in the message, also when it is written with escapes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.subscribers import Subscriber


@pytest.mark.parametrize("keyword", ["\u200b", "\u200b\u200b", "title:\u200b", "--"])
def test_a_refused_keyword_is_named_once(keyword):
    with pytest.raises(ValidationError) as caught:
        Subscriber(email="ada@example.org", keywords=[keyword])
    message = str(caught.value)
    assert message.count(f"keyword {keyword!r}") == 1, message  # was "keyword '\u200b': keyword '\u200b': …"
