"""Subscribers: one YAML file each in ``subscribers/``; load, validate and edit them.

A broken file never stops the others: :func:`load_all` returns the good
subscribers and a list of :class:`SubscriberFileError` naming the file and field.

Editing (:func:`add`, :func:`update`, :func:`modify`, :func:`set_active`, :func:`remove`)
is the one code path for the CLI and the web pages. Every edit

- keeps the file's comments and key order (ruamel.yaml round trip; only touched keys change),
- validates the result before writing (an invalid change writes nothing),
- is atomic (temp file in the same directory, fsync, ``os.replace``),
- holds an exclusive lock on ``directory/.paperboy.lock`` for its read-modify-write, so
  concurrent edits from threads or processes are serialised and none is lost.

A subscriber is found by the ``email`` field inside the files, never by file name: files
written by hand may have any name. :func:`remove` moves the file to ``directory/.removed/``
(with a timestamp) rather than deleting it, so an operator's mistake can be undone; purge
that folder to forget removed subscribers for good.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import re
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.cyaml import CBaseLoader
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

log = logging.getLogger(__name__)

MAX_KEYWORDS = 50
MAX_KEYWORD_LENGTH = 100
MAX_CATEGORIES = 50
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KNOWN_SOURCES = ("huggingface", "arxiv", "snapshot")
ARXIV_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")  # cs.LG, hep-th, astro-ph.GA

LOCK_NAME = ".paperboy.lock"
LOCK_TIMEOUT = 10.0  # seconds; edits hold the lock for milliseconds
REMOVED_DIR = ".removed"

# How to fix each field, appended to pydantic's message when it does not say so itself.
FIELD_HINTS = {
    "email": "use an address like email: ada@example.org",
    "name": "use one line, e.g. name: Ada Lovelace",
    "keywords": 'use a list of words or "quoted phrases", e.g. keywords: [diffusion, world models]',
    "exclude": "use a list of words or phrases to leave out, e.g. exclude: [survey]",
    "max_papers": "use a whole number from 1 to 100, e.g. max_papers: 20",
    "frequency": "use frequency: daily, or frequency: weekly with weekday: monday",
    "weekday": f"use one of {', '.join(WEEKDAYS)}, e.g. weekday: monday",
    "include_trending": "use true or false, e.g. include_trending: true",
    "popularity": "use a number from 0 (ignore upvotes) to 10, e.g. popularity: 1.0",
    "send_empty": "use true or false, e.g. send_empty: false",
    "active": "use true or false, e.g. active: true",
    "sources": f"use a list of {', '.join(KNOWN_SOURCES)}, e.g. sources: [huggingface], or leave it out",
    "categories": "use a list of arXiv categories, e.g. categories: [cs.LG, cs.CL], or leave it out",
}


class SubscriberError(Exception):
    """A subscriber file or value is not valid."""


class SubscriberNotFound(SubscriberError):
    """No subscriber file holds this email address."""


class SubscriberExists(SubscriberError):
    """A subscriber file already holds this email address."""


class SubscriberLocked(SubscriberError):
    """Another edit held the subscribers lock for too long."""


class Subscriber(BaseModel):
    """One subscriber's preferences, exactly as their YAML file holds them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    name: str = ""
    keywords: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    max_papers: int = Field(20, ge=1, le=100)
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    include_trending: bool = False
    popularity: float = Field(1.0, ge=0, le=10)  # weight of log(upvotes) in the score; 0 ignores it
    send_empty: bool = False
    active: bool = True
    sources: list[str] | None = None
    categories: list[str] | None = Field(None, max_length=MAX_CATEGORIES)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not a valid email address ({exc}); e.g. email: ada@example.org") from None

    @field_validator("name")
    @classmethod
    def _single_line_name(cls, value: str) -> str:
        # A name ends up in the To: header; line breaks there would forge headers.
        if re.search(r"[\r\n\x00-\x1f\x7f]", value):
            raise ValueError("must be one line without control characters")
        if len(value) > 200:
            raise ValueError("is longer than 200 characters")
        return value.strip()

    @field_validator("keywords")
    @classmethod
    def _valid_keywords(cls, value: list[str]) -> list[str]:
        cleaned = _bounded_keywords(value)
        check_query(cleaned, [])
        return cleaned

    @field_validator("exclude")
    @classmethod
    def _valid_exclude(cls, value: list[str], info: ValidationInfo) -> list[str]:
        cleaned = _bounded_keywords(value)
        if "keywords" in info.data:  # otherwise the keywords already failed on their own
            check_query(info.data["keywords"], cleaned)
        return cleaned

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("is empty; name at least one source, or leave the field out for all")
        for source in value:
            if source not in KNOWN_SOURCES:
                raise ValueError(f"{source!r} is not a source; use {', '.join(KNOWN_SOURCES)}")
        return list(dict.fromkeys(value))

    @field_validator("categories")
    @classmethod
    def _arxiv_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for category in value:
            if not ARXIV_CATEGORY.match(category):
                raise ValueError(f"{category[:40]!r} is not an arXiv category like cs.LG or hep-th")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _something_to_rank(self) -> "Subscriber":
        if self.active and not self.keywords and not self.include_trending:
            raise ValueError(
                "an active subscriber needs at least one keyword (or include_trending: true)"
            )
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@", 1)[0]


