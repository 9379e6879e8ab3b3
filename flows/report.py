"""The end-of-run summary: one line for the terminal, a markdown table for Prefect."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from flows.deliver import HELD
from flows.fetch import FetchReport
from flows.refusals import advice, quoted, sender_problem, status_in
from flows.send import BatchReport


@dataclass
class RunSummary:
    digest_date: date
    dry_run: bool
    fetch: FetchReport
    batch: BatchReport
    subscriber_errors: list[str] = field(default_factory=list)
    candidates: int = 0
    sender_domains: str = ""  # the From domain (and the envelope sender's): what to check, when refused

    def line(self) -> str:
        b, f = self.batch, self.fetch
        verb = "would send" if self.dry_run else "sent"
        sent = len(b.previews) if self.dry_run else b.sent
        parts = [
            f"{self.digest_date}: fetched {f.papers_fetched} papers ({f.papers_new} new) "
            f"from {len(f.dates_fetched)} listing dates{_malformed(f)}",
            f"{b.considered} subscribers",
            f"{verb} {sent}",
            f"skipped {b.skipped} (nothing new)",
            f"already sent {b.already}",
            f"failed {len(b.failed)}",
        ]
        if refused := sender_refusals(b, self.sender_domains):
            parts.append(refused)
        if b.deferred:
            parts.append(f"deferred {len(b.deferred)} (will retry on rerun)")
        if b.uncertain:
            parts.append(f"uncertain {len(b.uncertain)} (sent, no reply seen)")
        if b.stopped:
            parts.append(f"stopped early ({b.stopped}): {b.left} left for the next run")
        if b.not_due:
            parts.append(f"not due {b.not_due}")
        if f.dates_failed:
            parts.append(f"{len(f.dates_failed)} listing dates failed")
        if self.subscriber_errors:
            parts.append(f"{len(self.subscriber_errors)} broken subscriber files")
        return "; ".join(parts)

    def problems(self) -> list[str]:
        lines = [f"failed {email}: {why}" for email, why in sorted(self.batch.failed.items())]
        lines += [f"deferred {email}: {why}" for email, why in sorted(self.batch.deferred.items())]
        lines += [f"uncertain {email}: {why}" for email, why in sorted(self.batch.uncertain.items())]
        lines += [f"fetch {key}: {why}" for key, why in sorted(self.fetch.dates_failed.items())]
        lines += [f"subscriber file {err}" for err in self.subscriber_errors]
        return lines

    def markdown(self) -> str:
        b, f = self.batch, self.fetch
        rows = [
            ("digest date", str(self.digest_date) + (" (dry run)" if self.dry_run else "")),
            ("listing dates fetched", ", ".join(f.dates_fetched) or "none"),
            ("papers fetched / new", f"{f.papers_fetched} / {f.papers_new}"),
            ("malformed items skipped", str(f.items_skipped)),
            ("candidate papers", str(self.candidates)),
            ("subscribers", str(b.considered)),
            ("sent" if not self.dry_run else "would send", str(len(b.previews) if self.dry_run else b.sent)),
            ("skipped (nothing new)", str(b.skipped)),
            ("already sent for this date", str(b.already)),
            ("not due (weekly / inactive)", str(b.not_due)),
            ("failed", str(len(b.failed))),
            ("deferred (transient, retried on rerun)", str(len(b.deferred))),
            ("refused as a sender problem (not counted as bounces)",
             _md(sender_refusals(b, self.sender_domains) or "0")),
            ("uncertain (sent, no reply seen; PAPERBOY_UNCERTAIN)", str(len(b.uncertain))),
        ]
        if b.stopped:
            rows.append(("stopped early", f"{b.stopped}: {b.left} left for the next run"))
        if b.broken:
            rows.append(("stopped: the relay refused every message", _md(b.broken)))
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        problems = self.problems()
        if problems:
            table += "\n\n**Problems**\n\n" + "\n".join(f"- {_md(p)}" for p in problems)
        return f"# Paperboy digest {self.digest_date}\n\n{table}\n"

    def as_dict(self) -> dict:
        b, f = self.batch, self.fetch
        return {
            "digest_date": self.digest_date.isoformat(), "dry_run": self.dry_run,
            "dates_fetched": f.dates_fetched, "dates_failed": f.dates_failed,
            "papers_fetched": f.papers_fetched, "papers_new": f.papers_new,
            "items_skipped": f.items_skipped, "candidates": self.candidates,
            "subscribers": b.considered, "sent": b.sent, "would_send": dict(b.previews),
            "skipped": b.skipped, "already": b.already, "not_due": b.not_due,
            "failed": dict(b.failed), "deferred": dict(b.deferred),
            "uncertain": dict(b.uncertain), "stopped": b.stopped, "left": b.left, "relay_broken": b.broken,
            "subscriber_errors": self.subscriber_errors, "line": self.line(),
        }


_REPLY_CODE = re.compile(r"^5\d\d\b")


def sender_refusals(batch: BatchReport, domains: str) -> str:
    """One part of the summary line for the digests the receiving servers refused as a
    sender problem (flows/refusals.py) and those held back untried because their domain
    kept refusing us (flows/deliver.py), with what to check; "" when there were none."""
    problems: Counter[str] = Counter()
    replies: dict[str, str] = {}
    for reason in batch.failed.values():
        if _REPLY_CODE.match(reason) and (problem := sender_problem(status_in(reason), reason)):
            problems[problem] += 1
            replies.setdefault(problem, reason)
    held = [reason for reason in batch.deferred.values() if reason.startswith(HELD)]
    if not problems and not held:
        return ""
    if problems:
        problem, _ = problems.most_common(1)[0]
        text = (f"{sum(problems.values())} digests refused by the receiving servers as a sender problem "
                f"({quoted(replies[problem], 100)})")
    else:
        problem, text = "", "no digest refused"
    if held:
        domains_held = sorted({reason.split(":", 1)[1].split()[0] for reason in held})
        text += f", {len(held)} more held back untried at {', '.join(domains_held)} (a rerun tries them)"
    return f"{text}: {advice(problem, domains)}; nobody was suppressed for these"


def _malformed(f: FetchReport) -> str:
    """Items the sources skipped as malformed, for the summary line (nothing when none)."""
    return f" ({f.items_skipped} malformed items skipped)" if f.items_skipped else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class BackfillSummary:
    start: date
    end: date
    fetch: FetchReport
    batch: BatchReport | None = None
    subscriber_errors: list[str] = field(default_factory=list)
    sender_domains: str = ""

    def line(self) -> str:
        f = self.fetch
        text = (f"backfill {self.start} → {self.end}: fetched {len(f.dates_fetched)} dates, "
                f"{f.papers_fetched} papers ({f.papers_new} new){_malformed(f)}, {len(f.dates_failed)} dates failed")
        if self.batch is not None:
            b = self.batch
            text += (f"; catch-up digests: sent {b.sent}, skipped {b.skipped} (nothing new), "
                     f"already sent {b.already}, failed {len(b.failed)}")
            if b.deferred:
                text += f", deferred {len(b.deferred)} (will retry on rerun)"
            if refused := sender_refusals(b, self.sender_domains):
                text += f"; {refused}"
        if self.subscriber_errors:
            text += f"; {len(self.subscriber_errors)} broken subscriber files"
        return text

    def markdown(self) -> str:
        f = self.fetch
        lines = [f"# Paperboy backfill {self.start} → {self.end}", "", "| | |", "|---|---|",
                 f"| dates fetched | {len(f.dates_fetched)} |",
                 f"| papers fetched / new | {f.papers_fetched} / {f.papers_new} |",
                 f"| dates failed | {len(f.dates_failed)} |"]
        if self.batch is not None:
            lines += [f"| catch-up digests sent | {self.batch.sent} |",
                      f"| failed | {len(self.batch.failed)} |"]
        if f.dates_failed:
            lines += ["", "**Failed dates**", ""]
            lines += [f"- {_md(k)}: {_md(v)}" for k, v in sorted(f.dates_failed.items())]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        f, b = self.fetch, self.batch
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "dates_fetched": f.dates_fetched, "dates_failed": f.dates_failed,
            "papers_fetched": f.papers_fetched, "papers_new": f.papers_new,
            "sent": b.sent if b else 0, "failed": dict(b.failed) if b else {},
            "deferred": dict(b.deferred) if b else {}, "subscriber_errors": self.subscriber_errors,
            "relay_broken": b.broken if b else "",
            "line": self.line(),
        }
