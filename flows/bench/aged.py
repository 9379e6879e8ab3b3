"""An installation after months of mornings: build it, then time what operators and
subscribers do with it.

    python -m flows.bench.aged build --dir var/aged-90 --days 90
    python -m flows.bench.aged measure --dir var/aged-90 [--paths planning,status,...]

``build`` writes ``--subscribers`` files (a few with notices, suppressed or inactive) and a
ledger as that many daily runs would leave it: per day one ``digests`` row per subscriber
(mostly sent, some skipped, deferred, failed), ``--per-digest`` ``deliveries`` rows per sent
digest, the last PAPERBOY_WEB_VIEW_DAYS of ``digest_views``, ``--papers-per-day`` papers
with the benchmark corpus's text, one ``fetches`` row per day, and some bounces,
suppressions and feedback. The schema is the store's own (``Store`` runs the migrations);
the rows are written by bulk SQL that writes exactly the columns ``record_outcome``,
``record_in_flight``, ``upsert_papers``, ``record_fetch``, ``record_bounce`` and
``record_feedback`` write, day after day in the order runs would, so the B-trees grow as
they do in a real ledger.

``measure`` times each path in a fresh process (median of ``--repeat``, peak RSS of that
process from wait4), against the run date = the day after the history, and prints a table
(also ``<dir>/measure.json``). Compare two or three sizes (1, 3, 10 months) to see how a
path grows with the history.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from flows.bench import corpus as bench_corpus
from flows.store import Store

RUN_DATE = date(2026, 12, 1)  # the run after the history; the history ends the day before
DOMAIN = "example.org"
SECRET = "aged-benchmark-signing-key-0123456789-abcdefgh"


def email(n: int) -> str:
    return f"reader{n:05d}@{DOMAIN}"  # as flows.bench.corpus.subscriber_yaml writes it


# -- build ---------------------------------------------------------------------------------------


def write_subscriber_files(directory: Path, count: int, pool: list[str], rng: random.Random) -> dict:
    """``count`` files as the benchmark writes them; every 50th with a notice (a weekday
    without weekly), every 200th suppressed, every 97th inactive."""
    bench_corpus.write_subscribers(directory, pool, count, (3, 10), rng)
    notices = suppressed = inactive = 0
    for n in range(count):
        path = directory / f"reader{n:05d}.yaml"
        extra = ""
        if n % 50 == 1:
            extra += "weekday: friday\n"
            notices += 1
        if n % 200 == 3:
            text = path.read_text().replace("active: true\n", "active: false\n")
            path.write_text(text + 'suppressed: {date: 2026-10-02, reason: "hard bounce, the address does '
                            'not exist; last: 550 5.1.1 no such user"}\n' + extra)
            suppressed += 1
            continue
        if n % 97 == 5:
            path.write_text(path.read_text().replace("active: true\n", "active: false\n") + extra)
            inactive += 1
            continue
        if extra:
            path.write_text(path.read_text() + extra)
    return {"files": count, "notices": notices, "suppressed": suppressed, "inactive": inactive}


def paper_rows(day: date, count: int, seeds, rng: random.Random, stamp: str) -> list[tuple]:
    """One listing day's papers as upsert_papers stores them (paper_to_row + its columns)."""
    rows = []
    for n, item in enumerate(bench_corpus.api_items(seeds, count, day, rng)):
        paper = item["paper"]
        rows.append((
            f"{day:%y%m%d}.{n:05d}", paper["title"], paper["summary"],
            json.dumps([a["name"] for a in paper["authors"]], ensure_ascii=False), day.isoformat(),
            day.isoformat(), day.isoformat(), paper["upvotes"], item["numComments"], "[]",
            paper["githubRepo"], paper["projectPage"], f"https://huggingface.co/papers/{day:%y%m%d}.{n:05d}",
            '["snapshot"]', "[]", stamp, stamp, None, 0,
        ))
    return rows


