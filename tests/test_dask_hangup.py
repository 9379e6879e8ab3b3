"""A hangup (SIGHUP to the whole process group, as a shell does to its jobs when the terminal
or SSH session goes) of a run on a local Dask cluster (PAPERBOY_TASK_RUNNER=dask, no
PAPERBOY_DASK_ADDRESS): it stops like SIGTERM, as with the default runner
(tests/test_interrupt.py): exit 129, the flow run Cancelled, no traceback, every message the
relay accepted in the ledger, nothing left in flight, no Dask process left behind, and the
rerun finishes the day with nobody mailed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from flows.store import Store
from tests.test_interrupt import (  # noqa: F401  (install is a fixture)
    ROOT,
    SlowSink,
    alive,
    helpers_of,
    install,
    last_flow_run_state,
    start_in_own_group,
    stops_gracefully,
)

pytestmark = pytest.mark.slow


def distributed_teardown_noise(block: str) -> bool:
    """A traceback wholly inside Dask (and tornado under it): a worker's heartbeat that met the
    scheduler already closing as the run ended, logged now and then (1 run in 4 here), whatever
    stopped the run. Ours (flows/) and Prefect's are not noise."""
    return "flows/" not in block and "prefect/" not in block and ("distributed/" in block or "tornado/" in block)


def dask_env(install, sink: SlowSink) -> dict[str, str]:
    return {**install.environ, "PAPERBOY_SMTP_PORT": str(sink.controller.port),
            "PAPERBOY_TASK_RUNNER": "dask", "PAPERBOY_DASK_WORKERS": "2"}


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])  # SIGTERM: systemd's control-group stop
def test_a_hangup_stops_a_dask_run_gracefully_and_the_rerun_finishes(install, signum):
    """Before, the hangup killed both workers mid-batch; their nannies started new ones and
    Dask ran the two batches again: 18 of 120 subscribers were mailed twice in one run (the
    ledger recorded them once), and the run went on to mail everyone before exiting 129."""
    with SlowSink(latency=0.1) as sink:
        env = dask_env(install, sink)
        child = start_in_own_group(env, sink, 15)
        helpers = helpers_of(child.pid)
        assert any("dask" in " ".join(p.cmdline()) or "spawn_main" in " ".join(p.cmdline()) for p in helpers)
        stops_gracefully(child, install, sink, lambda: os.killpg(child.pid, signum), signum,
                         f"{signum.name} to the process group (dask)", noise=distributed_teardown_noise)
        deadline = time.monotonic() + 20
        while alive(helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(helpers), "a Dask process outlived the run"
        with Store(install.db_path) as store:
            assert not store.uncertain_digests()
        assert last_flow_run_state(install.prefect_db)[0] == "CANCELLED"
        first = len(sink.recipients)
        assert first < len(install.recipients), "the hangup came after everything was sent"

        rerun = subprocess.run([sys.executable, "-m", "flows.cli", "run"], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
        counts = Counter(sink.recipients)
        assert sorted(counts) == sorted(install.recipients)
        assert max(counts.values()) == 1, [r for r, n in counts.items() if n > 1]


def test_sigterm_to_the_run_alone_stops_its_dask_workers_too(install):
    """`kill PID` (or a Prefect cancellation) reaches the run's process only. Before, the run
    exited 143 only after its workers had sent every batch (all 120 of 120, 6.8 s): they never
    heard of the stop. Now the run passes it on to them."""
    with SlowSink(latency=0.1) as sink:
        env = dask_env(install, sink)
        child = start_in_own_group(env, sink, 15)
        stops_gracefully(child, install, sink, lambda: child.send_signal(signal.SIGTERM), signal.SIGTERM,
                         "SIGTERM to the run alone (dask)", noise=distributed_teardown_noise)
        assert len(sink.recipients) < len(install.recipients), "the workers sent everything anyway"
        assert max(Counter(sink.recipients).values()) == 1
        with Store(install.db_path) as store:
            assert not store.uncertain_digests()
    assert last_flow_run_state(install.prefect_db)[0] == "CANCELLED"
