"""`paperboy status`: what the ledger says about recent runs, for an operator at a terminal.

Takes the store, the subscribers and the day it is; gives text: the last digest dates with
their counts per status and when they were written, today's counts, every digest whose
fate is unknown (uncertain or still in flight), the deferred ones (transient failures, the
daily cap) of the last week, the messages counted against PAPERBOY_DAILY_CAP, the bounces
of the last week (the addresses' apart from the refusals of the sender, flows/refusals.py,
which are never counted), and the suppressed subscribers (those whose file says
``suppressed:``). Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from flows.bounces import bounce_reply
from flows.refusals import advice, quoted, sender_domains, sender_problem, status_in
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
    lines += _bounces(store, settings, runs)
    suppressed = [(s.email, f"since {why.date.isoformat()}: {why.reason}")
                  for s in subscribers if (why := getattr(s, "suppressed", None))]
    lines.append(f"Suppressed subscribers: {len(suppressed)}")
    lines += _listed(f"  {email}: {_suppressed_for(email, reason)}" for email, reason in suppressed)
    return "\n".join(lines)


def _bounces(store: Store, settings: Settings, days: int) -> list[str]:
    """The last ``days`` of bounces: the addresses' (hard, soft) in one line, then the
    refusals of the sender, which hit everybody at a provider and count towards nobody's
    suppression, grouped by kind of problem with the last reply and what to check."""
    rows = store.bounces_since(datetime.now(UTC) - timedelta(days=days))
    hard = [r for r in rows if r["kind"] == "hard"]
    soft = sum(r["kind"] == "soft" for r in rows)
    people = len({r["subscriber"] for r in hard})
    lines = [f"Address bounces in the last {days} days: {len(hard)} hard ({people} subscriber"
             f"{'' if people == 1 else 's'}), {soft} soft"]
    refused = [r for r in rows if r["kind"] == "sender"]
    domains = {r["subscriber"].rpartition("@")[2] for r in refused}
    lines.append(f"Refused as a sender problem in the last {days} days (not counted towards suppression): "
                 + (f"{len(refused)} digest{'' if len(refused) == 1 else 's'} at {len(domains)} domain"
                    f"{'' if len(domains) == 1 else 's'}" if refused else "none"))
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in refused:
        groups[sender_problem(row["status"] or "", _reply(row)) or "policy"].append(row)
    where = sender_domains(settings.from_domain, settings.bounce_address)
    for problem, group in sorted(groups.items(), key=lambda item: -len(item[1])):
        last = group[-1]
        at = ", ".join(sorted({r["subscriber"].rpartition("@")[2] for r in group})[:5])
        lines.append(f"  {_reply(last)} ({len(group)} digest{'' if len(group) == 1 else 's'} at {at}; last "
                     f"{_time(last['recorded_at'])}): {advice(problem, where)}")
    return lines


def _reply(row: dict) -> str:
    """The server's reply a bounce row keeps, as the summaries quote it."""
    return quoted(bounce_reply(row)) or quoted(row["detail"] or "")


def _suppressed_for(email: str, reason: str) -> str:
    """A suppression's reason, with a pointer when its last refusal reads as a refusal of the
    sender (recorded so by a version before flows/refusals.py): resuming them is safe."""
    reply = reason.partition("last: ")[2]
    if reply and sender_problem(status_in(reply), reply):
        reason += (" (suppressed by an earlier version for what reads as a refusal of the sender: "
                   f"`paperboy subscribers set {email} --active` resumes them)")
    return reason


def _counts(statuses: dict[str, int]) -> str:
    ordered = [s for s in STATUSES if s in statuses] + sorted(set(statuses) - set(STATUSES))
    return ", ".join(f"{s.replace('_', ' ')} {statuses[s]}" for s in ordered)


def _time(stamp: str | None) -> str:
    return (stamp or "?").replace("T", " ").removesuffix("+00:00")


def _listed(lines) -> list[str]:
    lines = list(lines)
    return lines[:SHOWN] + ([f"  … and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else [])
