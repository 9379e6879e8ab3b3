"""Build the bundled sample snapshot from the two saved Hugging Face Papers search pages.

Usage::

    python -m flows.sample_data.build_sample /work/shared/seeds flows/sample_data/huggingface

Reads every ``*.txt`` seed (text of a Hugging Face Papers page: title line,
abstract paragraph, "  • N authors" or an organisation line, "·", then a date
line such as "Jun 6, 2024 2" with an optional upvote count) and writes one
``YYYY-MM-DD.json`` per listing date, each shaped like the Daily Papers API's
list for that date, so :class:`flows.sources.snapshot.SnapshotSource` reads it.

Real, from the seeds: titles, abstracts (verbatim), author counts, published
dates (a date without a year is 2025, the year the pages were saved) and
upvotes (the number after the date; none means 0). A paper in both seed files
appears once (same title, ignoring case and spacing; the first seed file read,
in file-name order, wins).

Filled in, deterministically (the same seeds always give byte-identical files):

- ``paper.id``: SYNTHETIC ids, ``sample-YYMM-NNNNN``: YYMM from the published
  date, NNNNN from the SHA-256 of the title (next number on a collision). They are
  not the papers' arXiv ids and do not look like them, so nothing links to
  arxiv.org/abs/<made-up id> (a 404): the Hugging Face source gives a paper whose id
  is not arXiv's a link that searches Hugging Face for its title, and the digest
  says that the papers are the bundled sample.
- ``paper.authors``: "Author 1" .. "Author N", keeping the real count N. Papers
  shown with an organisation instead of an author count ("nvidia NVIDIA") get
  no authors and an item-level ``organization`` {"name": "nvidia", "fullname": "NVIDIA"}.
- Listing dates: the papers are ordered by the SHA-256 of their title and dealt
  round-robin over the 5 weekdays Mon 2025-12-08 .. Fri 2025-12-12 (186 papers:
  38 on Monday, 37 on each other day); within a day, ordered by upvotes
  (descending), then title. The item's ``publishedAt`` (time listed) is that
  date at 00:00 UTC. Every real published date lies before its listing date.
- ``numComments``: 0. ``ai_keywords``: empty. ``paper.upvotes``: the seed's count.
- ``paper.githubRepo``: the first https://github.com/owner/repo link written in
  the abstract, if any (".git" and trailing punctuation removed); otherwise absent.
  ``projectPage``, ``thumbnail``, ``submittedBy`` and the ``_id`` fields are absent.
- A few cards on the pages show a title and abstract with no author/date line;
  those papers have no ``paper.publishedAt``, no authors, 0 upvotes, and take
  YYMM for their id from their listing date.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

SEED_YEAR = 2025  # dates shown without a year on the saved pages
LAST_LISTING_DAY = date(2025, 12, 12)  # a Friday; after every published date in the seeds
LISTING_DAYS = [LAST_LISTING_DAY - timedelta(days=n) for n in range(4, -1, -1)]  # Mon..Fri
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
DATE_LINE = re.compile(r"(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:, (?P<year>\d{4}))?(?: (?P<up>\d+))?")
AUTHORS_LINE = re.compile(r"•\s*(\d+) authors?")
GITHUB = re.compile(r"https?://github\.com/[\w.-]+/[\w.-]+")
PAGE_HEADER_END = "byAK and the research community"
# One author per line instead of four keeps the files readable and a third smaller.
AUTHOR_JSON = re.compile(r'\{\n\s*("name": "[^"\n]*"),\n\s*("hidden": false)\n\s*\}')


class SeedFormatError(ValueError):
    """A seed file does not have the expected card layout."""


@dataclass
class SeedPaper:
    title: str
    abstract: str
    authors: int = 0
    organization: str | None = None
    published: date | None = None
    upvotes: int = 0


def parse_date_line(line: str) -> tuple[date, int]:
    """("Jun 6, 2024 2") -> (2024-06-06, 2); the year defaults to SEED_YEAR, upvotes to 0."""
    match = DATE_LINE.fullmatch(line.strip())
    if not match:
        raise SeedFormatError(f"not a date line: {line!r}")
    year = int(match["year"] or SEED_YEAR)
    return date(year, MONTHS[match["mon"]], int(match["day"])), int(match["up"] or 0)


def parse_seed(text: str) -> list[SeedPaper]:
    """The cards of one saved page, in page order."""
    lines = text.splitlines()
    papers: list[SeedPaper] = []
    start = 0
    for i, line in enumerate(lines):
        if line.strip() != "·":
            continue
        block = [ln.strip() for ln in lines[start : i - 1] if ln.strip()]
        if PAGE_HEADER_END in block:  # drop the page header and its date line
            block = block[block.index(PAGE_HEADER_END) + 2 :]
        if not block or len(block) % 2:
            raise SeedFormatError(f"line {i + 1}: expected title/abstract pairs, got {len(block)} lines")
        cards = [SeedPaper(title=t, abstract=a) for t, a in zip(block[::2], block[1::2])]
        last = cards[-1]  # the author/date lines belong to the card just above them
        who = lines[i - 1].strip()
        if counted := AUTHORS_LINE.fullmatch(who):
            last.authors = int(counted[1])
        else:
            last.organization = who  # "<handle> <display name>", e.g. "nvidia NVIDIA"
        last.published, last.upvotes = parse_date_line(lines[i + 1])
        papers.extend(cards)
        start = i + 2
    return papers


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _hash(title: str) -> int:
    return int.from_bytes(hashlib.sha256(title.encode()).digest()[:8], "big")


def merge(seeds: list[list[SeedPaper]]) -> list[SeedPaper]:
    """All papers once, the first occurrence winning."""
    unique: dict[str, SeedPaper] = {}
    for papers in seeds:
        for paper in papers:
            unique.setdefault(_title_key(paper.title), paper)
    return list(unique.values())


def assign_days(papers: list[SeedPaper]) -> dict[date, list[SeedPaper]]:
    """Deal the papers round-robin over LISTING_DAYS in title-hash order."""
    days: dict[date, list[SeedPaper]] = {day: [] for day in LISTING_DAYS}
    for n, paper in enumerate(sorted(papers, key=lambda p: (_hash(p.title), p.title))):
        days[LISTING_DAYS[n % len(LISTING_DAYS)]].append(paper)
    return days


def synthetic_id(paper: SeedPaper, listed: date, taken: set[str]) -> str:
    """A made-up id ("sample-2512-04711"), stable for the same title and date."""
    when = paper.published or listed
    number = _hash(paper.title) % 100_000
    while (candidate := f"sample-{when:%y%m}-{number:05d}") in taken:
        number = (number + 1) % 100_000
    taken.add(candidate)
    return candidate


def github_link(abstract: str) -> str | None:
    match = GITHUB.search(abstract)
    if not match:
        return None
    link = match[0].rstrip(".,;:)")
    return link.removesuffix(".git")


def api_item(paper: SeedPaper, paper_id: str, listed: date) -> dict:
    """One Daily Papers API item for ``paper``."""
    inner: dict = {
        "id": paper_id,
        "title": paper.title,
        "summary": paper.abstract,
        "authors": [{"name": f"Author {n}", "hidden": False} for n in range(1, paper.authors + 1)],
    }
    if paper.published:
        inner["publishedAt"] = f"{paper.published.isoformat()}T00:00:00.000Z"
    inner["upvotes"] = paper.upvotes
    inner["ai_keywords"] = []
    if repo := github_link(paper.abstract):
        inner["githubRepo"] = repo
    item = {
        "paper": inner,
        "publishedAt": f"{listed.isoformat()}T00:00:00.000Z",
        "title": paper.title,
        "numComments": 0,
        "isAuthorParticipating": False,
    }
    if paper.organization:
        handle, _, fullname = paper.organization.partition(" ")
        item["organization"] = {"name": handle, "fullname": fullname or handle}
    return item


def build(seed_dir: Path) -> dict[date, list[dict]]:
    """The API list for every listing date, from the seeds in ``seed_dir``."""
    seed_files = sorted(Path(seed_dir).glob("*.txt"))
    if not seed_files:
        raise SeedFormatError(f"no *.txt seed files in {seed_dir}")
    papers = merge([parse_seed(path.read_text(encoding="utf-8")) for path in seed_files])
    taken: set[str] = set()
    listings: dict[date, list[dict]] = {}
    for listed, todays in assign_days(papers).items():
        ranked = sorted(todays, key=lambda p: (-p.upvotes, p.title))
        listings[listed] = [api_item(p, synthetic_id(p, listed, taken), listed) for p in ranked]
    return listings


def write(listings: dict[date, list[dict]], out_dir: Path) -> list[Path]:
    """Write one YYYY-MM-DD.json per date, replacing any earlier snapshot files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("????-??-??.json"):
        old.unlink()
    written = []
    for listed, items in sorted(listings.items()):
        path = out_dir / f"{listed.isoformat()}.json"
        text = AUTHOR_JSON.sub(r"{\1, \2}", json.dumps(items, indent=1, ensure_ascii=False))
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m flows.sample_data.build_sample SEED_DIR OUT_DIR", file=sys.stderr)
        return 2
    listings = build(Path(args[0]))
    for path in write(listings, Path(args[1])):
        print(f"{path}: {len(listings[date.fromisoformat(path.stem)])} papers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