def _bounded_keywords(value: list[str]) -> list[str]:
    cleaned = []
    for keyword in value:
        keyword = keyword.strip()
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise ValueError(f"{keyword[:30]!r}… is longer than {MAX_KEYWORD_LENGTH} characters; shorten it")
        if re.search(r"[\x00-\x1f\x7f]", keyword):
            raise ValueError(f"{keyword!r} contains control characters; remove them")
        if keyword:
            cleaned.append(keyword)
    return cleaned


def check_query(keywords: list[str], exclude: list[str],
                parse: Callable[[list[str], list[str]], object] | None = None) -> None:
    """Raise ValueError naming the keyword if the ranking language rejects it.

    ``parse`` defaults to the ranking module's ``parse_query``; while that module does
    not exist yet, keywords are only checked for length and control characters.
    """
    parse = parse or _query_parser()
    if parse is None or not (keywords or exclude):
        return
    try:
        parse(keywords, exclude)
    except ValueError as exc:  # the ranking module's QueryError is a ValueError with .keyword
        keyword, problem = getattr(exc, "keyword", None), getattr(exc, "problem", None)
        text = f"keyword {keyword!r}: {problem}" if keyword and problem else str(exc)
        if keyword and keyword not in text:
            text = f"keyword {keyword!r}: {text}"
        raise ValueError(
            f"{text}; fix or remove it (a keyword is a word, words, a \"quoted phrase\", "
            "word^2 or title:word)"
        ) from None


def _query_parser() -> Callable[[list[str], list[str]], object] | None:
    # Imported here, not at the top: the ranking module imports this one, and may not exist yet.
    for module_name in ("flows.rank.query", "flows.query", "flows.rank"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name and (module_name + ".").startswith(exc.name + ".")):
                raise  # the module exists but is broken: say so loudly
            continue
        parse = getattr(module, "parse_query", None)
        if parse is not None:
            return parse
    return None


@dataclass(frozen=True)
class SubscriberFileError:
    """Why one subscriber file could not be used."""

    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f" (field '{self.field}')" if self.field else ""
        return f"{self.path}{where}: {self.message}"


def _yaml(indent: tuple[int, int] | None = None) -> YAML:
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
    return sorted(
        p for p in directory.iterdir()
        if p.suffix in {".yaml", ".yml"} and not p.name.startswith((".", "_"))
    )


def load_file(path: Path) -> Subscriber:
    """Read and validate one subscriber file; raises SubscriberError naming the field."""
    return _validate(path, _read_fields(path))


