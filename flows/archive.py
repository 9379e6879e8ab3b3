"""A sent digest as its web view keeps it: which papers, in which order, and why.

`encode_digest` runs when the message is made (the text travels with the outgoing message
and is written to the ledger with its "sent" row, see Store.record_outcome); `decode_digest`
rebuilds the Digest when its web view is opened, from that text and the papers table. The
text holds ids, scores and match explanations only (about 100 bytes a paper): titles,
abstracts and links come from the papers table, snippets are cut again from the abstract.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date

from flows.models import Digest, Match, Paper, RankedPaper
from flows.rank import snippet

VERSION = 1
_MATCH_FIELDS = {f.name for f in fields(Match)}


class ArchiveError(Exception):
    """A kept digest cannot be read back (written by a newer version, or damaged)."""


def _match(match: Match) -> list:
    """[keyword, fields, terms] and, for the ranker's other tiers, [tier, via]."""
    entry: list = [match.keyword, list(match.fields), list(match.terms)]
    tier = getattr(match, "tier", "exact")
    if tier and tier != "exact":
        entry += [tier, list(getattr(match, "via", ()))]
    return entry


def encode_digest(digest: Digest) -> str:
    """The digest as compact JSON: period, first day, ranked (id, score, matches), trending ids."""
    payload = {
        "v": VERSION,
        "period": digest.period,
        "since": digest.since.isoformat() if digest.since else None,
        "papers": [[r.paper.id, round(r.score, 4), [_match(m) for m in r.matches]] for r in digest.papers],
        "trending": [p.id for p in digest.trending],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def paper_ids(contents: str) -> list[str]:
    """Every paper id a kept digest names (ranked, then trending)."""
    payload = _load(contents)
    return [entry[0] for entry in payload["papers"]] + list(payload["trending"])


def _load(contents: str) -> dict:
    try:
        payload = json.loads(contents)
        if payload.get("v") != VERSION:
            raise ArchiveError(f"kept digest has version {payload.get('v')!r}, not {VERSION}")
        if not isinstance(payload.get("papers"), list) or not isinstance(payload.get("trending"), list):
            raise ArchiveError("kept digest has no paper list")
        return payload
    except (ValueError, AttributeError) as exc:
        raise ArchiveError(f"kept digest is not readable: {exc}") from None


def _rebuild_match(entry: list) -> Match:
    keyword, where, terms, *rest = entry
    extra = {}
    if rest and {"tier", "via"} <= _MATCH_FIELDS:  # the ranker's tiers, once Match carries them
        extra = {"tier": str(rest[0]), "via": tuple(rest[1]) if len(rest) > 1 else ()}
    return Match(str(keyword), tuple(where), tuple(terms), **extra)


def decode_digest(contents: str, subscriber: str, digest_date: date, papers: dict[str, Paper]) -> Digest:
    """The digest again, with the stored papers (a paper no longer stored is left out)."""
    payload = _load(contents)
    ranked = []
    try:
        for paper_id, score, matches in payload["papers"]:
            paper = papers.get(paper_id)
            if paper is None:
                continue
            rebuilt = tuple(_rebuild_match(m) for m in matches)
            terms = [t for m in rebuilt for t in (m.terms or (m.keyword,))]
            ranked.append(RankedPaper(paper, float(score), rebuilt, snippet(paper.abstract, terms)))
        since = date.fromisoformat(payload["since"]) if payload.get("since") else None
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"kept digest is not readable: {exc}") from None
    trending = [papers[p] for p in payload["trending"] if p in papers]
    return Digest(subscriber=subscriber, digest_date=digest_date, papers=ranked, trending=trending,
                  period=str(payload.get("period") or ""), since=since)
