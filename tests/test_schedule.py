"""prefect.yaml, `prefect deploy` and `paperboy serve` against a real Prefect server (the harness)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

from flows.models import message_id_for
from tests.support.signals import ctrl_c_works

ROOT = Path(__file__).resolve().parent.parent
DAILY = "daily-digest/daily-digest"
BACKFILL = "backfill/backfill"


def deployments() -> list[dict]:
    return YAML(typ="safe").load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]


def deployment(name: str) -> dict:
    return next(d for d in deployments() if d["name"] == name)


def wait_until(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(0.2)
    return result


def prefect_env(api_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, **extra}


# -- prefect.yaml, offline ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", deployments(), ids=lambda d: d["name"])
def test_every_deployment_entrypoint_loads_to_a_flow(spec):
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]), use_placeholder_flow=False)
    assert isinstance(flow, Flow)
    assert flow.name == spec["name"]  # the deployment is addressed as <flow>/<deployment>


@pytest.mark.parametrize("spec", deployments(), ids=lambda d: d["name"])
def test_every_deployment_parameters_fit_its_flow(spec):
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import validate

    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]), use_placeholder_flow=False)
    schema = parameter_schema(flow).model_dump_for_openapi()
    parameters = spec.get("parameters") or {}
    assert set(parameters) <= set(schema["properties"])
    # what the server checks when the deployment is created (a null date fails here)
    validate(parameters, schema, raise_on_error=True, ignore_required=True)


@pytest.mark.parametrize("spec", deployments(), ids=lambda d: d["name"])
def test_every_schedule_has_a_valid_cron_and_iana_timezone(spec):
    from cronsim import CronSim
    from datetime import datetime
    from prefect.client.schemas.schedules import CronSchedule

    for schedule in spec.get("schedules") or []:
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # Prefect's own check
        CronSim(schedule["cron"], datetime(2025, 1, 1))  # and the one PAPERBOY_SCHEDULE gets
        assert ZoneInfo(schedule["timezone"]).key == schedule["timezone"]


def test_daily_deployment_runs_every_morning():
    (schedule,) = deployment("daily-digest")["schedules"]
    assert schedule["cron"] == "0 7 * * *"
    assert schedule.get("active", True) is True


def test_backfill_deployment_has_no_schedule_and_takes_its_range_per_run():
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    spec = deployment("backfill")
    assert not spec.get("schedules")
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]), use_placeholder_flow=False)
    schema = parameter_schema(flow).model_dump_for_openapi()
    assert set(schema["properties"]) >= {"start", "end", "source", "send", "refresh"}
    assert set(schema.get("required", [])) == {"start", "end"}
    assert spec["parameters"].get("send") is False  # index only unless asked


# -- registering and running against the harness --------------------------------------------------


@pytest.fixture
def sync_client(prefect_harness):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client


def prefect_deploy(api_url: str) -> None:
    """What the README tells operators to run, from the project root."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="paperboy", type="process"))
        except ObjectAlreadyExists:
            pass
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
                          cwd=ROOT, env=prefect_env(api_url), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.fixture(scope="module")
def deployed(prefect_harness):
    prefect_deploy(prefect_harness)
    return prefect_harness


@pytest.mark.slow
def test_prefect_deploy_registers_the_schedule(deployed, sync_client):
    spec = deployment("daily-digest")["schedules"][0]
    daily = sync_client.read_deployment_by_name(DAILY)
    (schedule,) = daily.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (spec["cron"], spec["timezone"])
    assert schedule.active and not daily.paused
    assert daily.work_pool_name == "paperboy"
    assert daily.entrypoint == "flows/daily.py:daily_digest"
    # without pull steps, workers run the code where `prefect deploy` ran: this checkout
    assert daily.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    assert daily.global_concurrency_limit and daily.global_concurrency_limit.limit == 1

    backfill = sync_client.read_deployment_by_name(BACKFILL)
    assert backfill.schedules == []
    assert backfill.parameters == {"send": False, "refresh": False}
    assert backfill.parameter_openapi_schema["required"] == ["start", "end"]


