"""A counting SMTP sink for the benchmark, in its own process on 127.0.0.1.

Run as ``python -m flows.bench.sink``: it prints ``{"port": N}`` once listening, then
answers each ``stats`` line on stdin with ``{"messages": M, "bytes": B, "cpu_seconds": C}``
(C: the sink process's own CPU time so far) and exits at
the end of stdin. Messages are counted and dropped, never parsed or stored, so the sink
costs what a bare aiosmtpd costs and nothing more. `SinkProcess` runs it from the harness.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"


class SinkError(Exception):
    """The sink process did not start or stopped answering."""


class CountingHandler:
    """aiosmtpd handler: 250 for every message, counting messages and bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 OK"


def _answer_stats(handler: CountingHandler, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"messages": handler.messages, "bytes": handler.bytes,
                              "cpu_seconds": time.process_time()}), flush=True)
    loop.call_soon_threadsafe(done.set)


async def serve() -> None:
    handler = CountingHandler()
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

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> "SinkProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.bench.sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1)
        self.port = int(self._read()["port"])
        return self

    def stats(self) -> dict[str, int]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("stats\n")
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
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection
    asyncio.run(serve())


if __name__ == "__main__":
    main()
