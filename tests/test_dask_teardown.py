"""Dask's own noise at the end of a run on its local cluster: a worker whose heartbeat is on
its way as the run closes the scheduler logs "Failed to communicate with scheduler during
heartbeat." and a CommClosedError traceback of about 20 lines (1 stopped run in 4 before,
just above the run's "interrupted" line; tests/test_dask_hangup.py had to allow it).

Here the real heartbeat of a real worker process fails the same way, on demand: its
scheduler connection is pointed at a loopback server that closes every connection at once."""

from __future__ import annotations

import socket
import threading

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def closing_server():
    """A loopback TCP server that accepts and closes every connection: a scheduler going away."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


async def heartbeat_against(dask_worker, port: int) -> str:
    """On the worker: one real heartbeat, sent to `port` instead of its scheduler."""
    from distributed.core import rpc

    scheduler, dask_worker.scheduler = dask_worker.scheduler, rpc(f"tcp://127.0.0.1:{port}")
    try:
        await dask_worker.heartbeat()
    finally:
        dask_worker.scheduler = scheduler
    return "sent"


def heartbeat_failure_output(capfd, port: int, preload: list[str]) -> str:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      preload=preload) as cluster, Client(cluster, set_as_default=False) as client:
        capfd.readouterr()
        assert list(client.run(heartbeat_against, port=port).values()) == ["sent"]
        client.run(lambda: None)  # the worker's log has been written by the time this returns
        return capfd.readouterr().err


def test_a_failed_heartbeat_on_the_runs_own_cluster_prints_no_traceback(capfd, closing_server):
    from flows.tasks import task_runner_for
    from flows.settings import Settings

    preload = task_runner_for(Settings(task_runner="dask", dask_workers=1)).cluster_kwargs["preload"]
    quiet = heartbeat_failure_output(capfd, closing_server, preload)
    assert "heartbeat" not in quiet and "Traceback" not in quiet, quiet
    # the same failure without the run's preload: what Dask prints, so the test can see it
    loud = heartbeat_failure_output(capfd, closing_server, [])
    assert "Failed to communicate with scheduler during heartbeat" in loud and "Traceback" in loud