def _read_fields(path: Path) -> Mapping[str, Any]:
    """The file's fields, for reading only (edits go through `_read_mapping`).

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
    return fields if fields is not None else _read_mapping(path, for_edit=False)[0]


class _Unsure(Exception):
    """A value the fast reader leaves to the round-trip loader."""


# Tags, complex keys, anchors, aliases, escapes and tabs: rare here, and where the readers differ.
_ROUND_TRIP_ONLY = re.compile(r"[!?&*\\\t]")
_PLAIN_INT = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_PLAIN_CONSTANTS: dict[str, Any] = {
    "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
    "null": None, "Null": None, "NULL": None, "~": None, "": None,
}
_WORDS_READ_AS_VALUES = frozenset("yes no on off y n true false null".split())  # YAML 1.1 or 1.2


def _fast_fields(text: str) -> dict[str, Any] | None:
    if _ROUND_TRIP_ONLY.search(text):
        return None
    try:
        fields = _node_value(CBaseLoader(text).get_single_node())
    except (YAMLError, _Unsure):
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


def _read_mapping(path: Path, for_edit: bool = True) -> tuple[CommentedMap, YAML]:
    """The file's round-trip mapping and a YAML instance that dumps it in the file's style."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _file_error(path, "", f"cannot be read: {exc}") from None
    try:
        yaml = _yaml(_guess_indent(text) if for_edit else None)  # guessing parses once more
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _file_error(path, "", f"is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise _file_error(path, "", "must be a mapping of fields (email: …, keywords: […])")
    return data, yaml


def _guess_indent(text: str) -> tuple[int, int] | None:
    if not re.search(r"^\s*- ", text, re.MULTILINE):
        return None  # no block sequence to learn from: use the house style
    _, sequence, offset = load_yaml_guess_indent(text)
    return (sequence, offset) if sequence and offset is not None else None


def _validate(path: Path, data: Mapping[str, Any]) -> Subscriber:
    try:
        return Subscriber.model_validate(_plain(data))
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
    if hint and first["type"] not in ("value_error", "extra_forbidden"):  # ours say the fix already
        message = f"{message}; {hint}"
    return _file_error(path, field, message)


def _file_error(path: Path, field: str, message: str) -> SubscriberError:
    error = SubscriberError(str(SubscriberFileError(path, field, message)))
    error.detail = SubscriberFileError(path, field, message)  # type: ignore[attr-defined]
    return error


def _plain(value: object) -> object:
    """ruamel's commented containers → plain dicts/lists for pydantic."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_all(directory: Path) -> tuple[list[Subscriber], list[SubscriberFileError]]:
    """Every valid subscriber, plus one error per broken file; duplicates are errors too."""
    subscribers: list[Subscriber] = []
    errors: list[SubscriberFileError] = []
    for path, subscriber, error in scan(directory):
        if error is not None:
            errors.append(error)
        else:
            subscribers.append(subscriber)  # type: ignore[arg-type]
    return subscribers, errors


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


# -- finding -------------------------------------------------------------------------------


def _email_key(email: str) -> str:
    """The form two addresses are compared in: normalised, case-insensitive."""
    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        pass
    return email.strip().lower()


def _locate(directory: Path, email: str) -> Path | None:
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
            found = _read_mapping(path, for_edit=False)[0].get("email")
        except SubscriberError as exc:
            if wanted in text.lower():
                unreadable = unreadable or exc
            continue
        if isinstance(found, str) and _email_key(found) == wanted:
            return path
    if unreadable is not None:
        raise unreadable
    return None


def find(directory: Path, email: str) -> tuple[Path, Subscriber]:
    """The file holding this email and its validated subscriber.

    Raises SubscriberNotFound, or SubscriberError if the file is broken.
    """
    path = _locate(directory, email)
    if path is None:
        raise SubscriberNotFound(f"no subscriber {email} in {directory}")
    return path, load_file(path)


def subscriber_path(directory: Path, email: str) -> Path:
    """The file that holds this subscriber, or the free file name a new one would get."""
    return _locate(directory, email) or _free_path(directory, file_stem(email))


def file_stem(email: str) -> str:
    """A safe file name for an address: lowercase ASCII, only [a-z0-9._-], never hidden."""
    text = unicodedata.normalize("NFKD", email).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9._-]+", "-", text.replace("@", "_at_"))
    text = re.sub(r"\.{2,}", ".", text).strip("._-")[:80].rstrip("._-")
    return text or "subscriber"


def _free_path(directory: Path, stem: str) -> Path:
    path, n = directory / f"{stem}.yaml", 1
    while path.exists() or path.with_suffix(".yml").exists():
        n += 1
        path = directory / f"{stem}-{n}.yaml"
    return path


# -- editing ---------------------------------------------------------------------------------


@contextmanager
def locked(directory: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the directory's edit lock (fcntl.flock, so it also excludes other processes)."""
    # The lock file is never deleted: unlinking a lock file lets two holders race.
    with open(directory / LOCK_NAME, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SubscriberLocked(
                        f"{directory / LOCK_NAME} is held by another edit; try again"
                    ) from None
                time.sleep(0.005)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, write: Callable[[TextIO], None]) -> None:
    """Replace ``path`` with what ``write`` writes, all or nothing (temp file, fsync, rename)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(yaml: YAML, data: CommentedMap, handle: TextIO) -> None:
    yaml.dump(data, handle)


def add(directory: Path, email: str, *, keywords: list[str], **fields: Any) -> Path:
    """Create a subscriber file; raises SubscriberExists if the address is already subscribed."""
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory):
        existing = _locate(directory, email)
        if existing is not None:
            raise SubscriberExists(f"{email} is already subscribed ({existing})")
        path = _free_path(directory, file_stem(email))
        given = {"email": email, "keywords": list(keywords), **fields}
        subscriber = _validate(path, given)
        data = CommentedMap(
            (key, _yaml_value(getattr(subscriber, key)))
            for key in Subscriber.model_fields if key in given and given[key] is not None
        )
        write_atomic(path, lambda handle: _dump(_yaml(), data, handle))
    log.info("added subscriber %s in %s", subscriber.email, path)
    return path


def update(directory: Path, email: str, /, **changes: Any) -> Subscriber:
    """Set these fields (None removes the key, back to its default); returns the result.

    Works on a file that is currently invalid, so it can also repair one. Nothing is
    written unless the changed file validates.
    """
    return _rewrite(directory, email, lambda _current, _path: changes)


def modify(directory: Path, email: str,
           change: Callable[[Subscriber], Mapping[str, Any]]) -> Subscriber:
    """Like :func:`update`, with changes computed from the current subscriber under the lock.

    Use this for read-modify-write such as "append a keyword": ``modify(d, e, lambda s:
    {"keywords": [*s.keywords, "diffusion"]})``; concurrent calls never lose each other's
    change. The current file must be valid.
    """
    return _rewrite(directory, email, lambda current, path: change(_validate(path, current)))


def set_active(directory: Path, email: str, active: bool) -> Subscriber:
    """Pause or resume a subscriber's digests (one-click unsubscribe sets False)."""
    return update(directory, email, active=active)


def remove(directory: Path, email: str) -> Path:
    """Move the subscriber's file to ``directory/.removed/`` (timestamped); returns where it went."""
    _require_directory(directory, email)
    with locked(directory):
        path = _locate(directory, email)
        if path is None:
            raise SubscriberNotFound(f"no subscriber {email} in {directory}")
        bin_dir = directory / REMOVED_DIR
        bin_dir.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = bin_dir / f"{path.stem}-{stamp}{path.suffix}"
        os.replace(path, target)
        _fsync_directory(directory)
    log.info("removed subscriber %s (%s moved to %s)", email, path.name, target)
    return target


def _rewrite(directory: Path, email: str,
             changes_for: Callable[[CommentedMap, Path], Mapping[str, Any]]) -> Subscriber:
    _require_directory(directory, email)
    with locked(directory):
        path = _locate(directory, email)
        if path is None:
            raise SubscriberNotFound(f"no subscriber {email} in {directory}")
        data, yaml = _read_mapping(path)
        changes = dict(changes_for(data, path))
        _refuse_taken_email(directory, path, changes.get("email"))
        for key, value in changes.items():
            _set(data, key, value)
        subscriber = _validate(path, data)
        for key, value in changes.items():  # store what validation normalised (email, stripped keywords)
            if value is not None:
                _set(data, key, getattr(subscriber, key))
        write_atomic(path, lambda handle: _dump(yaml, data, handle))
    log.info("updated subscriber %s (%s): %s", subscriber.email, path.name, ", ".join(changes))
    return subscriber


def _require_directory(directory: Path, email: str) -> None:
    if not directory.is_dir():
        raise SubscriberNotFound(f"no subscriber {email}: {directory} is not a directory")


def _refuse_taken_email(directory: Path, path: Path, new_email: object) -> None:
    if isinstance(new_email, str):
        holder = _locate(directory, new_email)
        if holder is not None and holder != path:
            raise SubscriberExists(f"{new_email} is already subscribed ({holder})")


def _set(data: CommentedMap, key: str, value: Any) -> None:
    """Change one key in place, so its position and comments stay where they were."""
    if value is None:
        data.pop(key, None)
    elif isinstance(value, (list, tuple)) and isinstance(data.get(key), CommentedSeq):
        _merge_sequence(data[key], list(value))
    else:
        data[key] = _yaml_value(value)


def _yaml_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _merge_sequence(seq: CommentedSeq, new: list[Any]) -> None:
    """Turn ``seq`` into ``new`` while keeping the items (and their comments and quoting)
    that stay: drop the removed ones, append the added ones."""
    # ruamel hangs the comment lines *after* an item on that item; those after the last
    # item introduce the next key, so they must stay last whatever happens to the items.
    closing = _detach_trailer(seq, len(seq) - 1)
    wanted = Counter(new)
    drop = []
    for index, item in enumerate(seq):
        if wanted[item] > 0:
            wanted[item] -= 1
        else:
            drop.append(index)
    for index in reversed(drop):
        trailer = _detach_trailer(seq, index)
        del seq[index]
        if index > 0:
            _attach_trailer(seq, index - 1, trailer)
    if list(seq) == new[: len(seq)]:
        seq.extend(new[len(seq):])
    else:
        for index, item in enumerate(new):  # reordered: comments stay by position
            if index < len(seq):
                seq[index] = item
            else:
                seq.append(item)
    if seq:
        _attach_trailer(seq, len(seq) - 1, closing)


def _detach_trailer(seq: CommentedSeq, index: int) -> str:
    """Cut and return the blank and comment lines below item ``index`` (not its own
    end-of-line comment)."""
    entry = seq.ca.items.get(index)
    token = entry[0] if entry else None
    if token is None:
        return ""
    own, _, trailer = token.value.partition("\n")
    if not trailer:
        return ""
    if own.strip():
        token.value = own + "\n"
    else:
        entry[0] = None
    return trailer


def _attach_trailer(seq: CommentedSeq, index: int, trailer: str) -> None:
    if not trailer:
        return
    entry = seq.ca.items.setdefault(index, [None, None, None, None])
    if entry[0] is None:
        entry[0] = CommentToken("\n" + trailer, CommentMark(0), None)
    else:
        entry[0].value = entry[0].value.rstrip("\n") + "\n" + trailer


class KeywordSyntaxError(ValueError):
    """A comma-separated keyword list has an unbalanced double quote."""


def split_keywords(text: str) -> list[str]:
    """``'diffusion, "world, models", RL'`` → ``['diffusion', '"world, models"', 'RL']``.

    Commas separate keywords except inside double quotes. The quotes are kept: in the
    ranking language a quoted phrase is matched as a phrase.
    """
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise KeywordSyntaxError(f"unbalanced double quote in {text!r}; close the quoted phrase")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]
