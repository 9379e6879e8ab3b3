"""Runs the benchmark: inputs, Prefect server, sink, the measured flow, references, rerun.

Every measured piece runs in a fresh process of its own (`flowrun`, `capture`, `blast`),
so peak RSS belongs to what is measured and each starts cold, as a cron-started run does.
The SMTP sink is one more process (`sink`), and Prefect's temporary API server another,
started first and timed on its own.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil

from flows.bench import corpus
from flows.bench.report import evaluate, machine, markdown
from flows.bench.sink import HOST, SinkProcess

DAY = date(2025, 12, 12)  # the listing day every generated paper is on (a Friday)
SENDER = "Paperboy <paperboy@bench.example.org>"
TASK_RUN_WAIT = 20.0  # seconds to wait for the API to have recorded every task run


class BenchError(Exception):
    """A step of the benchmark failed; the message says which."""


@dataclass
class Options:
    subscribers: int = 10_000
    papers: int = 2_000
    keywords: tuple[int, int] = (3, 10)
    connections: int = 4
    out: Path = Path("bench-results")
    seed: int = 7
    batch_size: int | None = None  # None: the settings default
    premailer_sample: int = 300
    workdir: Path | None = None  # None: a temporary directory, removed afterwards
    render_processes: int | None = None  # None: the settings default
    ceiling_runs: int = 3  # the ceiling is the median of this many blasts
    dkim: bool = False  # DKIM-sign every digest (a fresh 2048-bit key in the workspace)
    sink_latency_ms: float = 0.0  # the sink waits this long before answering each final dot


@dataclass
class Workspace:
    root: Path

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot"

    @property
    def subscribers(self) -> Path:
        return self.root / "subscribers"

    @property
    def db(self) -> Path:
        return self.root / "paperboy.db"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def messages(self) -> Path:
        return self.root / "messages.bin"


def generate(options: Options, space: Workspace) -> dict:
    """The seeded inputs: one listing day of ``papers`` and ``subscribers`` YAML files."""
    started = time.perf_counter()
    rng = random.Random(options.seed)
    items = corpus.api_items(corpus.load_seeds(), options.papers, DAY, rng)
    corpus.write_snapshot(space.snapshot, DAY, items)
    pool = corpus.vocabulary(items)
    corpus.write_subscribers(space.subscribers, pool, options.subscribers, options.keywords, rng)
    return {"seconds": time.perf_counter() - started, "vocabulary": len(pool)}


def paperboy_env(options: Options, space: Workspace, port: int) -> dict[str, str]:
    env = {
        "PAPERBOY_DB_PATH": str(space.db), "PAPERBOY_SUBSCRIBERS_DIR": str(space.subscribers),
        "PAPERBOY_SOURCES": "snapshot", "PAPERBOY_SNAPSHOT_DIR": str(space.snapshot),
        "PAPERBOY_SNAPSHOT_REPLAY": "false", "PAPERBOY_SMTP_HOST": HOST,
        "PAPERBOY_SMTP_PORT": str(port), "PAPERBOY_SMTP_TLS": "none",
        "PAPERBOY_SMTP_CONNECTIONS": str(options.connections), "PAPERBOY_MAIL_FROM": SENDER,
        "PAPERBOY_LIST_ID": "bench.example.org", "PAPERBOY_PUBLIC_BASE_URL": "https://bench.example.org",
        "PAPERBOY_SECRET_KEY": "benchmark-signing-key-0123456789-abcdefgh", "PAPERBOY_TASK_RUNNER": "thread",
    }
    if options.batch_size:
        env["PAPERBOY_BATCH_SIZE"] = str(options.batch_size)
    if options.render_processes is not None:
        env["PAPERBOY_RENDER_PROCESSES"] = str(options.render_processes)
    if options.dkim:
        env["PAPERBOY_DKIM_KEY_FILE"] = str(dkim_key(space))
    return env


def dkim_key(space: Workspace) -> Path:
    from flows.dkim import generate_key

    path = space.root / "dkim" / "bench.pem"
    if not path.exists():
        generate_key(path)
    return path


class LoadMeter:
    """CPU time the rest of the machine used while a phase ran (other users' jobs make these
    2-core machines noisy): all CPU busy time, minus this process, its finished children,
    and the long-lived sink and server processes."""

    def __init__(self) -> None:
        self.watched: list[psutil.Process] = []
        self.phases: dict[str, dict[str, float]] = {}

    def watch(self, pid: int) -> None:
        self.watched.append(psutil.Process(pid))

    def _ours(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        for process in self.watched:
            with suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    @staticmethod
    def _busy() -> tuple[float, float]:
        """(CPU seconds busy, CPU seconds stolen by the hypervisor), all CPUs."""
        times = psutil.cpu_times()._asdict()
        idle = sum(times.get(name, 0.0) for name in ("idle", "iowait", "steal", "guest", "guest_nice"))
        return sum(times.values()) - idle, times.get("steal", 0.0)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        (busy, steal), ours, started = self._busy(), self._ours(), time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - started
            busy_now, steal_now = self._busy()
            other = max(0.0, (busy_now - busy) - (self._ours() - ours))
            self.phases[name] = {"seconds": wall, "other_cpu_seconds": other,
                                 "other_cores": other / wall if wall else 0.0,
                                 "steal_cores": (steal_now - steal) / wall if wall else 0.0}


def child(module: str, args: list[str], env: dict[str, str], result: Path) -> tuple[dict, float]:
    """Run ``python -m module args`` to completion; its JSON result and its wall time."""
    # Only the benchmark's own settings: PAPERBOY_* of the calling shell would change the run.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args, "--result", str(result)],
                          env=inherited | env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{module} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(result.read_text(encoding="utf-8")), seconds


def task_runs(api_url: str, flow_run_id: str) -> list[dict]:
    """The flow run's task runs as the API has them, once all have finished: Prefect records
    task runs from events, which reach the server a moment after the flow returns."""
    import httpx

    deadline = time.monotonic() + TASK_RUN_WAIT
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
    runs: list[dict] = []
    while time.monotonic() < deadline:
        response = httpx.post(f"{api_url}/task_runs/filter", json=body, timeout=30)
        response.raise_for_status()
        runs = response.json()
        if runs and all(run.get("state_type") in ("COMPLETED", "FAILED", "CRASHED") for run in runs):
            time.sleep(0.5)  # late events: the count must hold still
            again = httpx.post(f"{api_url}/task_runs/filter", json=body, timeout=30).json()
            if len(again) == len(runs):
                return again
        time.sleep(0.5)
    return runs


def task_seconds(runs: list[dict], name: str) -> float:
    return sum(run.get("total_run_time") or 0.0 for run in runs if run["name"].startswith(name))


def run_flow(env: dict[str, str], space: Workspace, sink: SinkProcess, api_url: str, label: str) -> dict:
    before = sink.stats()
    result, wall = child("flows.bench.flowrun", ["--date", DAY.isoformat()], env,
                         space.root / f"{label}.json")
    after = sink.stats()
    runs = task_runs(api_url, result["flow_run_id"])
    return {
        **result, "process_seconds": wall, "task_runs": len(runs),
        "task_run_names": sorted({run["name"].rsplit("-", 1)[0] for run in runs}),
        "fetch_store_seconds": task_seconds(runs, "fetch-listings"),
        "load_subscribers_seconds": task_seconds(runs, "load-subscribers"),
        "sink_messages": after["messages"] - before["messages"],
        "sink_bytes": after["bytes"] - before["bytes"],
        "sink_cpu_seconds": after.get("cpu_seconds", 0.0) - before.get("cpu_seconds", 0.0),
    }


def run(options: Options) -> dict:
    """The whole benchmark; returns the results (also written to ``options.out``)."""
    root = options.workdir or Path(tempfile.mkdtemp(prefix="paperboy-bench-"))
    space = Workspace(root)
    space.root.mkdir(parents=True, exist_ok=True)
    try:
        return _run(options, space)
    finally:
        if options.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _run(options: Options, space: Workspace) -> dict:
    say("generating %d papers and %d subscribers in %s", options.papers, options.subscribers, space.root)
    inputs = generate(options, space)
    # Prefect reads these when it is imported: set them first, for this process and children.
    os.environ.update({"PREFECT_HOME": str(space.prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    from prefect.server.api.server import SubprocessASGIServer

    meter = LoadMeter()
    server = SubprocessASGIServer()
    with meter.phase("server"):
        server.start(timeout=120)
        assert server.server_process is not None
        meter.watch(server.server_process.pid)  # its CPU since it started counts as ours
    say("Prefect API up in %.1f s at %s", meter.phases["server"]["seconds"], server.api_url)
    try:
        with SinkProcess(latency_ms=f"{options.sink_latency_ms:g}") as sink:
            assert sink.process is not None
            meter.watch(sink.process.pid)
            env = paperboy_env(options, space, sink.port) | {"PREFECT_API_URL": server.api_url}
            measured = _measure(options, space, env, sink, server.api_url, meter)
    finally:
        server.stop()
    results = {
        "options": {"subscribers": options.subscribers, "papers": options.papers,
                    "keywords": list(options.keywords), "connections": options.connections,
                    "batch_size": int(env.get("PAPERBOY_BATCH_SIZE") or _setting_default("batch_size")),
                    "render_processes": int(env.get("PAPERBOY_RENDER_PROCESSES")
                                            or _setting_default("render_processes")),
                    "dkim": options.dkim, "seed": options.seed, "sink_latency_ms": options.sink_latency_ms},
        "machine": machine(), "inputs": inputs,
        "prefect_server_start_seconds": meter.phases["server"]["seconds"],
        **measured, "background_load": meter.phases,
    }
    results["metrics"] = metrics(results)
    results["targets"] = evaluate(results)
    write(results, options.out)
    return results


def _measure(options: Options, space: Workspace, env: dict[str, str], sink: SinkProcess,
             api_url: str, meter: LoadMeter) -> dict:
    """The flow, the references (same digests, same sink, same connections), the rerun."""
    say("running the daily flow (%d connections)", options.connections)
    with meter.phase("flow"):
        flow = run_flow(env, space, sink, api_url, "flow")
    say("flow: %.1f s, %d sent", flow["process_seconds"], flow["summary"]["sent"])
    say("capturing the same messages and timing the render references")
    with meter.phase("capture"):
        references, _ = child("flows.bench.capture", [
            "--date", DAY.isoformat(), "--messages", str(space.messages),
            "--premailer-sample", str(options.premailer_sample)], env, space.root / "capture.json")
    say("delivery ceiling: bare aiosmtplib, %d connections, %d times", options.connections,
        options.ceiling_runs)
    blasts = []
    with meter.phase("ceiling"):
        for n in range(options.ceiling_runs):
            before = sink.stats()
            blast, _ = child("flows.bench.blast", [
                "--messages", str(space.messages), "--port", str(sink.port),
                "--connections", str(options.connections), "--sender", SENDER],
                env, space.root / f"blast-{n}.json")
            after = sink.stats()
            blast["sink_messages"] = after["messages"] - before["messages"]
            blast["sink_cpu_seconds"] = after["cpu_seconds"] - before["cpu_seconds"]
            blasts.append(blast)
    # The blast is the noisiest measurement here (a few connections waiting on each other):
    # the reference is the median run, all runs are kept.
    ceiling = sorted(blasts, key=lambda b: b["seconds"])[len(blasts) // 2]
    ceiling = {**ceiling, "runs_seconds": [b["seconds"] for b in blasts]}
    space.messages.unlink()
    say("ceiling: %.1f s; rerunning the same day", ceiling["seconds"])
    with meter.phase("rerun"):
        rerun = run_flow(env, space, sink, api_url, "rerun")
    return {"flow": flow, "references": references, "ceiling": ceiling, "rerun": rerun}


def _setting_default(name: str) -> int:
    from flows.settings import Settings

    return Settings.model_fields[name].default


def metrics(results: dict) -> dict:
    """The headline numbers and ratios, from one run's raw measurements.

    The delivery rate is messages over the sending phase's wall time (summed over batches;
    what passes between batches shows up as diff and Prefect overhead instead)."""
    flow, refs, ceiling = results["flow"], results["references"], results["ceiling"]
    stages, summary = flow["stages"], flow["summary"]
    made = summary["sent"] + len(summary["failed"]) + len(summary["deferred"])
    flow_own_rss = flow.get("own_peak_rss_bytes") or flow["peak_rss_bytes"]  # VmHWM; ru_maxrss where unknown
    # With render processes, index, rank and render ran there ("pool_…"), beside the sending.
    def both(stage: str) -> float:
        return stages.get(stage, 0.0) + stages.get(f"pool_{stage}", 0.0)

    render_ms = _ratio(both("render") * 1000, made)
    pipeline_rate = _ratio(summary["sent"], stages.get("sending", 0.0))
    floor_ms = refs["render_floor"]
    return {
        "messages_sent": summary["sent"],
        "end_to_end_seconds": results["prefect_server_start_seconds"] + flow["process_seconds"],
        "after_server_seconds": flow["process_seconds"],
        "after_server_vs_ceiling": _ratio(flow["process_seconds"], ceiling["seconds"]),
        "messages_per_second": _ratio(summary["sent"], flow["process_seconds"]),
        "sending_messages_per_second": pipeline_rate,
        "ceiling_messages_per_second": ceiling["messages_per_second"],
        "delivery_vs_ceiling": _ratio(pipeline_rate, ceiling["messages_per_second"]),
        "render_ms_per_email": render_ms,
        "render_floor_ms": floor_ms["mean_ms"],
        "render_vs_floor": _ratio(render_ms, floor_ms["mean_ms"]),
        "render_median_vs_floor_median": _ratio(refs["render"]["median_ms"], floor_ms["median_ms"]),
        "render_cpu_vs_floor_cpu": _ratio(_ratio(both("render_cpu") * 1000, made),
                                          floor_ms["mean_cpu_ms"]),
        "premailer_ms": refs["premailer"]["median_ms"],
        "dkim_ms_per_email": refs.get("dkim", {}).get("median_ms", 0.0),
        "dkim_vs_render": _ratio(refs.get("dkim", {}).get("median_ms", 0.0), refs["render"]["median_ms"]),
        "premailer_vs_floor": _ratio(refs["premailer"]["median_ms"], floor_ms["median_ms"]),
        "rank_seconds": both("rank"),
        "index_seconds": both("index"),
        "flow_peak_rss_mb": flow["peak_rss_bytes"] / 2**20,
        # the flow process's own peak (VmHWM; ru_maxrss above also counts the harness's, see flowrun)
        "flow_own_peak_rss_mb": flow_own_rss / 2**20,
        "render_process_peak_rss_mb": flow.get("children_peak_rss_bytes", 0) / 2**20,
        # the job's memory: the flow process and (each) render process at their peaks; the
        # flow's own (VmHWM), not ru_maxrss, which is never below the harness's peak
        "peak_rss_mb": (flow_own_rss + flow.get("children_peak_rss_bytes", 0)
                        * results["options"].get("render_processes", 0)) / 2**20,
        "sink_cpu_ms_per_message": _ratio(flow.get("sink_cpu_seconds", 0.0) * 1000, summary["sent"]),
        "ceiling_sink_cpu_ms_per_message": _ratio(ceiling.get("sink_cpu_seconds", 0.0) * 1000,
                                                  ceiling["sent"]),
        "ceiling_client_cpu_ms_per_message": _ratio(ceiling.get("cpu_seconds", 0.0) * 1000, ceiling["sent"]),
        "task_runs": flow["task_runs"],
        # With a sink latency L, connections x 1/L is the most any client can deliver.
        "latency_bound_messages_per_second": _latency_bound(results["options"]),
        "delivery_vs_latency_bound": _ratio(pipeline_rate, _latency_bound(results["options"])),
        "ledger_ms_per_message": _ratio(stages.get("ledger", 0.0) * 1000, made),
        "rerun_seconds": results["rerun"]["process_seconds"],
        "rerun_sent": results["rerun"]["summary"]["sent"],
        "rerun_sink_messages": results["rerun"]["sink_messages"],
    }


def _latency_bound(options: dict) -> float:
    latency = options.get("sink_latency_ms", 0.0)
    return options["connections"] * 1000.0 / latency if latency else 0.0


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    (out / "bench.md").write_text(markdown(results), encoding="utf-8")


def say(message: str, *args: object) -> None:
    print(message % args, file=sys.stderr, flush=True)
