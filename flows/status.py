"""`paperboy status`: what the ledger says about recent runs, for an operator at a terminal.

Takes the store, the subscribers and the day it is; gives text: the last digest dates with
their counts per status and when they were written, today's counts, every digest whose
fate is unknown (uncertain or still in flight), the deferred ones (transient failures, the
daily cap) of the last week, the messages counted against PAPERBOY_DAILY_CAP, and the
suppressed subscribers (those whose file says ``suppressed:``). Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from flows.settings import Settings
from flows.store import Store
from flows.subscribers import Subscriber

STATUSES = ("sent", "skipped", "failed", "deferred", "uncertain", "in_flight")
SHOWN = 20  # rows listed per section before "… and N more"


def status_report(store: Store, settings: Settings, subscribers: Sequence[Subscriber], today: date,
                  *, runs: int = 7) -> str:
    lines: list[str] = []
    counts = store.digest_counts(runs)
    by_date: dict[str, dict[str, int]] = defaultdict(dict)
    spans: dict[str, tuple[str, str]] = {}
    for row in counts:
        by_date[row["digest_date"]][row["status"]] = row["digests"]
        first, last = spans.get(row["digest_date"], (row["first"], row["last"]))
        spans[row["digest_date"]] = (min(first, row["first"]), max(last, row["last"]))
    lines.append(f"Last {runs} digest dates (counts per status; when the ledger was written):")
    if not by_date:
        lines.append("  none yet: no run has sent anything")
    for day, statuses in by_date.items():
        first, last = spans[day]
        lines.append(f"  {day}: {_counts(statuses)}   [{_time(first)} → {_time(last)}]")
    lines.append(f"Today ({today}): {_counts(by_date.get(today.isoformat(), {})) or 'nothing yet'}")

    uncertain = store.uncertain_digests()
    lines.append(f"Uncertain (sent, the server's reply never recorded): {len(uncertain)}"
                 + (f" — the next run will {'send them again with the same Message-ID' if settings.uncertain == 'resend' else 'not send them again'}"
                    f" (PAPERBOY_UNCERTAIN={settings.uncertain})" if uncertain else ""))
    lines += _listed(f"  {r['digest_date']} {r['subscriber']} {r['message_id']}: "
                     f"{'in flight since ' + _time(r['in_flight_at']) if r['status'] == 'in_flight' else r['error']}"
                     for r in uncertain)

    deferred = store.deferred_digests(today - timedelta(days=runs))
    lines.append(f"Deferred in the last {runs} days (tried again by a rerun of that date): {len(deferred)}")
    lines += _listed(f"  {r['digest_date']} {r['subscriber']}: {r['error']}" for r in deferred)

    if settings.daily_cap is not None:
        used = store.relayed_since(datetime.now(UTC) - timedelta(hours=24))
        lines.append(f"Daily cap: {used} of {settings.daily_cap} messages in the last 24 hours "
                     "(PAPERBOY_DAILY_CAP)")
    suppressed = [(s.email, f"since {why.date.isoformat()}: {why.reason}")
                  for s in subscribers if (why := getattr(s, "suppressed", None))]
    lines.append(f"Suppressed subscribers: {len(suppressed)}")
    lines += _listed(f"  {email}: {reason}" for email, reason in suppressed)
    return "\n".join(lines)


def _counts(statuses: dict[str, int]) -> str:
    ordered = [s for s in STATUSES if s in statuses] + sorted(set(statuses) - set(STATUSES))
    return ", ".join(f"{s.replace('_', ' ')} {statuses[s]}" for s in ordered)


def _time(stamp: str | None) -> str:
    return (stamp or "?").replace("T", " ").removesuffix("+00:00")


def _listed(lines) -> list[str]:
    lines = list(lines)
    return lines[:SHOWN] + ([f"  … and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else [])
