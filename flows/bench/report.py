"""The benchmark's verdict: targets met or not, the machine, and a markdown table for the README."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# (name, metric, comparison, limit): the targets for 2 cores, 10,000 x 2,000.
TARGETS = (
    ("end to end, incl. Prefect server start (s)", "end_to_end_seconds", "<=", 60.0),
    ("peak RSS, flow process + render processes (MB)", "peak_rss_mb", "<=", 400.0),
    ("end to end after server up / delivery ceiling", "after_server_vs_ceiling", "<=", 1.5),
    ("delivery rate / delivery ceiling", "delivery_vs_ceiling", ">=", 0.8),
    ("render + inline / bare render floor, per email", "render_vs_floor", "<=", 2.0),
    ("ranking all subscribers (s)", "rank_seconds", "<=", 3.0),
    ("Prefect task runs", "task_runs", "<=", 100),
    ("rerun of the same day (s)", "rerun_seconds", "<=", 10.0),
    ("messages sent by the rerun", "rerun_sent", "<=", 0),
)


# Only with --sink-latency-ms: a relay's latency bounds delivery at connections / latency.
LATENCY_TARGETS = (
    ("delivery rate / latency bound (connections / latency)", "delivery_vs_latency_bound", ">=", 0.9),
)


def evaluate(results: dict) -> list[dict]:
    out = []
    targets = TARGETS + (LATENCY_TARGETS if results["options"].get("sink_latency_ms") else ())
    for name, metric, comparison, limit in targets:
        value = results["metrics"][metric]
        met = value <= limit if comparison == "<=" else value >= limit
        out.append({"target": name, "metric": metric, "value": value, "limit": f"{comparison} {limit:g}",
                    "met": met})
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                   if line.startswith("MemTotal")), 0)
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "ram_gb": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "prefect": _version("prefect"),
            "aiosmtplib": _version("aiosmtplib"), "aiosmtpd": _version("aiosmtpd")}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def stage_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(stage, wall seconds, CPU seconds, per email or rate, reference and ratio) for the table."""
    flow, m, refs, ceiling = results["flow"], results["metrics"], results["references"], results["ceiling"]
    st = flow["stages"]
    sent = max(1, m["messages_sent"])
    accounted = (flow["fetch_store_seconds"] + flow["load_subscribers_seconds"] + st.get("diff", 0.0)
                 + st.get("setup", 0.0) + st.get("sending", 0.0))

    pooled = st.get("pool_render", 0.0) > 0
    where = f" — in {results['options'].get('render_processes', 0)} render process(es)" if pooled else ""

    def stage(name: str, label: str, per_email: bool = True, reference: str = "") -> tuple[str, ...]:
        # a stage done in the render processes counts there: their wall and CPU time
        wall = st.get(name, 0.0) + st.get(f"pool_{name}", 0.0)
        cpu = st.get(f"{name}_cpu", 0.0) + st.get(f"pool_{name}_cpu", 0.0) if f"{name}_cpu" in st else None
        each = f"{wall / sent * 1000:.2f} ms/email" + (f" ({cpu / sent * 1000:.2f} CPU)" if cpu else "")
        return (label, _s(wall), _s(cpu) if cpu is not None else "", each if per_email else "", reference)

    render_ref = (
        f"floor {m['render_floor_ms']:.2f} ms → **{m['render_vs_floor']:.2f}×** (CPU: "
        f"{m['render_cpu_vs_floor_cpu']:.2f}×); side by side on the same digests "
        f"{refs['render']['median_ms']:.2f} vs {refs['render_floor']['median_ms']:.2f} ms (medians) = "
        f"{m['render_median_vs_floor_median']:.2f}×; premailer per email {m['premailer_ms']:.2f} ms = "
        f"{m['premailer_vs_floor']:.1f}× floor"
        + (f"; DKIM signing (included) {m['dkim_ms_per_email']:.2f} ms = {m['dkim_vs_render']:.0%} of "
           "the render before it" if m.get("dkim_ms_per_email") else ""))
    runs = ceiling.get("runs_seconds", [ceiling["seconds"]])
    sending_ref = (f"ceiling {ceiling['seconds']:.2f} s (median of {len(runs)}: "
                   f"{', '.join(f'{r:.1f}' for r in runs)}), {m['ceiling_messages_per_second']:.0f} msg/s → "
                   f"**{m['delivery_vs_ceiling']:.2f}×**")
    return [
        ("Prefect temporary API server start-up", _s(results["prefect_server_start_seconds"]), "", "",
         "not in 'after server up'"),
        ("fetch + store (fetch-listings task)", _s(flow["fetch_store_seconds"]), "", "", ""),
        ("load subscribers (load-subscribers task)", _s(flow["load_subscribers_seconds"]), "",
         f"{flow['load_subscribers_seconds'] / results['options']['subscribers'] * 1000:.2f} ms/file", ""),
        stage("diff", "diff (ledger reads)", per_email=False),
        stage("setup", "renderer set-up (CSS inlined into the template)", per_email=False),
        stage("index", "index build" + where, per_email=False),
        stage("rank", "rank" + where, reference="target ≤ 3 s"),
        stage("render", "render (links, context, text, pre-inlined HTML, MIME)" + where, reference=render_ref),
        *([stage("receive", "waiting for the render processes' messages")] if pooled else []),
        stage("deliver", "deliver (SMTP client, waiting on the sink)",
              reference=f"sink {m['sink_cpu_ms_per_message']:.2f} ms CPU/email"),
        stage("ledger", "ledger writes"),
        stage("sending", "sending phase, wall (holds index … ledger)", reference=sending_ref)[:3]
        + (f"{m['sending_messages_per_second']:.0f} msg/s", sending_ref),
        ("other (Prefect flow and task orchestration, corpus load, summary artifact)",
         _s(flow["flow_seconds"] - accounted), "", "", ""),
        ("process start + imports", _s(flow["process_seconds"] - flow["flow_seconds"]), "", "", ""),
        ("**end to end after server up** (process wall)", _s(flow["process_seconds"]), "",
         f"{m['messages_per_second']:.0f} msg/s",
         f"ceiling {ceiling['seconds']:.2f} s → **{m['after_server_vs_ceiling']:.2f}×**"),
        ("**end to end incl. server start-up**", _s(m["end_to_end_seconds"]), "", "", ""),
        ("rerun of the same day (all sent)", _s(m["rerun_seconds"]), "", f"{m['rerun_sent']} sent", ""),
    ]


