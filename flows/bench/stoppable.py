"""``paperboy`` with SIGTERM and SIGINT turned into a graceful stop request.

    python -m flows.bench.stoppable run --date 2025-12-12

The soak (`make soak`) and the stop tests run the CLI through this: each signal calls
`flows.stopping.request_stop`, so the run finishes the SMTP transactions in hand, records
them, takes no new message and exits with its summary. A second signal of the same kind
is not caught again: it ends the process as usual.

The command runs in a worker thread while the main thread keeps the handlers: Prefect's
flow engine replaces the main thread's SIGTERM handler with its own for as long as a
flow runs (it raises TerminationSignal, which aborts the run mid-send), and Python
delivers signals to the main thread only. (The CLI gets the same handlers from the "ops"
work on signals; this wrapper stays for the soak.)
"""

from __future__ import annotations

import signal
import sys
import threading

from flows.stopping import request_stop


def _handler(signum: int, frame: object) -> None:
    request_stop(signal.Signals(signum).name)
    signal.signal(signum, signal.SIG_DFL)  # a second one is not graceful


def main() -> int:
    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    from flows.cli import main as paperboy

    sys.argv[0] = "paperboy"
    code: list[object] = [0]

    def run() -> None:
        try:
            paperboy()
        except SystemExit as exc:
            code[0] = exc.code
        except BaseException:
            code[0] = 1
            raise

    worker = threading.Thread(target=run, name="paperboy")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)  # short waits: the main thread runs the signal handlers in between
    return code[0] if isinstance(code[0], int) else (0 if code[0] is None else 1)


if __name__ == "__main__":
    sys.exit(main())