PAPER_COLUMNS = ("id, title, abstract, authors, published, listed, first_listed, upvotes, comments, ai_keywords,"
                 " github_repo, project_page, url, sources, categories, first_seen, updated_at, ai_summary,"
                 " github_stars")


def contents_for(day: date, start: int, per_digest: int, papers: int) -> str:
    """A digest_views row as flows.archive.encode_digest writes it (≈ 100 bytes a paper)."""
    entries = [[f"{day:%y%m%d}.{(start + k) % papers:05d}", round(9.5 - k * 0.31, 4),
                [["reinforcement learning", ["title", "abstract"], ["reinforcement", "learning"]]]]
               for k in range(per_digest)]
    return json.dumps({"v": 1, "period": "daily", "since": day.isoformat(), "papers": entries, "trending": []},
                      separators=(",", ":"))


def build(directory: Path, days: int, subscribers: int, per_digest: int, papers_per_day: int,
          web_view_days: int, seed: int = 11) -> dict:
    """The installation in ``directory``: subscribers/, paperboy.db, snapshot/ (the run date)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    seeds = bench_corpus.load_seeds()
    directory.mkdir(parents=True, exist_ok=True)
    run_items = bench_corpus.api_items(seeds, papers_per_day, RUN_DATE, rng)
    for item in run_items:  # ids that no earlier day has
        item["paper"]["id"] = f"{RUN_DATE:%y%m%d}.{item['paper']['id'].split('.')[1]}"
    bench_corpus.write_snapshot(directory / "snapshot", RUN_DATE, run_items)
    files = write_subscriber_files(directory / "subscribers", subscribers,
                                   bench_corpus.vocabulary(run_items, min_df=2), rng)
    db_path = directory / "paperboy.db"
    Store(db_path).close()  # the schema, by the store's migrations
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-3000000")
    conn.execute("CREATE TEMP TABLE subs (idx INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany("INSERT INTO temp.subs VALUES (?, ?)", [(n, email(n)) for n in range(subscribers)])
    conn.execute("CREATE TEMP TABLE ks (k INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO temp.ks VALUES (?)", [(k,) for k in range(per_digest)])
    conn.execute("CREATE TEMP TABLE views (start INTEGER PRIMARY KEY, contents TEXT)")
    first = RUN_DATE - timedelta(days=days)
    for offset in range(days):
        day = first + timedelta(days=offset)
        d = day.isoformat()
        at = f"{d}T07:{offset % 60:02d}:00+00:00"
        micro = f"{d}T07:00:00.{offset:06d}+00:00"
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO papers ({PAPER_COLUMNS}) VALUES ({','.join('?' * 19)})",
                         paper_rows(day, papers_per_day, seeds, rng, micro))
        conn.execute("INSERT INTO fetches VALUES ('snapshot', ?, 'ok', ?, 0, '', ?)", [d, papers_per_day, at])
        # one digest per subscriber: 1 in 20 skipped (nothing new), 1 in 500 deferred, 1 in 2,000 failed
        status = ("CASE WHEN (idx * 31 + :o) % 2000 = 0 THEN 'failed' WHEN (idx * 31 + :o) % 500 = 0 THEN"
                  " 'deferred' WHEN (idx * 31 + :o) % 20 = 0 THEN 'skipped' ELSE 'sent' END")
        conn.execute(
            "INSERT INTO digests (subscriber, digest_date, status, message_id, papers, attempts, error, sent_at,"
            " updated_at, paper_ids, in_flight_at) SELECT email, :d, status,"
            " '<' || :d || '.' || substr(hex(randomblob(8)), 1, 16) || '@bench.example.org>',"
            " CASE status WHEN 'sent' THEN :n ELSE 0 END, CASE status WHEN 'skipped' THEN 0 ELSE 1 END,"
            " CASE status WHEN 'sent' THEN '' WHEN 'skipped' THEN '' ELSE '451 4.3.0 try again later' END,"
            " CASE status WHEN 'sent' THEN :at END, :at, NULL,"
            " CASE WHEN status IN ('sent', 'failed', 'deferred') THEN :at END"
            f" FROM (SELECT idx, email, {status} AS status FROM temp.subs ORDER BY idx)",
            {"d": d, "o": offset, "n": per_digest, "at": at})
        conn.execute(
            "INSERT INTO deliveries (subscriber, paper_id, digest_date, delivered_at)"
            " SELECT s.email, printf('%s.%05d', :prefix, (s.idx * 7 + k.k) % :p), :d, :at"
            f" FROM temp.subs s JOIN temp.ks k WHERE (s.idx * 31 + :o) % 20 != 0 ORDER BY s.idx, k.k",
            {"prefix": f"{day:%y%m%d}", "p": papers_per_day, "d": d, "at": at, "o": offset})
        if offset >= days - web_view_days:
            conn.execute("DELETE FROM temp.views")
            conn.executemany("INSERT INTO temp.views VALUES (?, ?)",
                             [(s, contents_for(day, s, per_digest, papers_per_day)) for s in range(papers_per_day)])
            conn.execute(
                "INSERT INTO digest_views (subscriber, digest_date, contents, sent_at)"
                " SELECT s.email, :d, v.contents, :at FROM temp.subs s JOIN temp.views v"
                " ON v.start = (s.idx * 7) % :p WHERE (s.idx * 31 + :o) % 20 != 0 ORDER BY s.idx",
                {"d": d, "at": at, "p": papers_per_day, "o": offset})
        # a hard bounce now and then (a few a day), from the SMTP reply or a DSN read later
        for n in rng.sample(range(subscribers), 4):
            conn.execute(
                "INSERT OR IGNORE INTO bounces (event, subscriber, digest_date, kind, bad_address, code, status,"
                " source, detail, recorded_at) VALUES (?, ?, ?, 'hard', ?, 550, ?, 'smtp', ?, ?)",
                [f"smtp:{email(n)}:{d}", email(n), d, int(n % 3 == 0), "5.1.1" if n % 3 == 0 else "5.7.1",
                 "RCPT: 550 no such user", at])
        if offset % 7 == 0:
            for n in rng.sample(range(subscribers), 3):
                conn.execute("INSERT INTO suppressions (subscriber, digest_date, reason, suppressed_at)"
                             " VALUES (?, ?, 'hard bounce, the address does not exist', ?)", [email(n), d, at])
        # feedback: one subscriber in ten marks a paper now and then
        conn.executemany(
            "INSERT OR REPLACE INTO feedback (subscriber, paper_id, verdict, created_at) VALUES (?, ?, ?, ?)",
            [(email(n), f"{day:%y%m%d}.{(n * 7) % papers_per_day:05d}", "more" if n % 3 else "less", micro)
             for n in rng.sample(range(0, subscribers, 10), max(1, subscribers // 100))])
        conn.execute("COMMIT")
        if offset % 30 == 29:
            print(f"  built {offset + 1}/{days} days, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    info = {"days": days, "subscribers": files, "per_digest": per_digest, "papers_per_day": papers_per_day,
            "web_view_days": web_view_days, "run_date": RUN_DATE.isoformat(),
            "seconds": round(time.perf_counter() - started, 1), **table_sizes(db_path)}
    (directory / "build.json").write_text(json.dumps(info, indent=1))
    return info


def forget_run_date(directory: Path) -> dict:
    """Put the installation back as it was before a run of RUN_DATE (its digests, deliveries,
    web views, listing and papers, and the related model learned with them), so a daily run
    can be measured again. Deliveries go by primary-key ranges (the run date's paper ids)."""
    conn = sqlite3.connect(directory / "paperboy.db", isolation_level=None)
    day, prefix = RUN_DATE.isoformat(), f"{RUN_DATE:%y%m%d}."
    conn.execute("BEGIN IMMEDIATE")
    gone = {"deliveries": 0}
    oldest = f"{RUN_DATE - timedelta(days=14):%y%m%d}."  # the run's candidates are the last week's papers
    for (subscriber,) in conn.execute("SELECT DISTINCT subscriber FROM digests WHERE digest_date >= ?",
                                      [(RUN_DATE - timedelta(days=1)).isoformat()]).fetchall():
        gone["deliveries"] += conn.execute(
            "DELETE FROM deliveries WHERE subscriber = ? AND paper_id >= ? AND paper_id < ? AND digest_date = ?",
            [subscriber, oldest, prefix[:-1] + "/", day]).rowcount
    gone["digests"] = conn.execute("DELETE FROM digests WHERE digest_date = ?", [day]).rowcount
    gone["digest_views"] = conn.execute("DELETE FROM digest_views WHERE digest_date = ?", [day]).rowcount
    gone["papers"] = conn.execute("DELETE FROM papers WHERE id >= ? AND id < ?", [prefix, prefix[:-1] + "/"]).rowcount
    conn.execute("DELETE FROM fetches WHERE listed >= ?", [day])
    conn.execute("DELETE FROM related_models")
    conn.execute("COMMIT")
    conn.close()
    return gone


def table_sizes(db_path: Path) -> dict:
    conn = sqlite3.connect(db_path)
    rows = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("digests", "deliveries", "digest_views", "papers", "fetches", "bounces", "suppressions",
                      "feedback")}
    conn.close()
    return {"rows": rows, "db_bytes": db_path.stat().st_size}