def cpu_budget(results: dict) -> str:
    """Why the ratios to the ceiling are what they are: CPU per message of every process."""
    m, st, mc = results["metrics"], results["flow"]["stages"], results["machine"]
    sent = max(1, m["messages_sent"])
    making = sum(st.get(f"{p}{s}_cpu", 0.0) for p in ("", "pool_") for s in ("index", "rank", "render"))
    sending = sum(st.get(f"{s}_cpu", 0.0) for s in ("receive", "ledger", "deliver"))
    per = [making / sent * 1000, sending / sent * 1000, m["sink_cpu_ms_per_message"]]
    ceiling = [m["ceiling_client_cpu_ms_per_message"], m["ceiling_sink_cpu_ms_per_message"]]
    cores = mc["nproc"]
    floor = sum(per) / cores * sent / 1000
    return (
        f"CPU per message: making it (index, rank, render) {per[0]:.2f} ms, sending and recording it "
        f"{per[1]:.2f} ms, the sink {per[2]:.2f} ms; the ceiling spends {ceiling[0]:.2f} ms in its client "
        f"and {ceiling[1]:.2f} ms in the sink. Spread perfectly over {cores} cores, the pipeline's "
        f"{sum(per):.2f} ms a message cannot take less than {floor:.1f} s for these messages "
        f"(the ceiling took {results['ceiling']['seconds']:.1f} s).")


