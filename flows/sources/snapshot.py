"""An offline source: saved Daily Papers API responses, one ``YYYY-MM-DD.json`` per listing date.

Each file holds exactly the API's JSON list for that date (all pages
concatenated). A date without a file is an empty listing, like a weekend.

Replay mode (``replay_to``) moves the whole snapshot in time: the newest file's
date becomes ``replay_to`` and every other file moves by the same number of
days, so the demo has "today's" papers on any calendar day.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

from flows.models import Listing
from flows.sources.base import SourceError, SourceFormatError
from flows.sources.clean import MAX_RESPONSE_BYTES
from flows.sources.huggingface import parse_body

log = logging.getLogger(__name__)


class SnapshotSource:
    """Listings read from a directory of saved Daily Papers responses."""

    name = "snapshot"

    def __init__(self, directory: Path, replay_to: date | None = None) -> None:
        self.directory = Path(directory)
        self.replay_to = replay_to

    def _files(self) -> dict[date, Path]:
        """The snapshot's files by their own (unshifted) listing date."""
        if not self.directory.is_dir():
            raise SourceError(f"snapshot directory not found: {self.directory}")
        files = {}
        for path in self.directory.glob("*.json"):
            try:
                files[date.fromisoformat(path.stem)] = path
            except ValueError:
                log.debug("ignoring %s: not named YYYY-MM-DD.json", path)
        return files

    def _shift(self, files: dict[date, Path]) -> timedelta:
        if self.replay_to is None or not files:
            return timedelta(0)
        return self.replay_to - max(files)

    def available_dates(self) -> list[date]:
        """The listing dates this snapshot has, oldest first (shifted in replay mode)."""
        files = self._files()
        shift = self._shift(files)
        return sorted(day + shift for day in files)

    def fetch(self, day: date) -> Listing:
        """The saved listing that lands on ``day``; empty when there is none."""
        files = self._files()
        path = files.get(day - self._shift(files))
        if path is None:
            return Listing(source=self.name, listed=day, papers=())
        if path.stat().st_size > MAX_RESPONSE_BYTES:
            raise SourceFormatError(f"{path}: larger than {MAX_RESPONSE_BYTES // 2**20} MB")
        papers, skipped, _ = parse_body(path.read_bytes(), day, str(path))
        return Listing(source=self.name, listed=day, papers=tuple(papers), skipped=skipped)
