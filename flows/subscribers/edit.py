"""Editing subscriber files: the one code path for the CLI and the web pages.

Takes a directory, an email address and the changes; gives the validated result
(`add` gives the new file's path, `remove` where the file went). Every edit

- keeps the file's comments and key order (ruamel.yaml round trip; only touched keys change),
- validates the result before writing (an invalid change writes nothing),
- is atomic (temp file in the same directory, fsync, ``os.replace``),
- holds an exclusive lock on ``directory/.paperboy.lock`` for its read-modify-write, so
  concurrent edits from threads or processes are serialised and none is lost.

:func:`remove` moves the file to ``directory/.removed/`` (with a timestamp) rather than
deleting it, so an operator's mistake can be undone; purge that folder to forget removed
subscribers for good.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from flows.subscribers.files import (file_stem, free_path, holds_address, locate, read_mapping, validate_fields,
                                     yaml_for)
from flows.subscribers.model import Subscriber, SubscriberExists, SubscriberLocked, SubscriberNotFound

log = logging.getLogger(__name__)

LOCK_NAME = ".paperboy.lock"
LOCK_TIMEOUT = 10.0  # seconds; edits hold the lock for milliseconds
REMOVED_DIR = ".removed"

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
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600  # addresses are personal data
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
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with locked(directory):
        existing = locate(directory, email)
        if existing is not None:
            raise SubscriberExists(f"{email} is already subscribed ({existing})")
        path = free_path(directory, file_stem(email))
        given = {"email": email, "keywords": list(keywords), **fields}
        subscriber = validate_fields(path, given)
        data = CommentedMap(
            (key, _yaml_value(getattr(subscriber, key)))
            for key in Subscriber.model_fields if key in given and given[key] is not None
        )
        write_atomic(path, lambda handle: _dump(yaml_for(), data, handle))
    log.info("added subscriber %s in %s", subscriber.email, path)
    return path


def update(directory: Path, email: str, /, *, at: Path | None = None, **changes: Any) -> Subscriber:
    """Set these fields (None removes the key, back to its default); returns the result.

    Works on a file that is currently invalid, so it can also repair one. Nothing is
    written unless the changed file validates. ``at``: as for :func:`modify`.
    """
    return _rewrite(directory, email, lambda _current, _path: changes, at=at)


def modify(directory: Path, email: str,
           change: Callable[[Subscriber], Mapping[str, Any]], *, at: Path | None = None) -> Subscriber:
    """Like :func:`update`, with changes computed from the current subscriber under the lock.

    Use this for read-modify-write such as "append a keyword": ``modify(d, e, lambda s:
    {"keywords": [*s.keywords, "diffusion"]})``; concurrent calls never lose each other's
    change. The current file must be valid. ``at``: the file, where the caller has found it
    already (:func:`flows.subscribers.files.locate_each`, for many subscribers at once):
    checked under the lock, and looked up again only if it no longer holds the address.
    """
    return _rewrite(directory, email, lambda current, path: change(validate_fields(path, current)), at=at)


def set_active(directory: Path, email: str, active: bool, *, at: Path | None = None) -> Subscriber:
    """Pause or resume a subscriber's digests (one-click unsubscribe sets False)."""
    return update(directory, email, active=active, at=at)


def remove(directory: Path, email: str) -> Path:
    """Move the subscriber's file to ``directory/.removed/`` (timestamped); returns where it went."""
    _require_directory(directory, email)
    with locked(directory):
        path = locate(directory, email)
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
             changes_for: Callable[[CommentedMap, Path], Mapping[str, Any]], at: Path | None = None) -> Subscriber:
    _require_directory(directory, email)
    with locked(directory):
        path = at if at is not None and holds_address(at, email) else locate(directory, email)
        if path is None:
            raise SubscriberNotFound(f"no subscriber {email} in {directory}")
        data, yaml = read_mapping(path)
        changes = dict(changes_for(data, path))
        if changes.get("active") is True and "suppressed" not in changes:
            changes["suppressed"] = None  # resuming a suppressed address clears the suppression
        _refuse_taken_email(directory, path, changes.get("email"))
        for key, value in changes.items():
            _set(data, key, value)
        subscriber = validate_fields(path, data)
        if subscriber.frequency == "daily" and "weekday" in data and ({"frequency", "weekday"} & changes.keys()):
            # An edit to daily (the web page's switch, `set --frequency daily`) drops the weekday
            # it leaves behind: kept, it reads as weekly and `subscribers check` warns about it.
            data.pop("weekday")
            changes["weekday"] = None
            subscriber = validate_fields(path, data)
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
        holder = locate(directory, new_email)
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
    if isinstance(value, BaseModel):
        return CommentedMap(value.model_dump())
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
