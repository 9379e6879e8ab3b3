"""The delivery ceiling, in a fresh process: ``python -m flows.bench.blast``.

Sends pre-built messages (the bytes `flows.bench.capture` wrote, exactly what the
pipeline put on the wire) with bare aiosmtplib over the same number of long-lived
connections the pipeline uses, each pulling the next message from one shared queue,
each message in the same SMTP transaction the pipeline uses (`deliver.transmit`).
No rendering, no ledger, no retries: the fastest this client and this sink can go.
The clock covers connecting, sending every message and QUIT; loading the file does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import time
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib

from flows.bench.capture import read_records
from flows.deliver import transmit


async def blast(records: list[tuple[str, bytes]], host: str, port: int, connections: int,
                sender: str) -> dict:
    local_hostname = socket.getfqdn()
    queue = iter(records)
    sent = 0

    async def connection() -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, use_tls=False,
                                 local_hostname=local_hostname, timeout=60)
        await client.connect()
        for recipient, raw in queue:
            await transmit(client, sender, recipient, raw)  # the pipeline's SMTP transaction
            sent += 1
        await client.quit()

    started, cpu = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as group:
        for _ in range(connections):
            group.create_task(connection())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"sent": sent, "seconds": seconds, "cpu_seconds": cpu, "messages_per_second": sent / seconds if seconds else 0.0,
            "bytes": sum(len(raw) for _, raw in records), "connections": connections}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--sender", required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    records = read_records(args.messages)
    result = asyncio.run(blast(records, args.host, args.port, args.connections, parseaddr(args.sender)[1]))
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