def markdown(results: dict) -> str:
    o, mc, m, refs = results["options"], results["machine"], results["metrics"], results["references"]
    lines = [
        f"Benchmark: {o['subscribers']:,} subscribers × {o['papers']:,} papers, {o['keywords'][0]}–"
        f"{o['keywords'][1]} keywords each, {o['connections']} SMTP connections, batch size "
        f"{o['batch_size']}, seed {o['seed']}"
        + (f", sink latency {o['sink_latency_ms']:g} ms" if o.get("sink_latency_ms") else "")
        + (", DKIM signing on" if o.get("dkim") else "") + ".",
        f"Machine: {mc['nproc']} CPUs ({mc['cpu']}), {mc['ram_gb']} GB RAM; Python {mc['python']}, "
        f"Prefect {mc['prefect']}, aiosmtplib {mc['aiosmtplib']}, aiosmtpd sink {mc['aiosmtpd']} "
        "in its own process.",
        "",
        "Stages stream (a message is ranked and rendered when a connection is free), so each stage's "
        "time is the time spent inside its own code; index, rank, render, receive, ledger and deliver "
        "add up to the sending phase. With render processes (PAPERBOY_RENDER_PROCESSES), index, rank "
        "and render run there, beside the sending, and count their own time; the sending thread's "
        "wait for their messages is 'waiting for the render processes'. CPU is the thread's own CPU "
        "time: it leaves out the time spent waiting for a core (or for the sink), though a busy "
        "machine still slows the work itself. The delivery rate is messages over the sending phase's "
        "wall time; the ceiling is bare aiosmtplib sending the very same message bytes, with the "
        "pipeline's SMTP transaction, over the same number of connections to the same sink.",
        "",
        "| stage | wall s | CPU s | per email / rate | reference (same run) → ratio |",
        "|---|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in stage_rows(results)]
    load = results.get("background_load", {})
    if load:
        shown = ", ".join(f"{name} {phase['other_cores']:.2f}" for name, phase in load.items())
        lines += ["", f"Other processes on the machine, average cores busy during each phase: {shown} "
                      "(0 = a quiet machine; compare runs only when these are alike)."]
    if o.get("sink_latency_ms"):
        lines += ["", f"Sink latency: {o['sink_latency_ms']:g} ms before each final dot's reply, so no client "
                      f"can deliver more than {o['connections']} connections / {o['sink_latency_ms']:g} ms = "
                      f"{m['latency_bound_messages_per_second']:.0f} msg/s; the sending phase delivered "
                      f"{m['sending_messages_per_second']:.0f} msg/s = **{m['delivery_vs_latency_bound']:.2f}×** "
                      f"the bound (the bare client: {m['ceiling_messages_per_second']:.0f} msg/s). Ledger "
                      f"writes (in flight, then the outcome): {m['ledger_ms_per_message']:.3f} ms a message."]
    lines += [
        "",
        f"Messages: {m['messages_sent']:,} sent, {refs['mean_message_bytes'] / 1024:.1f} KB each on average; "
        f"peak RSS of the flow process {m['flow_peak_rss_mb']:.0f} MB (its own high-water mark "
        f"{m.get('flow_own_peak_rss_mb', m['flow_peak_rss_mb']):.0f} MB: ru_maxrss keeps the harness's, "
        f"from before the exec, when that is higher), of a render process "
        f"{m['render_process_peak_rss_mb']:.0f} MB; {m['task_runs']} Prefect task runs.",
        "",
        cpu_budget(results),
        "",
        "| target | value | limit | met |",
        "|---|---:|---:|:---:|",
    ]
    for target in results["targets"]:
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        met = "yes" if target["met"] else "**no**"
        lines.append(f"| {target['target']} | {shown} | {target['limit']} | {met} |")
    return "\n".join(lines) + "\n"
