"""Subscriber files: one YAML file each in ``subscribers/``; read, validate and find them.

Takes a directory (or one file); gives validated `Subscriber`s, and for each broken file
a `SubscriberFileError` naming the file and field, so a broken file never stops the
others (`load_all`, `scan`). A subscriber is found by the ``email`` field inside the
files, never by file name: files written by hand may have any name (`find`, `locate`).
Reading is fast for plain files (ruamel's C parser, no resolver); anything unusual goes
to the round-trip loader that editing uses too (`read_mapping`).
"""

from __future__ import annotations

import os
import pickle
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.cyaml import CBaseLoader
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.util import load_yaml_guess_indent

from flows.subscribers.model import (FIELD_HINTS, Subscriber, SubscriberError, SubscriberFileError, SubscriberNotFound,
                                     with_default_max)


def yaml_for(indent: tuple[int, int] | None = None) -> YAML:
    """A round-trip YAML reader/writer in the house style (or the given sequence indent)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long keyword onto a second line
    sequence, offset = indent or (4, 2)  # the shipped files' style: "keywords:\n  - x"
    yaml.indent(mapping=2, sequence=sequence, offset=offset)
    return yaml


def subscriber_files(directory: Path) -> list[Path]:
    """The subscriber files, in a stable order (hidden files and templates excluded)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if is_subscriber_file(p.name))


def is_subscriber_file(name: str) -> bool:
    """Whether a file of the folder, by its name, is a subscriber file (not hidden, not a template)."""
    return name.endswith((".yaml", ".yml")) and not name.startswith((".", "_"))


def load_file(path: Path) -> Subscriber:
    """Read and validate one subscriber file; raises SubscriberError naming the field."""
    return validate_fields(path, _read_fields(path))


