"""Child processes that a test interrupts with SIGINT, as Ctrl-C would."""

from __future__ import annotations

import signal


def ctrl_c_works() -> None:
    """``preexec_fn`` for such a child: SIGINT back to its default. A shell running the test
    suite in the background (``cmd &`` without job control, as CI runners may) starts it with
    SIGINT ignored; children inherit that, Python then installs no KeyboardInterrupt handler,
    and the Ctrl-C the test sends would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
