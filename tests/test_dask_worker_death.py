"""A Dask worker of the run's own local cluster that dies on its own in the middle of a send
batch (the kernel's OOM killer, `kill -9` of that one process), while the run goes on.

Workers never open SQLite: they get a batch plan and return its outcomes. A dead worker
returns nothing, so the run cannot know which of its batch's digests reached the relay.
Before, Dask ran the batch again on another worker in the same run and mailed a second time
everyone the dead worker had already mailed (the ledger recorded them once). Now the run
records that batch's digests as uncertain, exactly as it records a digest whose server reply
it never saw (README "Ledger and idempotency"), sends them nothing more, and goes on with
the other batches."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import psutil
import pytest

from flows.store import Store
from tests.test_dask import cluster, planned  # noqa: F401  (fixtures)
from tests.test_dask_hangup import dask_env, distributed_teardown_noise
from tests.test_interrupt import (  # noqa: F401  (install is a fixture)
    ROOT,
    SlowSink,
    install,
    run_until,
)

pytestmark = pytest.mark.slow


def dask_workers_of(pid: int) -> list[psutil.Process]:
    """The local cluster's worker processes: the run's multiprocessing children."""
    return [p for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


def ledger(install) -> dict[str, dict]:
    with Store(install.db_path) as store:
        return {r["subscriber"]: r for r in store.digest_rows(install.day)}


def paperboy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_a_worker_killed_mid_batch_mails_nobody_twice_and_its_digests_are_uncertain(install):
    with SlowSink(latency=0.1) as sink:
        env = dask_env(install, sink)
        child = run_until(env, sink, 15)
        workers = dask_workers_of(child.pid)
        assert len(workers) == 2, [p.cmdline() for p in workers]
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)
        print(f"\nkilled Dask worker {victim.pid} after {len(sink.recipients)} messages")
        output = child.communicate(timeout=300)[0]
        received = Counter(sink.recipients)
        print(f"run exit {child.returncode}; {len(received)} recipients, {sum(received.values())} messages")
        (install.path / "run.log").write_text(output)
        print(f"run output: {install.path / 'run.log'} ({output.count(chr(10))} lines)")

        # nobody mailed twice in that run
        assert max(received.values()) == 1, sorted(r for r, n in received.items() if n > 1)
        rows = ledger(install)
        sent = {s for s, r in rows.items() if r["status"] == "sent"}
        uncertain = {s for s, r in rows.items() if r["status"] == "uncertain"}
        print(f"ledger: {len(sent)} sent, {len(uncertain)} uncertain, "
              f"{len(set(received) - sent)} received but not recorded sent")
        # the dead worker's batch: uncertain, with the reason; nothing else left in flight
        assert uncertain, "the dead worker's digests are not recorded as uncertain"
        assert all("died" in rows[s]["error"] for s in uncertain), {s: rows[s]["error"] for s in uncertain}
        assert not [s for s, r in rows.items() if r["status"] == "in_flight"]
        assert len(uncertain) <= 2 * 10, "more than the batches the dead worker held"  # PAPERBOY_BATCH_SIZE=10
        # the ledger matches the relay: every sent row was received, and whatever was received
        # and not recorded sent is one of the uncertain ones (the dead worker sent it)
        assert sent <= set(received)
        assert set(received) - sent <= uncertain
        # the run went on: everyone else was mailed, once
        assert set(install.recipients) - uncertain == sent
        # one clear account at the end, no traceback flood
        assert child.returncode == 0, output[-3000:]
        assert f"uncertain {len(uncertain)} (sent, no reply seen)" in output, output[-3000:]
        tracebacks = output.split("Traceback (most recent call last):")[1:]
        assert all(distributed_teardown_noise(block) for block in tracebacks), output[-5000:]
        assert output.count("\n") < 120 + len(uncertain), output[-5000:]

        # `paperboy status` lists them as it lists any uncertain digest
        status = paperboy(env, "status")
        assert status.returncode == 0, status.stderr
        assert f"Uncertain (sent, the server's reply never recorded): {len(uncertain)}" in status.stdout
        assert all(s in status.stdout for s in uncertain), status.stdout

        # the next run does not send them again (PAPERBOY_UNCERTAIN=skip), nor anything else
        before = len(sink.recipients)
        rerun = paperboy({**env, "PAPERBOY_UNCERTAIN": "skip"}, "run")
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
        assert len(sink.recipients) == before, sink.recipients[before:]
        assert "already sent 120" in rerun.stdout, rerun.stdout[-3000:]


def test_a_batch_dask_runs_a_second_time_sends_nothing_then(planned, workspace, cluster):
    """Dask runs a task again when its worker dies while running it, or after it finished
    (the result lived on that worker, and a client that had not fetched it yet makes Dask
    compute it again: seen once in four runs of the test above). Before, that second run
    mailed the whole batch again. Both runs here are the real `send-batch` body on a real
    worker process, against the real SMTP server."""
    from flows.tasks import send_batch

    _, client = cluster
    settings, corpus, plan = planned
    plan.key = uuid.uuid4().hex
    first = client.submit(send_batch.fn, settings, plan, corpus, False, False, pure=False).result()
    assert not first.rerun and first.report.sent == 3
    again = client.submit(send_batch.fn, settings, plan, corpus, False, False, pure=False).result()
    assert again.rerun and again.outcomes == [] and again.report.sent == 0
    assert sorted(workspace.server.recipients()) == ["ada@example.org", "alan@example.org", "grace@example.org"]
    other = dataclasses.replace(plan, key=uuid.uuid4().hex)  # another batch is not taken for a rerun
    assert not client.submit(send_batch.fn, settings, other, corpus, False, False, pure=False).result().rerun


def test_a_hangup_does_not_kill_a_worker_that_has_no_batch_yet(install):
    """One batch for two workers: one of them is idle when the terminal goes. Before, a worker
    got its stop handlers with its first batch, so the idle one died of the SIGHUP (its nanny
    logged it and started another while the run was stopping)."""
    with SlowSink(latency=0.1) as sink:
        env = {**dask_env(install, sink), "PAPERBOY_BATCH_SIZE": "200"}
        child = run_until(env, sink, 15, start_new_session=True)
        workers = dask_workers_of(child.pid)
        assert len(workers) == 2
        os.killpg(child.pid, signal.SIGHUP)
        output = child.communicate(timeout=120)[0]
        assert child.returncode == 129, output[-3000:]
        assert "was killed by signal" not in output and "Restarting worker" not in output, output[-5000:]
        rows = ledger(install)
        assert sorted(s for s, r in rows.items() if r["status"] == "sent") == sorted(sink.recipients)
        assert len(sink.recipients) < len(install.recipients)
        assert not [s for s, r in rows.items() if r["status"] in ("uncertain", "in_flight")]