@pytest.mark.slow
def test_worker_runs_the_deployed_daily_flow(workspace, deployed, sync_client, tmp_path):
    from prefect.deployments import run_deployment

    if sync_client.read_deployment_by_name(DAILY).work_pool_name != "paperboy":
        prefect_deploy(deployed)  # `paperboy serve` took it over in an earlier test
    run = run_deployment(DAILY, parameters={"digest_date": workspace.day.isoformat()}, timeout=0)
    # one polling round: picks up the run, executes it in a subprocess, waits for it, exits
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "paperboy", "--run-once"],
        cwd=tmp_path, env=prefect_env(deployed, **workspace.environ), capture_output=True,
        text=True, timeout=90)
    state = sync_client.read_flow_run(run.id).state
    assert state.is_completed(), f"{state!r}\n{(done.stdout + done.stderr)[-3000:]}"
    assert sorted(workspace.server.recipients()) == [
        "ada@example.org", "alan@example.org", "grace@example.org"]


@pytest.mark.slow
def test_served_deployment_run_mails_the_digests(workspace, prefect_harness, sync_client, tmp_path):
    from prefect.deployments import run_deployment

    log = tmp_path / "serve.log"
    env = prefect_env(prefect_harness, **workspace.environ, PREFECT_RUNNER_POLL_FREQUENCY="1",
                      PAPERBOY_SCHEDULE="30 6 * * 1-5", PAPERBOY_TIMEZONE="Europe/Berlin")
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_works)
    try:
        # After the deploy test this deployment exists on the work pool: serve must take it over.
        served = wait_until(lambda: child.poll() is None and served_here(sync_client),
                            60, "paperboy serve to register its deployment", log)
        (schedule,) = served.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 6 * * 1-5", "Europe/Berlin")
        assert schedule.active and not served.paused

        run = run_deployment(DAILY, parameters={"digest_date": workspace.day.isoformat()},
                             timeout=60, poll_interval=0.5)
        assert run.state.is_completed(), f"{run.state!r}\n{log.read_text()[-3000:]}"
        recipients = Counter(workspace.server.recipients())
        assert recipients == {"ada@example.org": 1, "grace@example.org": 1, "alan@example.org": 1}
        # the digests are for the date passed to the run, not for today
        assert {r.message["Message-ID"] for r in workspace.server.received} == {
            message_id_for(email, workspace.day, "example.org") for email in recipients}
    finally:
        child.send_signal(signal.SIGINT)
        try:
            code = child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    assert code == 130, log.read_text()[-3000:]  # Ctrl-C: 130, as for every command (README)
    # stopping `paperboy serve` pauses its schedule: no runs pile up while nobody serves them
    assert sync_client.read_deployment_by_name(DAILY).paused is True


def served_here(client):
    deployment = read_or_none(client, DAILY)
    # serve's version: no work pool, its tags, and unpaused (a stopped serve pauses it)
    mine = (deployment is not None and deployment.work_pool_name is None
            and "paperboy" in deployment.tags and not deployment.paused)
    return deployment if mine else None


def read_or_none(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


# -- paperboy serve without a server ---------------------------------------------------------------


def serve_without(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # a profile in the operator's PREFECT_HOME could name a server; this one is empty
    environ.update(PREFECT_HOME=str(tmp_path / "prefect-home"), **env)
    return subprocess.run([sys.executable, "-m", "flows.cli", "serve"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_serve_without_a_prefect_server_says_how_to_start_one(tmp_path):
    done = serve_without(tmp_path)
    assert done.returncode == 2
    assert "prefect server start" in done.stderr
    assert "PREFECT_API_URL=http://127.0.0.1:4200/api" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_an_unreachable_prefect_server_names_the_url(tmp_path):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    done = serve_without(tmp_path, PREFECT_API_URL=url)
    assert done.returncode == 2
    assert f"cannot reach the Prefect server at PREFECT_API_URL={url}" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_rejects_a_bad_schedule_before_contacting_prefect(tmp_path):
    done = serve_without(tmp_path, PAPERBOY_SCHEDULE="7 o'clock", PAPERBOY_TIMEZONE="Mars/Olympus")
    assert done.returncode == 2
    assert "PAPERBOY_SCHEDULE" in done.stderr and "PAPERBOY_TIMEZONE" in done.stderr
