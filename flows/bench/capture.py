"""The reference pass, in a fresh process: ``python -m flows.bench.capture``.

Ranks and renders the same digests the measured flow sent (same subscribers, same
candidates, nothing seen yet: the steps of the pipeline's `outgoing`) and

* writes each message exactly as the pipeline puts it on the wire (`deliver.wire_bytes`)
  to a file, for the delivery ceiling (`flows.bench.blast`);
* times, per email, the render floor (`Renderer.render_html_bare`: the digest context and
  the bare Jinja HTML, no CSS, no MIME), the pipeline's whole render (`make_message`) and,
  on an evenly spread sample, premailer inlining of the bare HTML (what inlining every
  email would cost);
* with PAPERBOY_DKIM_KEY_FILE set (``--dkim``), DKIM signing of each finished message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from datetime import date
from pathlib import Path

from flows import dkim
from flows.compose import compose, make_message, renderer_for, worth_sending
from flows.corpus import Corpus
from flows.deliver import wire_bytes
from flows.links import digest_links, secret_key
from flows.render import inline_css
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import load_all

RECORD = struct.Struct("<II")  # recipient length, message length


def write_record(handle, recipient: str, raw: bytes) -> None:
    address = recipient.encode("utf-8")
    handle.write(RECORD.pack(len(address), len(raw)))
    handle.write(address)
    handle.write(raw)


def read_records(path: Path) -> list[tuple[str, bytes]]:
    data, records, offset = path.read_bytes(), [], 0
    while offset < len(data):
        address_length, raw_length = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        address = data[offset:offset + address_length].decode("utf-8")
        offset += address_length
        records.append((address, data[offset:offset + raw_length]))
        offset += raw_length
    return records


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def _since(started: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clocks()
    return wall - started[0], cpu - started[1]


def _ms(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Per-email statistics of (wall, CPU) samples, in milliseconds."""
    if not samples:
        return {"median_ms": 0.0, "mean_ms": 0.0, "mean_cpu_ms": 0.0, "count": 0}
    walls, cpus = [w * 1000 for w, _ in samples], [c * 1000 for _, c in samples]
    return {"median_ms": statistics.median(walls), "mean_ms": statistics.fmean(walls),
            "mean_cpu_ms": statistics.fmean(cpus), "count": len(samples)}


def capture(settings: Settings, day: date, messages_path: Path, premailer_sample: int) -> dict:
    subscribers, _ = load_all(settings.subscribers_dir)
    with Store(settings.db_path) as store:
        corpus = Corpus.load(store, settings, day)
    renderer = renderer_for(settings)
    key = secret_key(settings)
    floor: list[tuple[float, float]] = []
    full: list[tuple[float, float]] = []
    inlining: list[tuple[float, float]] = []
    signing: list[tuple[float, float]] = []
    signer = dkim.signer_for(settings)
    sizes: list[int] = []
    step = max(1, len(subscribers) // max(1, premailer_sample))
    with messages_path.open("wb") as handle:
        for n, subscriber in enumerate(subscribers):
            digest = compose(subscriber, corpus, set())
            if not worth_sending(digest, subscriber, settings):
                continue  # skipped by the pipeline too: no message
            links = digest_links(settings, key, subscriber.email)
            started = _clocks()
            bare = renderer.render_html_bare(digest, subscriber, links)
            floor.append(_since(started))
            started = _clocks()
            message = make_message(renderer, digest, subscriber, links)
            full.append(_since(started))
            if signer is not None:
                started = _clocks()
                message = signer.sign(message)
                signing.append(_since(started))
            raw = wire_bytes(message)
            write_record(handle, subscriber.email, raw)
            sizes.append(len(raw))
            if n % step == 0 and len(inlining) < premailer_sample:
                started = _clocks()
                inline_css(bare, renderer.css)
                inlining.append(_since(started))
    return {
        "messages": len(sizes), "bytes": sum(sizes),
        "mean_message_bytes": statistics.fmean(sizes) if sizes else 0,
        "render_floor": _ms(floor), "render": _ms(full), "premailer": _ms(inlining), "dkim": _ms(signing),
        "inline_mode": renderer.inline_mode,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--messages", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--premailer-sample", type=int, default=300)
    args = parser.parse_args()
    result = capture(Settings(), args.date, args.messages, args.premailer_sample)
    args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
