"""Kill runs at random moments, rerun them, count what arrived: ``make soak``.

    python -m flows.bench.soak [--trials 30] [--subscribers 200] [--connections 4]
                               [--latency-ms 5-20] [--signals SIGTERM,SIGINT,SIGKILL]

Each trial is a fresh set of subscribers (every one due, ``send_empty: true``, so each is
owed exactly one digest) run through the real CLI (`flows.bench.stoppable`, which turns
SIGTERM and SIGINT into a graceful stop) against an SMTP sink that waits 5-20 ms before
answering each final dot, as a remote relay does. Once the sink has taken a random number
of the trial's messages, the run's whole process group gets the trial's signal (as a
service manager or a terminal sends it); then the same command runs again to the end.
The sink counts what each recipient got:

* expected: one digest per subscriber; received: what the sink took; missing: subscribers
  who got none; duplicates: copies beyond the first;
* uncertain: digests the killed run left in flight (sent, reply not recorded); the rerun
  resends them with the same Message-ID (PAPERBOY_UNCERTAIN=resend), so after a SIGKILL
  a duplicate is possible for each, at most one per SMTP connection. After SIGTERM and
  SIGINT the run finishes and records every transaction in hand: 0 duplicates, 0 missing.

It starts its own Prefect API server and sink and prints one table; ``--out`` keeps the
JSON. Not part of `make test` (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from flows.bench import corpus
from flows.bench.sink import HOST, SinkProcess

DAY = date(2025, 12, 12)
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}


@dataclass
class Trial:
    number: int
    signal: str
    expected: int
    signalled_after: int = 0  # messages the sink had taken when the signal went out
    killed_exit: int | None = None
    stopped_gracefully: bool = False  # its summary said "stopped early"
    uncertain: int = 0  # left in flight by the signalled run
    rerun_exit: int | None = None
    received: int = 0
    duplicates: int = 0
    missing: int = 0
    seconds: float = 0.0


def write_trial_subscribers(directory: Path, trial: int, count: int, pool: list[str],
                            rng: random.Random) -> list[str]:
    directory.mkdir(parents=True)
    emails = []
    for n in range(count):
        email = f"t{trial:03d}.reader{n:04d}@soak.example.org"
        keywords = json.dumps(rng.sample(pool, rng.randint(2, 5)))
        (directory / f"reader{n:04d}.yaml").write_text(
            f"email: {email}\nname: \"Reader {n}, trial {trial}\"\nkeywords: {keywords}\nsend_empty: true\n",
            encoding="utf-8")
        emails.append(email)
    return emails


def paperboy_env(root: Path, port: int, connections: int, api_url: str, smtp_timeout: float) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_")}
    return inherited | {
        "PAPERBOY_DB_PATH": str(root / "paperboy.db"), "PAPERBOY_SOURCES": "snapshot",
        "PAPERBOY_SNAPSHOT_DIR": str(root / "snapshot"), "PAPERBOY_SNAPSHOT_REPLAY": "false",
        "PAPERBOY_SMTP_HOST": HOST, "PAPERBOY_SMTP_PORT": str(port), "PAPERBOY_SMTP_TLS": "none",
        "PAPERBOY_SMTP_CONNECTIONS": str(connections), "PAPERBOY_SMTP_TIMEOUT": f"{smtp_timeout:g}",
        "PAPERBOY_MAIL_FROM": "Paperboy <paperboy@soak.example.org>",
        "PAPERBOY_PUBLIC_BASE_URL": "https://soak.example.org",
        "PAPERBOY_SECRET_KEY": "soak-signing-key-0123456789-abcdefghijkl",
        "PREFECT_API_URL": api_url,
    }


def run_cli(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.bench.stoppable", "run", "--date", DAY.isoformat()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # its own process group: the signal reaches all of it


def in_flight(db: Path, emails: set[str]) -> int:
    from flows.store import Store

    with Store(db) as store:
        return sum(1 for row in store.uncertain_digests(DAY) if row["subscriber"] in emails)


def one_trial(trial: Trial, root: Path, env: dict[str, str], sink: SinkProcess, pool: list[str],
              rng: random.Random, log: Path) -> Trial:
    started = time.monotonic()
    readers = root / f"trial-{trial.number:03d}"
    emails = write_trial_subscribers(readers, trial.number, trial.expected, pool, rng)
    env = env | {"PAPERBOY_SUBSCRIBERS_DIR": str(readers)}
    before = sink.stats()["messages"]
    target = rng.randint(1, max(1, trial.expected - 1))
    child = run_cli(env)
    try:
        while child.poll() is None and sink.stats()["messages"] - before < target:
            time.sleep(0.002)
        trial.signalled_after = sink.stats()["messages"] - before
        if child.poll() is None:
            os.killpg(child.pid, SIGNALS[trial.signal])
        output, _ = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    trial.killed_exit = child.returncode
    trial.stopped_gracefully = "stopped early" in output
    trial.uncertain = in_flight(root / "paperboy.db", set(emails))
    rerun = run_cli(env)
    rerun_output, _ = rerun.communicate(timeout=600)
    trial.rerun_exit = rerun.returncode
    with log.open("a", encoding="utf-8") as out:
        out.write(f"==== trial {trial.number} {trial.signal} after {trial.signalled_after}\n{output}\n"
                  f"---- rerun\n{rerun_output}\n")
    got = sink.recipients()
    counts = [got.get(email, 0) for email in emails]
    trial.received = sum(counts)
    trial.duplicates = sum(max(0, c - 1) for c in counts)
    trial.missing = sum(1 for c in counts if c == 0)
    trial.seconds = time.monotonic() - started
    return trial


def table(trials: list[Trial]) -> str:
    rows = ["| signal | trials | expected | received | duplicates | missing | uncertain | stopped gracefully |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[Trial]] = defaultdict(list)
    for trial in trials:
        groups[trial.signal].append(trial)
    for name, group in [*groups.items(), ("all", trials)]:
        graceful = "-" if name == "SIGKILL" else f"{sum(t.stopped_gracefully for t in group)}/{len(group)}"
        if name == "all":
            graceful = ""
        rows.append(f"| {name} | {len(group)} | {sum(t.expected for t in group)} | "
                    f"{sum(t.received for t in group)} | {sum(t.duplicates for t in group)} | "
                    f"{sum(t.missing for t in group)} | {sum(t.uncertain for t in group)} | {graceful} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--subscribers", type=int, default=200, help="per trial")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--latency-ms", default="5-20", help="the sink's wait before each final dot")
    parser.add_argument("--signals", default="SIGTERM,SIGINT,SIGKILL")
    parser.add_argument("--smtp-timeout", type=float, default=30.0,
                        help="PAPERBOY_SMTP_TIMEOUT; below the sink latency, every slow reply to a final dot "
                             "would have been retried (a duplicate) before PAPERBOY_SMTP_DATA_TIMEOUT")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--workdir", type=Path, help="keep the database, subscribers and logs here")
    args = parser.parse_args(argv)
    signals = [name.strip().upper() for name in args.signals.split(",") if name.strip()]
    if unknown := [name for name in signals if name not in SIGNALS]:
        parser.error(f"unknown signal(s) {', '.join(unknown)}; use {', '.join(SIGNALS)}")
    rng = random.Random(args.seed)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="paperboy-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    seeds = corpus.load_seeds()
    items = corpus.api_items(seeds, 200, DAY, random.Random(7))
    corpus.write_snapshot(root / "snapshot", DAY, items)
    pool = corpus.vocabulary(items)
    os.environ.update({"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    trials: list[Trial] = []
    log = root / "runs.log"
    try:
        with SinkProcess(latency_ms=args.latency_ms) as sink:
            env = paperboy_env(root, sink.port, args.connections, server.api_url, args.smtp_timeout)
            for number in range(args.trials):
                trial = Trial(number, signals[number % len(signals)], args.subscribers)
                one_trial(trial, root, env, sink, pool, rng, log)
                trials.append(trial)
                print(f"trial {number + 1}/{args.trials} {trial.signal} after {trial.signalled_after}: "
                      f"received {trial.received}/{trial.expected}, duplicates {trial.duplicates}, "
                      f"missing {trial.missing}, uncertain {trial.uncertain}, exits "
                      f"{trial.killed_exit}/{trial.rerun_exit} ({trial.seconds:.1f} s)", file=sys.stderr, flush=True)
    finally:
        server.stop()
    print(f"soak: {len(trials)} trials x {args.subscribers} subscribers, {args.connections} SMTP connections, "
          f"sink latency {args.latency_ms} ms per message, PAPERBOY_SMTP_TIMEOUT {args.smtp_timeout:g} s")
    print(table(trials))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(
        {"options": vars(args) | {"out": str(args.out), "workdir": str(root)},
         "trials": [asdict(t) for t in trials]}, indent=2, default=str), encoding="utf-8")
    print(f"written: {args.out / 'soak.json'}; run logs: {log}")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    graceful_bad = [t for t in trials if t.signal != "SIGKILL" and (t.duplicates or t.missing)]
    kill_bad = [t for t in trials if t.missing or t.duplicates > t.uncertain]
    return 1 if graceful_bad or kill_bad else 0


if __name__ == "__main__":
    sys.exit(main())
