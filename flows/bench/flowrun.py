"""One measured run of the real daily flow, in a fresh process: ``python -m flows.bench.flowrun``.

Settings come from the PAPERBOY_* environment and the Prefect API from PREFECT_API_URL,
both set by the harness. Writes a JSON file with the flow's summary, its flow-run id, the
per-stage seconds of its batches, wall times and this process's peak RSS.

The per-stage seconds are in the `BatchReport` that `send_batches` returns, which the
flow's summary does not carry; a thin wrapper around `flows.daily.send_batches` keeps a
copy of it. Nothing else about the flow changes.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402  (the clock above starts before the imports it measures)
import json  # noqa: E402
import resource  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import flows.daily as daily  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    imported = time.perf_counter()

    reports = []
    send_batches = daily.send_batches

    def keeping_report(*call_args, **kwargs):
        report = send_batches(*call_args, **kwargs)
        reports.append(report)
        return report

    daily.send_batches = keeping_report
    flow_started = time.perf_counter()
    state = daily.daily_digest(digest_date=args.date, return_state=True)
    flow_seconds = time.perf_counter() - flow_started
    summary = state.result()
    batch = reports[0] if reports else None
    args.result.write_text(json.dumps({
        "summary": summary,
        "flow_run_id": str(state.state_details.flow_run_id),
        "stages": batch.seconds if batch else {},
        "import_seconds": imported - STARTED,
        "flow_seconds": flow_seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        # ru_maxrss above is at least the harness's own peak: Linux carries the high-water mark
        # of the process that forked this one across the exec. VmHWM is this process's alone.
        "own_peak_rss_bytes": own_peak_rss(),
        # the largest of its children: render processes, stopped by the flow before it returned
        "children_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }, indent=2), encoding="utf-8")


def own_peak_rss() -> int | None:
    """This process's peak RSS since its exec (Linux's VmHWM), in bytes; None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