def _read_fields(path: Path) -> Mapping[str, Any]:
    """The file's fields, for reading only (edits go through `read_mapping`).

    The round-trip loader took 0.7-1 ms a file, 7-10 s for 10,000 subscribers. Most files
    hold nothing but plain words, numbers and true/false: `_fast_fields` reads those with
    ruamel's C parser and no resolver, and types the few plain scalars whose meaning is the
    same in YAML 1.1 and 1.2. Anything else (tags, anchors, escapes, other numbers, "yes"
    or "on", a YAML error) goes to the round-trip loader, which also words every error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""  # the round-trip reader says why
    fields = _fast_fields(text) if text else None
    return fields if fields is not None else read_mapping(path, for_edit=False)[0]


MAX_FILE_CHARS = 64 * 1024  # a file with 50 keywords and 50 exclusions of 100 characters is ~11 KB
MAX_NESTING = 20  # brackets inside brackets; a subscriber file needs 1


def _unreadable(text: str) -> str | None:
    """Why ``text`` is not read at all (too large, nested too deep), else None. Deep nesting
    made both YAML readers recurse until Python gave up, and crashed every command."""
    if len(text) > MAX_FILE_CHARS:
        return f"is {len(text)} characters long; a subscriber file has at most {MAX_FILE_CHARS}"
    depth = deepest = 0
    for char in text:  # brackets inside quoted strings count too: no keyword needs 20 of them
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    if deepest > MAX_NESTING:
        return f"nests lists or mappings {deepest} deep; use one flat list, e.g. keywords: [a, b]"
    if _NESTED_DASHES.search(text):  # "- - - - x": one list inside the next (the C reader crashed)
        return f"nests lists more than {MAX_NESTING} deep; use one flat list, e.g. keywords: [a, b]"
    return None


_NESTED_DASHES = re.compile(rf"^[ \t]*(?:-[ \t]+){{{MAX_NESTING + 1},}}", re.MULTILINE)


class _Unsure(Exception):
    """A value the fast reader leaves to the round-trip loader."""


# Tags, complex keys, anchors, aliases, escapes, tabs, and the characters YAML 1.1 (the C
# reader) takes for line breaks or ignores and YAML 1.2 (the round-trip reader) does not:
# rare here, and where the readers differ. Only the round-trip reader decides those.
_ROUND_TRIP_ONLY = re.compile("[!?&*\\\\\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")
_PLAIN_INT = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_PLAIN_CONSTANTS: dict[str, Any] = {
    "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
    "null": None, "Null": None, "NULL": None, "~": None, "": None,
}
_WORDS_READ_AS_VALUES = frozenset("yes no on off y n true false null".split())  # YAML 1.1 or 1.2


def _fast_fields(text: str) -> dict[str, Any] | None:
    if _ROUND_TRIP_ONLY.search(text) or _unreadable(text):
        return None
    try:
        fields = _node_value(CBaseLoader(text).get_single_node())
    except (YAMLError, _Unsure, RecursionError):
        return None
    return fields if isinstance(fields, dict) else None


def _node_value(node: Node | None) -> Any:
    if isinstance(node, MappingNode):
        fields: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _node_value(key_node)
            if not isinstance(key, str) or key in fields:  # the round-trip loader words duplicates
                raise _Unsure
            fields[key] = _node_value(value_node)
        return fields
    if isinstance(node, SequenceNode):
        return [_node_value(item) for item in node.value]
    if not isinstance(node, ScalarNode):
        raise _Unsure
    if node.style in ("'", '"'):
        return node.value
    if node.style:  # block scalars (the C parser marks plain ones with "")
        raise _Unsure
    value = node.value
    if value in _PLAIN_CONSTANTS:
        return _PLAIN_CONSTANTS[value]
    if _PLAIN_INT.match(value):
        return int(value)
    if value[:1].isalpha() and value.lower() not in _WORDS_READ_AS_VALUES:
        return value  # no resolver of either YAML version reads a word as anything else
    raise _Unsure


def read_mapping(path: Path, for_edit: bool = True) -> tuple[CommentedMap, YAML]:
    """The file's round-trip mapping and a YAML instance that dumps it in the file's style."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _file_error(path, "", f"cannot be read: {exc}") from None
    if problem := _unreadable(text):
        raise _file_error(path, "", problem)
    try:
        yaml = yaml_for(_guess_indent(text) if for_edit else None)  # guessing parses once more
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _file_error(path, "", f"is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise _file_error(path, "", "is nested too deeply to read; use one flat list per field") from None
    except (TypeError, ValueError) as exc:  # e.g. a complex key "? [a, b]" that cannot be a dict key
        raise _file_error(path, "", f"cannot be read as fields ({type(exc).__name__}: {str(exc)[:100]}); "
                                    "use plain names as keys, e.g. keywords: [a, b]") from None
    if not isinstance(data, dict):
        raise _file_error(path, "", "must be a mapping of fields (email: …, keywords: […])")
    if any(not isinstance(key, str) for key in data):
        bad = next(key for key in data if not isinstance(key, str))
        raise _file_error(path, "", f"has a key that is not a plain name ({type(bad).__name__}); "
                                    "fields look like keywords: [a, b]")
    return data, yaml


def _guess_indent(text: str) -> tuple[int, int] | None:
    if not re.search(r"^\s*- ", text, re.MULTILINE):
        return None  # no block sequence to learn from: use the house style
    _, sequence, offset = load_yaml_guess_indent(text)
    return (sequence, offset) if sequence and offset is not None else None


def validate_fields(path: Path, data: Mapping[str, Any]) -> Subscriber:
    """The subscriber these fields make; raises SubscriberError naming the file and field."""
    try:
        plain = _plain(data, [MAX_VALUES])
    except (_TooMany, RecursionError):  # anchors and aliases can nest a file into itself
        raise _file_error(path, "", f"holds more than {MAX_VALUES} values once its YAML aliases "
                                    "are expanded; write the lists out plainly") from None
    try:
        return Subscriber.model_validate(plain)
    except ValidationError as exc:
        raise _validation_error(path, exc) from None


def _validation_error(path: Path, exc: ValidationError) -> SubscriberError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or ""
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown field; allowed fields are {', '.join(Subscriber.model_fields)}"
    elif first["type"] == "missing":
        message = "is required"
    hint = FIELD_HINTS.get(str(first["loc"][0]) if first["loc"] else "")
    if first["type"] == "string_type" and first["loc"] and first["loc"][0] in ("keywords", "exclude"):
        message = keyword_type_message(first.get("input"))
    elif hint and first["type"] not in ("value_error", "extra_forbidden"):  # ours say the fix already
        message = f"{message}; {hint}"
    return _file_error(path, field, message)


def keyword_type_message(value: object) -> str:
    """A keyword YAML read as something other than text: say why, and how to quote it."""
    if isinstance(value, dict):
        key, item = next(iter(value.items())) if value else ("", "")
        return (f"YAML read '{key}: {item}' as a mapping (a colon followed by a space); quote the "
                f"keyword: \"{key}:{item}\" to search one field, or \"{key}: {item}\" as words")
    if isinstance(value, bool):
        return (f"YAML read this keyword as {str(value).lower()} (yes/no/true/false/on/off are "
                "booleans); quote it, e.g. - \"on\"")
    if isinstance(value, (int, float)):
        return f"YAML read {value} as a number; quote it to use it as a keyword: - \"{value}\""
    return f"must be text, not {type(value).__name__}; quote it"


def _file_error(path: Path, field: str, message: str) -> SubscriberError:
    error = SubscriberError(str(SubscriberFileError(path, field, message)))
    error.detail = SubscriberFileError(path, field, message)  # type: ignore[attr-defined]
    return error


MAX_VALUES = 10_000  # in one file, aliases expanded; an honest one has about 100


class _TooMany(Exception):
    """A file whose aliases expand past MAX_VALUES ("billion laughs")."""


def _plain(value: object, budget: list[int] | None = None) -> object:
    """ruamel's commented containers → plain dicts/lists for pydantic (at most ``budget[0]``
    values in all, when given)."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooMany
    if isinstance(value, dict):
        return {str(k): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, budget) for v in value]
    return value


def load_all(directory: Path, *, packed: bool = False,
             max_papers: int | None = None) -> tuple[Sequence[Subscriber], list[SubscriberFileError]]:
    """Every valid subscriber, plus one error per broken file; duplicates are errors too.

    ``packed``: the subscribers as `Packed` (each kept pickled until it is used), for a
    process that holds every subscriber for the whole run but works on a batch at a time.
    ``max_papers``: the top N of a subscriber whose file does not say (PAPERBOY_MAX_PAPERS)."""
    subscribers: list[Subscriber] | Packed = Packed() if packed else []
    errors: list[SubscriberFileError] = []
    for path, subscriber, error in scan(directory):
        if error is not None:
            errors.append(error)
        else:
            subscribers.append(with_default_max(subscriber, max_papers))  # type: ignore[arg-type]
    return subscribers, errors


class Packed(Sequence[Subscriber]):
    """Subscribers kept pickled, each unpickled when it is read (an equal `Subscriber`).

    The daily flow's process holds every subscriber from reading the files to the end of
    the run, but uses one batch at a time: as objects (a pydantic model, its field dict
    and set, lists, strings) 10,000 of the benchmark's took ≈ 20 MB, pickled ≈ 5.5 MB.
    Unpickling one takes ≈ 10 µs."""

    __slots__ = ("_items",)

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._items = [pickle.dumps(s, pickle.HIGHEST_PROTOCOL) for s in subscribers]

    def append(self, subscriber: Subscriber) -> None:
        self._items.append(pickle.dumps(subscriber, pickle.HIGHEST_PROTOCOL))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, at):  # type: ignore[override]
        if isinstance(at, slice):
            return [pickle.loads(item) for item in self._items[at]]
        return pickle.loads(self._items[at])

    def __iter__(self) -> Iterator[Subscriber]:
        return (pickle.loads(item) for item in self._items)

    def __reduce__(self):
        return Packed._of, (self._items,)

    @classmethod
    def _of(cls, items: list[bytes]) -> "Packed":
        packed = cls()
        packed._items = items
        return packed


def scan(directory: Path) -> Iterator[tuple[Path, Subscriber | None, SubscriberFileError | None]]:
    """Each subscriber file with its subscriber or its error (a later duplicate email is an error)."""
    seen: dict[str, Path] = {}
    for path in subscriber_files(directory):
        try:
            subscriber = load_file(path)
        except SubscriberError as exc:
            yield path, None, exc.detail  # type: ignore[attr-defined]
            continue
        key = subscriber.email.lower()
        if key in seen:
            yield path, None, SubscriberFileError(
                path, "email", f"{subscriber.email} is already subscribed in {seen[key]}; "
                "merge the two files into one"
            )
            continue
        seen[key] = path
        yield path, subscriber, None



def _email_key(email: str) -> str:
    """The form two addresses are compared in: normalised, case-insensitive."""
    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        pass
    return email.strip().lower()


def locate(directory: Path, email: str) -> Path | None:
    """The first file (in load order) whose email field is this address.

    Only files whose text mentions the local part are parsed, so a lookup among
    thousands of files reads them but parses a handful. A file that holds the whole
    address but cannot be parsed is reported rather than taken for "not found"
    (otherwise `add` would create a duplicate of it).
    """
    wanted = _email_key(email)
    local = wanted.split("@", 1)[0]
    unreadable: SubscriberError | None = None
    for path in subscriber_files(directory):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if local not in text.lower():
            continue
        try:
            found = read_mapping(path, for_edit=False)[0].get("email")
        except SubscriberError as exc:
            if wanted in text.lower():
                unreadable = unreadable or exc
            continue
        if isinstance(found, str) and _email_key(found) == wanted:
            return path
    if unreadable is not None:
        raise unreadable
    return None


def holds_address(path: Path, email: str) -> bool:
    """Whether this file (still) is the subscriber file of this address."""
    return _holder(path, {_email_key(email)}) is not None


# What might be an address in a file's text: the candidates a file is parsed for.
_ADDRESS_LIKE = re.compile(r"""[^\s"'<>,\[\]{}]+@[^\s"'<>,\[\]{}]+""")


def _addresses_in(text: str) -> frozenset[str]:
    """The address keys a file's text holds as written (where it may name its subscriber)."""
    return frozenset(_email_key(token) for token in _ADDRESS_LIKE.findall(text))


def locate_each(directory: Path, emails: Iterable[str]) -> dict[str, Path]:
    """:func:`locate` for many addresses in one pass over the files: {address: its file}.

    A run that names the files of a thousand subscribers (warnings, suppressions) among ten
    thousand must not read the folder a thousand times (≈ 3 minutes; this reads each file
    once). A file is parsed where its text holds one of the addresses; addresses no text
    holds as written (YAML escapes, or no file at all) are then looked for as locate does,
    in the texts already read: the files that mention their local part."""
    wanted = {_email_key(email): email for email in emails}
    found: dict[str, Path] = {}
    if not wanted:
        return found
    unread: list[tuple[Path, str]] = []  # the files not taken yet, lower-cased, for the second look
    for path in subscriber_files(directory):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        key = _holder(path, {k for k in _addresses_in(text) if k in wanted and wanted[k] not in found})
        if key is not None:
            found[wanted[key]] = path
        else:
            unread.append((path, text.lower()))
    missing = {key: email for key, email in wanted.items() if email not in found}
    if missing:
        local_parts = {key: key.split("@", 1)[0] for key in missing}
        for path, lowered in unread:
            mentioned = {key for key, local in local_parts.items() if local in lowered and missing[key] not in found}
            key = _holder(path, mentioned)
            if key is not None:
                found[missing[key]] = path
    return found


def _holder(path: Path, keys: set[str]) -> str | None:
    """Which of these address keys the file's email field holds (parsing it only if any);
    None also for a file that cannot be read or parsed (or is gone)."""
    if not keys:
        return None
    try:
        named = read_mapping(path, for_edit=False)[0].get("email")
    except (SubscriberError, OSError):
        return None
    key = _email_key(named) if isinstance(named, str) else None
    return key if key in keys else None


class FolderIndex:
    """:func:`find` and :func:`locate` for a process that looks subscribers up again and
    again (the web app: every page, save and unsubscribe names one subscriber).

    Each lookup read every file of the folder (0.4 s a page among 10,000 files). This
    keeps, per file, the addresses its text holds; a lookup stats the files (no read) and
    re-reads only those whose size, mtime or inode changed, takes the first file in load
    order whose text holds the address and whose ``email`` field is it, and otherwise
    falls back to :func:`locate` (an address written with YAML escapes, a broken file
    holding it, no file at all), so it finds what ``locate`` finds.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._files: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {}  # name -> (stat, address keys)

    def locate(self, email: str) -> Path | None:
        wanted = _email_key(email)
        for path in self._holding(wanted):
            if holds_address(path, email):
                return path
        return locate(self.directory, email)

    def find(self, email: str) -> tuple[Path, Subscriber]:
        path = self.locate(email)
        if path is None:
            raise SubscriberNotFound(f"no subscriber {email} in {self.directory}")
        return path, load_file(path)

    def _holding(self, key: str) -> list[Path]:
        """The files (load order) whose text, as last read, holds this address key."""
        with self._lock:
            files: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {}
            try:
                entries = list(os.scandir(self.directory))
            except OSError:
                entries = []
            for entry in entries:
                name = entry.name
                if not is_subscriber_file(name):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
                known = self._files.get(name)
                if known is not None and known[0] == stamp:
                    files[name] = known
                    continue
                try:
                    text = Path(entry.path).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    text = ""
                files[name] = (stamp, _addresses_in(text))
            self._files = files
            return [self.directory / name for name in sorted(n for n, (_, keys) in files.items() if key in keys)]


def find(directory: Path, email: str) -> tuple[Path, Subscriber]:
    """The file holding this email and its validated subscriber.

    Raises SubscriberNotFound, or SubscriberError if the file is broken.
    """
    path = locate(directory, email)
    if path is None:
        raise SubscriberNotFound(f"no subscriber {email} in {directory}")
    return path, load_file(path)


def subscriber_path(directory: Path, email: str) -> Path:
    """The file that holds this subscriber, or the free file name a new one would get."""
    return locate(directory, email) or free_path(directory, file_stem(email))


def file_stem(email: str) -> str:
    """A safe file name for an address: lowercase ASCII, only [a-z0-9._-], never hidden."""
    text = unicodedata.normalize("NFKD", email).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9._-]+", "-", text.replace("@", "_at_"))
    text = re.sub(r"\.{2,}", ".", text).strip("._-")[:80].rstrip("._-")
    return text or "subscriber"


def free_path(directory: Path, stem: str) -> Path:
    """``stem.yaml`` in the directory, or ``stem-2.yaml``… if that name is taken."""
    path, n = directory / f"{stem}.yaml", 1
    while path.exists() or path.with_suffix(".yml").exists():
        n += 1
        path = directory / f"{stem}-{n}.yaml"
    return path
