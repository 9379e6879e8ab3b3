"""Subscribers: one YAML file each in ``subscribers/``; the model, reading, and editing.

* `model`: the `Subscriber` and its validation (limits, weekdays, keyword syntax).
* `files`: read and validate the files; a broken file never stops the others
  (`load_all` returns the good subscribers and one `SubscriberFileError` per broken file).
* `edit`: add, update, modify, set_active, remove: atomic, locked, comments kept.
"""

from flows.subscribers.edit import (
    LOCK_NAME,
    LOCK_TIMEOUT,
    REMOVED_DIR,
    add,
    locked,
    modify,
    remove,
    set_active,
    update,
    write_atomic,
)
from flows.subscribers.files import (
    FolderIndex,
    file_stem,
    find,
    load_all,
    load_file,
    locate,
    locate_each,
    scan,
    subscriber_files,
    subscriber_path,
)
from flows.subscribers.model import (
    ARXIV_CATEGORY,
    FIELD_HINTS,
    KNOWN_SOURCES,
    MAX_CATEGORIES,
    MAX_KEYWORD_LENGTH,
    MAX_KEYWORDS,
    WEEKDAYS,
    KeywordSyntaxError,
    Subscriber,
    SubscriberError,
    SubscriberExists,
    SubscriberFileError,
    SubscriberLocked,
    SubscriberNotFound,
    Suppression,
    check_query,
    notices,
    sets_max_papers,
    split_keywords,
    with_default_max,
)

__all__ = [
    "ARXIV_CATEGORY", "FIELD_HINTS", "KNOWN_SOURCES", "LOCK_NAME", "LOCK_TIMEOUT", "MAX_CATEGORIES",
    "MAX_KEYWORD_LENGTH", "MAX_KEYWORDS", "REMOVED_DIR", "WEEKDAYS", "KeywordSyntaxError",
    "Subscriber", "SubscriberError", "SubscriberExists", "SubscriberFileError", "SubscriberLocked",
    "FolderIndex", "SubscriberNotFound", "Suppression", "add", "check_query", "file_stem", "find", "load_all", "load_file",
    "locate", "locate_each", "locked", "modify", "notices", "remove", "scan", "set_active", "sets_max_papers",
    "split_keywords", "subscriber_files", "subscriber_path", "update", "with_default_max", "write_atomic",
]
