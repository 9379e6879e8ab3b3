"""A counting SMTP sink for the benchmark, in its own process on 127.0.0.1.

Run as ``python -m flows.bench.sink [--latency-ms 50 | 5-20]``: it prints ``{"port": N}``
once listening, then answers each ``stats`` line on stdin with ``{"messages": M, "bytes": B,
"cpu_seconds": C}`` (C: the sink process's own CPU time so far), each ``recipients`` line
with how many messages each recipient got, and exits at the end of stdin. Messages are
counted and dropped, never parsed or stored, so the sink costs what a bare aiosmtpd costs
and nothing more. ``--latency-ms`` makes it wait before answering each final dot (drawn
uniformly from LOW-HIGH), as a remote relay does: the message counts as taken before the
wait, so a client that gives up waiting leaves it delivered. `SinkProcess` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"


class SinkError(Exception):
    """The sink process did not start or stopped answering."""


class CountingHandler:
    """aiosmtpd handler: 250 for every message (after the latency), counting messages,
    bytes and each recipient's messages."""

    def __init__(self, latency: tuple[float, float] = (0.0, 0.0)) -> None:
        self.messages = 0
        self.bytes = 0
        self.recipients: Counter[str] = Counter()
        self.latency = latency

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        self.recipients.update(envelope.rcpt_tos)
        low, high = self.latency
        if high > 0:
            await asyncio.sleep(random.uniform(low, high))
        return "250 OK"


def _answer_stats(handler: CountingHandler, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"messages": handler.messages, "bytes": handler.bytes,
                              "cpu_seconds": time.process_time()}), flush=True)
        elif line.strip() == "recipients":
            print(json.dumps(dict(handler.recipients)), flush=True)
    loop.call_soon_threadsafe(done.set)


def latency_range(text: str) -> tuple[float, float]:
    """"50" or "5-20" (milliseconds) → (low, high) in seconds."""
    low, _, high = text.partition("-")
    bounds = float(low) / 1000, float(high or low) / 1000
    if not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(f"{text!r}: need 0 <= low <= high")
    return bounds


async def serve(latency: tuple[float, float] = (0.0, 0.0)) -> None:
    handler = CountingHandler(latency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bench-sink", ident="paperboy bench sink"), HOST, 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    done = asyncio.Event()
    threading.Thread(target=_answer_stats, args=(handler, loop, done), daemon=True).start()
    await done.wait()
    server.close()


class SinkProcess:
    """The sink as a child process: `start`, `stats`, `stop` (also a context manager)."""

    def __init__(self, latency_ms: str = "0") -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.latency_ms = latency_ms

    def start(self) -> "SinkProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.bench.sink", "--latency-ms", self.latency_ms],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.port = int(self._read()["port"])
        return self

    def stats(self) -> dict[str, int]:
        return self._ask("stats")

    def recipients(self) -> dict[str, int]:
        """How many messages each recipient got so far."""
        return self._ask("recipients")

    def _ask(self, command: str) -> dict:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, int]:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SinkError(f"the SMTP sink exited (code {self.process.poll()})")
        return json.loads(line)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "SinkProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.bench.sink")
    parser.add_argument("--latency-ms", type=latency_range, default=(0.0, 0.0),
                        help="wait before answering each final dot: 50, or a range 5-20")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection
    asyncio.run(serve(args.latency_ms))


if __name__ == "__main__":
    main()