# -- measure -------------------------------------------------------------------------------------


def environment(directory: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_") and k != "PREFECT_API_URL"}
    env.update({
        "PAPERBOY_DB_PATH": str(directory / "paperboy.db"), "PAPERBOY_SUBSCRIBERS_DIR": str(directory / "subscribers"),
        "PAPERBOY_SOURCES": "snapshot", "PAPERBOY_SNAPSHOT_DIR": str(directory / "snapshot"),
        "PAPERBOY_SNAPSHOT_REPLAY": "false", "PAPERBOY_SMTP_HOST": "127.0.0.1", "PAPERBOY_SMTP_PORT": "2525",
        "PAPERBOY_SMTP_TLS": "none", "PAPERBOY_MAIL_FROM": "Paperboy <paperboy@bench.example.org>",
        "PAPERBOY_PUBLIC_BASE_URL": "https://bench.example.org", "PAPERBOY_SECRET_KEY": SECRET,
        "PREFECT_HOME": str(directory / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1", **extra,
    })
    return env


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MB of that process tree's largest waited process, code, stdout)."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:  # a pipe for stderr too would fill while stdout is read
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=errors, text=True)
        out = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode, out


PY = [sys.executable, "-m"]
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]


def late_subscriber(directory: Path) -> str:
    """An address near the end of the folder's load order (a lookup reads most files)."""
    return email(len(list((directory / "subscribers").glob("*.yaml"))) - 7)


