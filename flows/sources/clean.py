"""The source boundary: every value a listing gives is bounded and checked here.

Whatever an upstream sends, the rest of Paperboy sees text without control characters
or lone surrogates, strings and lists of bounded size, and counts SQLite can store. A
value that cannot be made so makes its item a :class:`MalformedItem`: skipped and
counted, never fatal for the listing or the run. Work per input is linear: responses
are capped before parsing, JSON nesting is bounded, and no regex here backtracks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flows.sources.base import MalformedItem, SourceFormatError

MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # one API page or feed; real ones are well under 5 MB
MAX_TITLE = 1_000  # characters
MAX_ABSTRACT = 20_000  # arXiv caps abstracts at 1,920 characters
MAX_NAME = 500  # an author, a keyword, a category
MAX_AUTHORS = 3_000  # collaborations sign with thousands; more are dropped, not fatal
MAX_KEYWORDS = 100
MAX_URL = 2_000
MAX_ID = 200
MAX_COUNT = 10**9  # upvotes, comments: anything larger is not a real count (SQLite stops at 2**63)
MAX_DEPTH = 32  # JSON nesting of one item; a Daily Papers item needs 4
MAX_INT_DIGITS = 30  # longer JSON integers are not parsed at all (int() is quadratic)

# C0 controls but tab, line feed and carriage return (those are whitespace), DEL and C1.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")
# Bidirectional embeddings, overrides and isolates: they make text display other than it reads
# ("Trojan Source"); right-to-left scripts need none of them. Dropped, not spaced.
BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")


class OutOfRange:
    """Stands for a JSON integer too long to be a count: never parsed, always refused."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def preview(value: object, limit: int = 80) -> str:
    """A short, safe description of a value for a log line (no repr of a deep structure)."""
    if isinstance(value, str):
        return repr(SURROGATE.sub("\ufffd", value[:limit]))
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)[:limit]
    return f"<{type(value).__name__}>"


def text(value: object, field: str, limit: int) -> str:
    """``value`` as one line of text (controls become spaces, whitespace runs one space);
    "" for a non-string; MalformedItem when it is over ``limit`` or holds a lone surrogate."""
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise MalformedItem(f"{field} is {len(value)} characters long (at most {limit})")
    if SURROGATE.search(value):
        raise MalformedItem(f"{field} holds a lone surrogate (not Unicode text)")
    return " ".join(CONTROL.sub(" ", BIDI_CONTROL.sub("", value)).split())


def texts(value: object, field: str, limit: int, most: int) -> tuple[str, ...]:
    """The non-empty strings of a list, each as :func:`text`; at most ``most``, de-duplicated."""
    if not isinstance(value, list):
        return ()
    found = (text(v, field, limit) for v in value[:most])
    return tuple(dict.fromkeys(v for v in found if v))


def count(value: object, field: str) -> int:
    """A non-negative count; 0 for an absent or odd value; MalformedItem when out of range."""
    if isinstance(value, OutOfRange):
        raise MalformedItem(f"{field} is an integer of {value.digits} digits")
    if isinstance(value, bool) or not isinstance(value, int):
        return 0  # bool is an int subclass; True upvotes would be nonsense
    if not -MAX_COUNT <= value <= MAX_COUNT:
        raise MalformedItem(f"{field} {value} is out of range")
    return max(value, 0)


def _integer(digits: str) -> int | OutOfRange:
    return int(digits) if len(digits) <= MAX_INT_DIGITS else OutOfRange(len(digits))


def loads(content: bytes | str) -> Any:
    """JSON as :func:`json.loads`, except that long integers become :class:`OutOfRange`
    (``int()`` of 100,000 digits takes seconds, and Python refuses over 4,300)."""
    return json.loads(content, parse_int=_integer)


# A JSON string (the unrolled loop cannot backtrack), or one structural character.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


def json_items(content: bytes, where: str) -> tuple[list[Any], int]:
    """The items of a JSON list, and how many could not be read (too deep, not JSON).

    Parsed whole when it can be; when the nesting is too deep for that (one hostile item
    makes ``json.loads`` raise RecursionError), item by item, so only that item is lost.
    """
    try:
        value = loads(content)
    except RecursionError:
        return _items_one_by_one(content, where)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceFormatError(f"{where}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(value, list):
        raise SourceFormatError(f"{where}: not a JSON list of items (got {type(value).__name__})")
    deep = [n for n, item in enumerate(value) if _too_deep(item)]
    for n in reversed(deep):
        del value[n]
    return value, len(deep)


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


def _items_one_by_one(content: bytes, where: str) -> tuple[list[Any], int]:
    start, depth, deepest = None, 0, 0
    items: list[Any] = []
    bad = 0
    for token in _JSON_TOKEN.finditer(content):
        char = token.group()
        if char[0] == ord('"'):
            continue
        if char in (b"[", b"{"):
            depth += 1
            if depth == 1:
                if char != b"[":
                    raise SourceFormatError(f"{where}: expected a JSON list of items")
                start = token.end()
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                bad += _one_item(content[start:token.start()], deepest, items)
                return items, bad
        elif depth == 1:  # a comma between two items
            bad += _one_item(content[start:token.start()], deepest, items)
            start, deepest = token.end(), 1
    raise SourceFormatError(f"{where}: the JSON list never ends")


def _one_item(chunk: bytes, deepest: int, items: list[Any]) -> int:
    if not chunk.strip():
        return 0
    if deepest - 1 > MAX_DEPTH:
        return 1
    try:
        items.append(loads(chunk))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 1
    return 0


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
_XML_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml_safe(content: bytes) -> bytes:
    """A feed with the characters XML 1.0 forbids taken out: raw controls are dropped, and a
    character reference to a control, a surrogate or past U+10FFFF becomes U+FFFD (feedparser
    raises UnicodeEncodeError on ``&#xD800;`` and falls back to a lenient parser on a raw
    control). Only ASCII-compatible encodings are cleaned; others pass unchanged."""
    if content.startswith((b"\xfe\xff", b"\xff\xfe")) or b"\x00<\x00" in content[:200]:
        return content  # UTF-16: a NUL byte is part of every ASCII character there
    return _CHAR_REF.sub(_safe_ref, _XML_CONTROL.sub(b"", content))


def _safe_ref(found: re.Match[bytes]) -> bytes:
    hex_digits, decimal = found.groups()
    digits = (hex_digits or decimal).lstrip(b"0") or b"0"
    if len(digits) > 7:  # past U+10FFFF either way (and int() of a long run is slow)
        return b"&#xFFFD;"
    code = int(hex_digits, 16) if hex_digits else int(decimal)
    allowed = code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF
    return found.group() if allowed and code not in (0xFFFE, 0xFFFF) else b"&#xFFFD;"
