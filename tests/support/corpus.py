"""Realistic listings for tests: real titles and abstracts from the seed pages, shaped like
the Hugging Face daily_papers API, written as a snapshot directory."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "papers.json"


def seed_papers() -> list[dict]:
    """Twelve real papers (title, abstract, upvotes) with stable synthetic arXiv ids."""
    return json.loads(DATA.read_text(encoding="utf-8"))


def api_item(paper: dict, listed: date) -> dict:
    """One item exactly as /api/daily_papers returns it."""
    return {
        "paper": {
            "id": paper["id"],
            "title": paper["title"],
            "summary": paper["abstract"],
            "authors": [{"_id": f"a{n}", "name": name, "hidden": False}
                        for n, name in enumerate(paper.get("authors", ["Ada Author", "Bo Author"]))],
            "publishedAt": paper.get("published", f"{listed.isoformat()}T00:00:00.000Z"),
            "upvotes": paper["upvotes"],
            "ai_keywords": paper.get("ai_keywords", []),
            "githubRepo": paper.get("githubRepo"),
            "projectPage": paper.get("projectPage"),
        },
        "publishedAt": f"{listed.isoformat()}T12:00:00.000Z",
        "title": paper["title"],
        "numComments": paper.get("comments", 0),
        "isAuthorParticipating": False,
    }


def write_snapshot(directory: Path, days: dict[date, list[dict]]) -> Path:
    """A snapshot directory: one API-shaped JSON list per listed date."""
    directory.mkdir(parents=True, exist_ok=True)
    for listed, papers in days.items():
        items = [api_item(p, listed) for p in papers]
        (directory / f"{listed.isoformat()}.json").write_text(json.dumps(items), encoding="utf-8")
    return directory