def cli_paths(directory: Path) -> dict[str, list[str]]:
    return {
        "status": [*CLI, "status"],
        "doctor": [*CLI, "doctor"],
        "subscribers list": [*CLI, "subscribers", "list"],
        "subscribers check": [*CLI, "subscribers", "check"],
        "subscribers show": [*CLI, "subscribers", "show", late_subscriber(directory)],
    }


def probe(name: str, directory: Path) -> dict:
    """One in-process path, timed inside this process (imports and setup left out)."""
    from flows.settings import Settings

    settings = Settings()
    return PROBES[name](settings, directory)


def _median_of(repeat: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def probe_planning(settings, directory: Path) -> dict:
    """The daily run's planning of every batch (flows.send.plan_batch), as the run calls it."""
    from flows.corpus import Corpus
    from flows.send import plan_batch
    from flows.subscribers import load_all

    subscribers, _ = load_all(settings.subscribers_dir)
    with Store(settings.db_path) as store:
        first = RUN_DATE - timedelta(days=max(7, settings.recency_days) - 1)
        corpus = Corpus(store.papers_listed(first, RUN_DATE), settings, RUN_DATE)
        size = settings.batch_size

        def plan_all() -> int:
            todo = 0
            for start in range(0, len(subscribers), size):
                todo += len(plan_batch(subscribers[start:start + size], store, corpus).todo)
            return todo

        seconds, todo = _median_of(3, plan_all)
    return {"seconds": seconds, "batches": -(-len(subscribers) // size), "todo": todo,
            "candidates": len(corpus.paper_ids())}


def probe_store(settings, directory: Path) -> dict:
    """Each ledger read a run, `status` or `doctor` makes, timed alone (median of 3)."""
    from datetime import datetime, timezone

    from flows.corpus import Corpus

    found = {}
    day = RUN_DATE
    with Store(settings.db_path) as store:
        first = RUN_DATE - timedelta(days=max(7, settings.recency_days) - 1)
        candidates = Corpus(store.papers_listed(first, RUN_DATE), settings, RUN_DATE).paper_ids()
        batch = [email(n) for n in range(500)]
        now = datetime.now(timezone.utc)
        calls = {
            "settle_in_flight (per batch)": store.settle_in_flight,
            "uncertain_digests(day) (per batch)": lambda: store.uncertain_digests(day),
            "finished_subscribers(day) (per batch)": lambda: store.finished_subscribers(day),
            "delivered_ids(500 x candidates) (per batch)": lambda: store.delivered_ids(batch, candidates),
            "corpus_signature (per run)": store.corpus_signature,
            "all_feedback (per run)": store.all_feedback,
            "relayed_since (per batch with a cap)": lambda: store.relayed_since(now - timedelta(hours=24)),
            "digest_counts(7) (status)": lambda: store.digest_counts(7),
            "uncertain_digests() (status)": store.uncertain_digests,
            "deferred_digests (status)": lambda: store.deferred_digests(day - timedelta(days=7)),
            "stale_in_flight (doctor, x2)": lambda: store.stale_in_flight(now + timedelta(days=1)),
            "future_rows (doctor)": lambda: store.future_rows(day),
            "bounce_counts (bounces)": store.bounce_counts,
            "prune_digest_views (per run)": lambda: store.prune_digest_views(day - timedelta(days=90)),
        }
        for label, call in calls.items():
            found[label] = _median_of(3, call)[0]
    return found


def probe_web(settings, directory: Path) -> dict:
    """The preferences page (GET), a feedback POST and a digest's web view, through the app."""
    from fastapi.testclient import TestClient

    from flows.links import digest_links, make_token
    from flows.web.app import create_app
    from flows.web.security import csrf_token

    who = late_subscriber(directory)
    paper = f"{RUN_DATE - timedelta(days=1):%y%m%d}.00003"
    found = {}
    with TestClient(create_app(settings), base_url=settings.public_base_url) as client:
        key = SECRET
        prefs = make_token(key, who, "prefs")
        client.get(f"/preferences/{prefs}")  # the corpus cache fills (and the related model is learned)
        found["preferences page GET"] = _median_of(3, lambda: _ok(client.get(f"/preferences/{prefs}")))[0]
        url = digest_links(settings, key, who).feedback_link(paper, "more").removeprefix(settings.public_base_url)
        form = {"csrf": csrf_token(key, url.split("/")[2])}  # bound to the link's token
        found["feedback POST"] = _median_of(3, lambda: _ok(client.post(url, data=form, follow_redirects=False),
                                                           303))[0]
        found["unsubscribe page GET"] = _median_of(
            3, lambda: _ok(client.get(f"/unsubscribe/{make_token(key, who, 'unsubscribe')}")))[0]
    return found


def _ok(response, status: int = 200):
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path[:60]}: {response.status_code}")
    return response


def probe_related(settings, directory: Path) -> dict:
    """Learning the related-terms model from every stored paper (once per corpus change)."""
    from flows.corpus import learn_into

    with Store(settings.db_path) as store:
        started = time.perf_counter()
        model = learn_into(store)
        return {"seconds": time.perf_counter() - started, "papers": model.documents}


def probe_rerun_planning(settings, directory: Path) -> dict:
    """Planning a rerun of the day, every digest already sent (rows added, then removed,
    unless a run has sent the day already)."""
    with Store(settings.db_path) as store:
        if store.digest_subscribers(RUN_DATE):
            return probe_planning(settings, directory)
        with store.db.conn:
            store.db.execute(
                "INSERT INTO digests (subscriber, digest_date, status, message_id, papers, attempts, error, sent_at,"
                " updated_at) SELECT subscriber, ?, 'sent', message_id, papers, 1, '', sent_at, updated_at"
                " FROM digests WHERE digest_date = ?", [RUN_DATE.isoformat(), (RUN_DATE - timedelta(days=1)).isoformat()])
    try:
        return probe_planning(settings, directory)
    finally:
        with Store(settings.db_path) as store, store.db.conn:
            store.db.execute("DELETE FROM digests WHERE digest_date = ?", [RUN_DATE.isoformat()])


def daily_run(directory: Path, env: dict[str, str], repeat: int) -> dict:
    """`paperboy run --date RUN_DATE` against the benchmark's SMTP sink (its own process),
    then ``repeat`` reruns of the same day. The first run adds the day to the ledger."""
    from flows.bench.sink import SinkProcess

    found: dict = {}
    with SinkProcess() as sink:
        env = {**env, "PAPERBOY_SMTP_PORT": str(sink.port), "PAPERBOY_SMTP_CONNECTIONS": "4"}
        argv = [*CLI, "run", "--date", RUN_DATE.isoformat()]
        wall, rss, code, out = run_child(argv, env)
        found["daily run"] = {"seconds": round(wall, 1), "peak_rss_mb": round(rss, 1), "exit": code,
                              "summary": out.strip().splitlines()[-1:] if out.strip() else [],
                              "sink": sink.stats()}
        runs = [run_child(argv, env) for _ in range(repeat)]
        found["rerun of the day"] = {"seconds": round(statistics.median(r[0] for r in runs), 2),
                                     "all": [round(r[0], 2) for r in runs],
                                     "peak_rss_mb": round(max(r[1] for r in runs), 1), "exit": runs[-1][2],
                                     "sink": sink.stats()}
    return found


DSN_TEMPLATE = Path(__file__).resolve().parents[2] / "tests" / "data" / "dsn" / "postfix.eml"
BOUNCE_ADDRESS = "bounces@bench.example.org"


def bounces_run(directory: Path, env: dict[str, str], count: int) -> dict:
    """`paperboy bounces --maildir` over ``count`` DSNs (Postfix's, 5.1.1) of digests of the
    last 30 days, each for another subscriber: every one is suppressed. The subscriber
    files are put back afterwards (the ledger keeps the bounces and suppressions)."""
    import shutil

    from flows.verp import mac

    maildir = directory / "bounce-maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    template = DSN_TEMPLATE.read_text(encoding="utf-8")
    files = len(list((directory / "subscribers").glob("*.yaml")))
    rng = random.Random(5)
    for k, n in enumerate(rng.sample(range(files), min(count, files))):
        day = RUN_DATE - timedelta(days=1 + k % 30)
        local, _, domain = BOUNCE_ADDRESS.rpartition("@")
        verp = f"{local}+{day:%Y%m%d}.{mac(SECRET, email(n), day)}@{domain}"
        text = template.replace("{verp}", verp).replace("{rcpt}", email(n)).replace(
            "{message_id}", f"<{day}.{n}@bench.example.org>")
        (maildir / "new" / f"1749798131.M{k}P1.bench").write_bytes(text.replace("\n", "\r\n").encode())
    backup = directory / "subscribers.before-bounces"
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(directory / "subscribers", backup)
    try:
        wall, rss, code, out = run_child([*CLI, "bounces", "--maildir", str(maildir)],
                                         {**env, "PAPERBOY_BOUNCE_ADDRESS": BOUNCE_ADDRESS})
    finally:
        shutil.rmtree(directory / "subscribers")
        backup.rename(directory / "subscribers")
    return {"seconds": round(wall, 2), "peak_rss_mb": round(rss, 1), "exit": code, "dsns": count,
            "said": out.strip().splitlines()[-1:] if out.strip() else []}


PROBES = {"planning": probe_planning, "rerun-planning": probe_rerun_planning, "store": probe_store, "web": probe_web, "related": probe_related}


def measure(directory: Path, paths: list[str], repeat: int) -> dict:
    results: dict[str, dict] = {"load": os.getloadavg()[0]}
    env = environment(directory)
    for name in paths:
        if name.startswith("bounces"):  # "bounces" or "bounces:N" (DSNs)
            results[name] = bounces_run(directory, env, int(name.partition(":")[2] or 1000))
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
            continue
        if name == "run":
            results.update(daily_run(directory, env, repeat))
            print(f"run: {json.dumps({k: results[k] for k in ('daily run', 'rerun of the day')})}", file=sys.stderr)
            continue
        if name in PROBES:
            wall, rss, code, out = run_child([*PY, "flows.bench.aged", "probe", name, "--dir", str(directory)], env)
            if code != 0:
                results[name] = {"error": f"exit {code}"}
                continue
            results[name] = {"result": json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": round(rss, 1),
                             "process_seconds": round(wall, 2)}
        else:
            argv = cli_paths(directory)[name]
            runs = [run_child(argv, env) for _ in range(repeat)]
            results[name] = {"seconds": round(statistics.median(r[0] for r in runs), 3),
                             "all": [round(r[0], 3) for r in runs],
                             "peak_rss_mb": round(max(r[1] for r in runs), 1), "exit": runs[-1][2]}
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    results["load_after"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.bench.aged", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build an aged installation")
    b.add_argument("--dir", type=Path, required=True)
    b.add_argument("--days", type=int, default=90)
    b.add_argument("--subscribers", type=int, default=10_000)
    b.add_argument("--per-digest", type=int, default=20)
    b.add_argument("--papers-per-day", type=int, default=150)
    b.add_argument("--web-view-days", type=int, default=90)
    m = sub.add_parser("measure", help="time every path on a built installation")
    m.add_argument("--dir", type=Path, required=True)
    m.add_argument("--paths", default="planning,store,web,status,doctor,subscribers list,subscribers check,"
                   "subscribers show")
    m.add_argument("--repeat", type=int, default=3)
    f = sub.add_parser("forget-run", help="undo a run of the run date, to measure the daily run again")
    f.add_argument("--dir", type=Path, required=True)
    p = sub.add_parser("probe", help="(internal) one in-process path, JSON on stdout")
    p.add_argument("name", choices=sorted(PROBES))
    p.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "forget-run":
        print(json.dumps(forget_run_date(args.dir)))
        return 0
    if args.command == "probe":
        print(json.dumps(probe(args.name, args.dir)))
        return 0
    if args.command == "measure":
        results = measure(args.dir, [p.strip() for p in args.paths.split(",") if p.strip()], args.repeat)
        build_info = json.loads((args.dir / "build.json").read_text()) if (args.dir / "build.json").exists() else {}
        (args.dir / "measure.json").write_text(json.dumps({"build": build_info, **results}, indent=1))
        print(json.dumps(results, indent=1))
        return 0
    if args.command == "build":
        print(json.dumps(build(args.dir, args.days, args.subscribers, args.per_digest, args.papers_per_day,
                               args.web_view_days), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
