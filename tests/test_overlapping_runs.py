"""Two runs that would send from one database at once: the second sends nothing.

Cron's morning run and an operator's `paperboy run` (or `paperboy serve`'s schedule and a
`prefect deployment run`) can overlap. Before, both planned the same subscribers (neither
saw the other's digests as final), so most subscribers got two digests, and the second run
took the first one's in-flight digests for leftovers of a crash ("uncertain") and resent
them: with 60 subscribers and a 1 s relay, 43 of them were mailed twice and both runs
exited 0.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from flows.store import RunLocked, run_lock
from tests.test_interrupt import ROOT, SlowSink, install, run_until, sent_in_ledger  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_second_run_while_one_is_sending_sends_nothing_and_says_why(install):  # noqa: F811
    with SlowSink(latency=0.1) as sink:
        env = {**install.environ, "PAPERBOY_SMTP_PORT": str(sink.controller.port)}
        first = run_until(env, sink, 5)
        second = subprocess.run([sys.executable, "-m", "flows.cli", "run"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert first.poll() is None, "the first run ended before the second started: no overlap tested"
        output = first.communicate(timeout=300)[0]
        assert first.returncode == 0, output[-3000:]
        assert second.returncode == 2, second.stdout[-3000:] + second.stderr[-3000:]
        assert "another run" in second.stderr and "Traceback" not in second.stderr + second.stdout
        counts = Counter(sink.recipients)
    assert sorted(counts) == sorted(install.recipients) and set(counts.values()) == {1}
    assert sorted(sent_in_ledger(install)) == sorted(install.recipients)


def test_the_lock_is_one_per_database_and_says_who_holds_it(tmp_path):
    with run_lock(tmp_path / "a.db"):
        with pytest.raises(RunLocked, match=r"another run .*\(pid \d+"):
            with run_lock(tmp_path / "a.db"):
                pass
        with run_lock(tmp_path / "b.db"):  # another database: its own lock
            pass
    with run_lock(tmp_path / "a.db"):  # released
        pass
