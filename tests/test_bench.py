"""The benchmark harness: its inputs, its sink, the message bytes it measures, and one small
end-to-end run (not timed: the speed goals live in the benchmark's own numbers)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from email import message_from_bytes
from email import policy as email_policy

import aiosmtplib
import pytest

from flows.bench import corpus
from flows.bench.report import LATENCY_TARGETS, TARGETS
from flows.bench.sink import SinkProcess
from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper
from flows.send import STAGES
from flows.render import Renderer
from flows.settings import PROJECT_ROOT, Settings
from flows.sources.huggingface import parse_page
from flows.subscribers import Subscriber, load_all

DAY = date(2025, 12, 12)


def test_inputs_are_seeded_realistic_and_loadable(tmp_path):
    seeds = corpus.load_seeds()
    items = corpus.api_items(seeds, 60, DAY, random.Random(1))
    assert items == corpus.api_items(seeds, 60, DAY, random.Random(1))
    papers, skipped = parse_page(items, DAY)
    assert len(papers) == 60 and skipped == 0
    sentences = set(seeds.sentences)
    assert all(any(s in p.abstract for s in sentences) for p in papers)  # resampled, not invented
    assert max(p.upvotes for p in papers) > 5 * sorted(p.upvotes for p in papers)[30]  # a long tail

    pool = corpus.vocabulary(items, min_df=2)
    assert any(" " in term for term in pool) and any(" " not in term for term in pool)
    corpus.write_subscribers(tmp_path, pool, 25, (3, 5), random.Random(2))
    subscribers, errors = load_all(tmp_path)
    assert errors == [] and len(subscribers) == 25
    assert all(3 <= len(s.keywords) <= 5 and set(s.keywords) <= set(pool) for s in subscribers)


def test_sink_process_counts_messages_and_bytes():
    async def send(port: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            for n in range(3):
                message = b"Subject: x\r\n\r\n" + b"y" * n + b"\r\n"
                await client.sendmail("a@example.org", ["b@example.org"], message)

    with SinkProcess() as sink:
        before = sink.stats()
        assert (before["messages"], before["bytes"]) == (0, 0)
        asyncio.run(send(sink.port))
        stats = sink.stats()
    assert stats["messages"] == 3 and stats["bytes"] >= 3 * len(b"Subject: x\r\n\r\n")
    assert stats["cpu_seconds"] > before["cpu_seconds"] > 0  # the sink's own CPU, for the report


def test_sink_waits_before_each_reply_and_counts_recipients():
    async def send(port: int) -> list[float]:
        waits = []
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            for rcpt in ("a@example.org", "b@example.org", "a@example.org"):
                started = time.perf_counter()
                await client.sendmail("p@example.org", [rcpt], b"Subject: x\r\n\r\nhello\r\n")
                waits.append(time.perf_counter() - started)
        return waits

    with SinkProcess(latency_ms="40-60") as sink:
        waits = asyncio.run(send(sink.port))
        assert sink.recipients() == {"a@example.org": 2, "b@example.org": 1}
    assert min(waits) >= 0.040


def test_wire_bytes_are_the_message_render_message_builds(tmp_path):
    # The pipeline sends render_bytes; the ceiling replays those bytes: they must be the digest.
    settings = Settings(mail_from="Paperboy <paperboy@example.org>", list_id="bench.example.org",
                        db_path=tmp_path / "db.sqlite", secret_key="bench-test-key-0123456789-abcdefghij")
    renderer = Renderer(PROJECT_ROOT / "templates", settings=settings)
    paper = Paper(id="2512.00001", title="Über-effiziente Modelle für RL", abstract="We study RL. " * 40,
                  listed=DAY, authors=("Zoë Müller", "Ada Lovelace"), upvotes=12,
                  url="https://hf.co/papers/1")
    ranked = RankedPaper(paper, 3.0, (Match("RL", ("title", "abstract"), ("RL",)),))
    links = DigestLinks("https://p.example.org/prefs/t", "https://p.example.org/unsubscribe/t",
                        "mailto:paperboy@example.org?subject=unsubscribe")
    now = datetime(2025, 12, 12, 7, tzinfo=timezone.utc)
    for name in ("Ada Lovelace", "Zoë Müller", 'Dr. "Q" O\'Neil'):
        subscriber = Subscriber(email="reader@example.org", name=name, keywords=["RL"])
        digest = Digest(subscriber=subscriber.email, digest_date=DAY, papers=[ranked], trending=[paper])
        raw = renderer.render_bytes(digest, subscriber, links, now=now)
        reference = renderer.render_message(digest, subscriber, links, now=now)
        assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
        wire, built = (message_from_bytes(data, policy=email_policy.default)
                       for data in (raw, reference.as_bytes()))
        assert [(k, str(v)) for k, v in wire.items() if k != "Content-Type"] == \
               [(k, str(v)) for k, v in built.items() if k != "Content-Type"]
        assert [p.get_content() for p in wire.iter_parts()] == [p.get_content() for p in built.iter_parts()]
        assert wire["To"].addresses[0].display_name == name
        assert "Über-effiziente" in wire.get_body(("plain",)).get_content()


@pytest.mark.slow
def test_small_benchmark_run_writes_every_figure(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "flows.bench", "--subscribers", "120", "--papers", "80",
         "--connections", "2", "--premailer-sample", "10", "--dkim", "--sink-latency-ms", "5",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "bench.json").read_text())
    flow, rerun, refs = results["flow"], results["rerun"], results["references"]
    ceiling, m = results["ceiling"], results["metrics"]

    sent = flow["summary"]["sent"]
    assert 100 <= sent <= 120
    assert flow["sink_messages"] == refs["messages"] == ceiling["sent"] == ceiling["sink_messages"] == sent
    assert len(ceiling["runs_seconds"]) == 3 and ceiling["seconds"] == sorted(ceiling["runs_seconds"])[1]
    assert rerun["summary"]["sent"] == 0 and rerun["sink_messages"] == 0
    assert rerun["summary"]["already"] == sent

    assert set(STAGES) <= set(flow["stages"]) and all(v >= 0 for v in flow["stages"].values())
    assert all(flow["stages"][f"{s}_cpu"] <= flow["stages"][s] + 0.01 for s in STAGES if s != "deliver")
    nested = sum(flow["stages"][s] for s in ("index", "rank", "render", "receive", "ledger", "deliver"))
    assert nested == pytest.approx(flow["stages"]["sending"], rel=1e-6)
    assert flow["fetch_store_seconds"] > 0 and flow["load_subscribers_seconds"] > 0
    assert 3 <= flow["task_runs"] <= 100
    assert {"fetch-listings", "load-subscribers", "send-batch"} <= set(flow["task_run_names"])
    assert 50 < m["peak_rss_mb"] < 2000 and results["prefect_server_start_seconds"] > 0
    assert 0 < refs["render_floor"]["median_ms"] and 0 < refs["premailer"]["median_ms"]
    assert m["ceiling_messages_per_second"] > 0 and m["delivery_vs_ceiling"] > 0 and m["render_vs_floor"] > 0
    assert results["options"]["dkim"] and refs["dkim"]["count"] == sent
    assert m["dkim_ms_per_email"] > 0 and m["dkim_vs_render"] > 0
    assert results["machine"]["nproc"] >= 1 and results["machine"]["cpu"]
    assert set(results["background_load"]) == {"server", "flow", "capture", "ceiling", "rerun"}
    assert [t["metric"] for t in results["targets"]] == [metric for _, metric, _, _ in TARGETS + LATENCY_TARGETS]
    assert m["latency_bound_messages_per_second"] == pytest.approx(2 / 0.005)
    assert 0 < m["delivery_vs_latency_bound"] <= 1.05 and m["ledger_ms_per_message"] > 0
    assert all(isinstance(t["met"], bool) for t in results["targets"])

    table = (out / "bench.md").read_text()
    assert "| rank |" in table and "| target | value | limit | met |" in table
    assert "DKIM signing (included)" in table
    assert table in done.stdout
