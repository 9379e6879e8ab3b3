"""The Prefect plumbing both flows share (daily.py, backfill.py): the task runner, the
task that loads the subscribers, and the `send-batch` task with the loop that drives it.

Takes the settings, the subscribers and the run's `Corpus`; gives the merged
`BatchReport`. Tasks work on batches of subscribers (about 8 ms of Prefect overhead per
task run here), never one task per subscriber per stage.

Where the batches run is `PAPERBOY_TASK_RUNNER`, read when each flow run starts (so the
CLI, `paperboy serve` and work-pool deployments all honour it):

* ``thread`` (default): the `send-batch` tasks run one after another in the flow's
  process, and each outcome is written to the ledger the moment the SMTP server has
  answered. A run killed at any point resends nothing the ledger calls sent; the only
  window is SMTP's own (accepted, process killed before the next line wrote it).
* ``dask``: every batch is planned here (the ledger is read only in this process), then
  all `send-batch` tasks are submitted to a Dask cluster (`PAPERBOY_DASK_ADDRESS`, else a
  temporary local one of `PAPERBOY_DASK_WORKERS` processes). Workers rank, render and
  send, never open SQLite, and return their outcomes; this process records them as each
  batch comes back, so SQLite keeps a single writer. A worker that dies takes its batch's
  outcomes along: Dask runs the batch again, but each batch claims itself when it starts
  (`claim_batch`), so that rerun sends nothing and this process records the batch's digests
  uncertain (`_lost`): never sent again in this run, PAPERBOY_UNCERTAIN for the next. The
  price that remains: a crash of this process between a worker's send and the recording of
  the returned outcome leaves digests sent but not in the ledger, and the next run mails
  them again, with the same deterministic Message-ID so receiving systems can spot the
  duplicate. Smaller batches (`PAPERBOY_BATCH_SIZE`) shrink both. A batch that raises
  part-way still returns what it sent (`BatchAborted`), so errors, unlike crashes, lose
  nothing.

Concurrent batches each open `PAPERBOY_SMTP_CONNECTIONS` connections: with Dask the SMTP
server sees up to workers x threads x that many.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import SecretStr

from flows.bounces import apply_suppressions
from flows.compose import message_id_domain
from flows.corpus import Corpus
from flows.deliver import RelayError, SenderHolds
from flows.dkim import signer_for
from flows.fetch import today_in  # noqa: F401  (the flows and the CLI take it from here too)
from flows.links import secret_key
from flows.makers import close_pools
from flows.models import Outcome, message_id_for
from flows.send import (BatchAborted, BatchPlan, BatchReport, BatchResult, in_flight_writer, plan_batch,
                        send_detached, send_planned, worker_id)
from flows.settings import Settings
from flows.stopping import stop_requested
from flows.store import Store
from flows.subscribers import Subscriber, SubscriberFileError, load_all

log = logging.getLogger(__name__)


def task_runner_for(settings: Settings, api_url: str | None = None) -> TaskRunner:
    """The task runner PAPERBOY_TASK_RUNNER names: threads here, or a Dask cluster (the one
    at PAPERBOY_DASK_ADDRESS, else a temporary local one of single-threaded processes whose
    tasks report to the Prefect API at `api_url`, the flow's own)."""
    if settings.task_runner == "thread":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner  # imports distributed: only when asked for

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # preload: each worker takes a stop signal as a stop request from its start (flows/signals.py)
    workers = {"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
               "preload": ["flows.signals"]}
    if api_url:
        workers["env"] = {"PREFECT_API_URL": api_url}
    return DaskTaskRunner(cluster_kwargs=workers)


def flow_api_url() -> str:
    """The Prefect API this process reports to: PREFECT_API_URL, else the temporary server
    Prefect started for it (which workers of a temporary local cluster can reach too)."""
    from prefect.client.orchestration import get_client

    return str(get_client(sync_client=True).api_url)


def on_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


class ConfiguredTaskRunner(ThreadPoolTaskRunner):
    """Stands in for the runner PAPERBOY_TASK_RUNNER names until a flow run starts: Prefect
    duplicates a flow's task runner for every run, and that copy is the configured one.
    Deciding per run, not at import, lets a served or deployed flow follow its environment."""

    def duplicate(self) -> TaskRunner:  # type: ignore[override]
        if on_dask_worker():
            # Prefect re-creates the parent flow's runner around each task on a worker, for
            # tasks that submit tasks; ours submit none, and the worker's environment is not
            # the flow's to read.
            return ThreadPoolTaskRunner()
        settings = Settings()
        if settings.task_runner == "thread":
            return task_runner_for(settings)
        if settings.dask_address and not PREFECT_API_URL.value():
            log.warning("PAPERBOY_DASK_ADDRESS without PREFECT_API_URL: each Dask worker will start "
                        "its own temporary Prefect server; point PREFECT_API_URL at a Prefect server "
                        "the workers can reach")
        return task_runner_for(settings, api_url=flow_api_url())


@task(name="load-subscribers", cache_policy=NONE)
def load_subscribers(settings: Settings, only: str | None) -> tuple[Sequence[Subscriber], list[SubscriberFileError]]:
    """Read and validate every subscriber file; broken files are reported, not fatal. The
    subscribers are kept packed (see `flows.subscribers.files.Packed`): the run holds all of
    them, and works on a batch at a time."""
    subscribers, errors = load_all(settings.subscribers_dir, packed=not only, max_papers=settings.max_papers)
    if only:
        subscribers = [s for s in subscribers if s.email.lower() == only.lower()]
        if not subscribers:
            raise UnknownSubscriber(unknown_subscriber_message(only, settings, errors))
    return subscribers, errors


class UnknownSubscriber(LookupError):
    """--only names nobody among the valid subscriber files."""


def unknown_subscriber_message(email: str, settings: Settings, errors: Sequence[SubscriberFileError]) -> str:
    broken = [e for e in errors if email.lower() in str(e).lower() or mentions(e.path, email)]
    if broken:
        return f"--only {email}: that subscriber's file is broken: {broken[0]}"
    return (f"--only {email}: no subscriber with that address in {settings.subscribers_dir} "
            "(see `paperboy subscribers list`)")


def mentions(path: Path, email: str) -> bool:
    """Whether a (broken) subscriber file holds this address anywhere."""
    try:
        return email.lower() in path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


class RunNotCompleted(Exception):
    """A flow run that stopped early or reached failures; `.summary` is its summary dict.
    A direct call of the flow raises it; the CLI reads it from the final state."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message, summary)  # both in args: it pickles
        self.message, self.summary = message, summary

    def __str__(self) -> str:
        return self.message


def final_state(summary: dict) -> Any:
    """What a flow returns: its summary when all went well, else a state that says why not.

    * Cancelled: a stop was requested (a signal, a Prefect cancellation, the Prefect server
      gone); what was reached is recorded and the rerun does the rest.
    * Failed: every listing date failed, or digests failed or were deferred.
    * Completed otherwise (broken subscriber files are in the summary and the message)."""
    from prefect.states import Cancelled, Completed, Failed

    reason = stop_requested()
    if reason:
        message = f"stopped ({reason}): {summary['line']}"
        return Cancelled(message=message, data=RunNotCompleted(message, summary))
    problems = run_problems(summary)
    if problems:
        message = "; ".join(problems)
        return Failed(message=message, data=RunNotCompleted(message, summary))
    if summary.get("subscriber_errors"):
        return Completed(message=f"{len(summary['subscriber_errors'])} broken subscriber files "
                                 "(those subscribers got nothing)", data=summary)
    return summary


def run_problems(summary: dict) -> list[str]:
    """What makes a finished run a failure: no listing date fetched at all, failed or
    deferred digests."""
    problems = []
    if summary.get("dates_failed") and not summary.get("dates_fetched"):
        problems.append(f"all {len(summary['dates_failed'])} listing dates failed")
    if summary.get("failed"):
        problems.append(f"{len(summary['failed'])} digests failed")
    if summary.get("deferred"):
        problems.append(f"{len(summary['deferred'])} digests deferred")
    if summary.get("relay_broken"):
        problems.append(summary["relay_broken"])
    return problems


def publish(markdown: str, *, key: str, description: str) -> None:
    """The run's summary as a Prefect markdown artifact; a Prefect API that went away meanwhile
    costs the artifact, not the run (its outcomes are in the ledger)."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as exc:  # noqa: BLE001 - httpx errors, Prefect's own
        if not stop_requested():
            raise
        log.warning("summary artifact not saved: %s", exc)


def summary_of(state: Any) -> dict:
    """The summary dict of a flow run's final state (Completed, Failed or Cancelled); a crash
    (any other exception) is raised."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, RunNotCompleted):
        return value.summary
    if isinstance(value, BaseException):
        raise value
    return value


@task(name="send-batch", cache_policy=NONE)
def send_batch(settings: Settings, plan: BatchPlan, corpus: Corpus, dry_run: bool,
               record_here: bool) -> BatchResult:
    """Rank, render and deliver one planned batch. With record_here (running in the flow's
    process) each outcome is written to the ledger as soon as it is known; otherwise (a
    Dask worker, which never opens the database) the outcomes are returned to the flow."""
    if not record_here:
        if plan.key and not claim_batch(plan.key):
            return BatchResult(BatchReport(workers=[worker_id()]), rerun=True)
        return send_detached(plan, corpus, settings, dry_run)
    with Store(settings.db_path) as store:
        try:
            return BatchResult(send_planned(plan, corpus, settings, store.record_outcome, dry_run=dry_run,
                                            on_in_flight=in_flight_writer(store)))
        except RelayError as exc:
            # Every message would fail the same way: the run's result says so in one line (a
            # raised error would print the task's and the flow's tracebacks first). What the
            # relay accepted before is in the ledger already; nothing else was marked failed.
            return BatchResult(BatchReport(broken=str(exc)))


def claim_batch(key: str) -> bool:
    """On a Dask worker: whether this is the first run of batch `key` in the cluster, which it
    now claims (in the scheduler's metadata). Dask runs a task again when its worker dies,
    while it runs or after it finished (its result died with it): the dead worker may have
    mailed anyone in the batch, so the rerun sends nothing and the flow's process records
    the batch as uncertain (`_lost`). A batch that was queued on the dead worker and never
    started is claimed by its rerun and sent as usual."""
    from distributed import get_client

    client, path = get_client(), ["paperboy-batches", key]
    if client.get_metadata(path, default=None) is not None:
        return False
    client.set_metadata(path, worker_id())
    return True


def batches(items: Sequence[Subscriber], size: int) -> Iterator[list[Subscriber]]:
    """The subscribers a batch at a time, each batch taken when it is reached (packed
    subscribers are unpickled then, not all at once)."""
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def send_batches(settings: Settings, subscribers: Sequence[Subscriber], corpus: Corpus,
                 dry_run: bool) -> BatchReport:
    """Every batch through `send-batch`, inside a flow run: in turn in this process with
    the thread runner, all at once on the Dask workers with the dask runner."""
    signer_for(settings)  # a DKIM key that cannot sign stops the run here, before anything is sent
    with Store(settings.db_path) as store:
        plans = (plan_batch(batch, store, corpus, write=not dry_run)
                 for batch in batches(subscribers, settings.batch_size))
        try:
            if settings.task_runner == "thread":
                total = BatchReport()
                holds = SenderHolds()  # domains refusing us as a sender: held for the whole run
                try:
                    for plan in plans:
                        if stop_requested():
                            break  # the rest is for the rerun
                        plan.holds = holds
                        total.merge(send_batch(settings, plan, corpus, dry_run, record_here=True).report)
                        if total.broken:
                            break  # the relay refuses everything: the rest is for the rerun too
                finally:
                    close_pools()  # the render processes, if the batches used them
                return total
            return _send_on_workers(shippable(settings), plans, corpus, dry_run, store)
        finally:
            if not dry_run:
                suppress_bounced(store, settings)


def suppress_bounced(store: Store, settings: Settings) -> None:
    """Suppress the subscribers whose digests bounced too often (flows/bounces.py), also after a
    run that stopped part-way; a failure here is logged, never hides the run's own error."""
    try:
        for done in apply_suppressions(store, settings):
            get_run_logger().warning("suppressed %s: %s", done.subscriber, done.reason)
    except Exception:
        log.exception("could not apply the bounce limits; the next run or `paperboy bounces` will")


def shippable(settings: Settings) -> Settings:
    """Settings for other processes: the link-signing key resolved here, so a worker never
    generates its own (links it signed would not verify) nor touches the key file."""
    return settings.model_copy(update={"secret_key": SecretStr(secret_key(settings))})


def _send_on_workers(settings: Settings, plans: Iterator[BatchPlan], corpus: Corpus,
                     dry_run: bool, store: Store) -> BatchReport:
    """Submit every batch, then record each one's outcomes here as it comes back. A failed
    batch does not stop the others being recorded; the first failure is raised at the end,
    unless it is a worker that died: its batch's digests are then uncertain (`_lost`)."""
    from distributed.scheduler import KilledWorker

    logger = get_run_logger()
    submitted = {}
    for plan in plans:
        if not dry_run:  # a dry run sends nothing: Dask may as well run it again
            plan.key = uuid.uuid4().hex
        submitted[send_batch.submit(settings, plan, corpus, dry_run, record_here=False)] = plan
    total, failures = BatchReport(), []
    for future in as_completed(list(submitted)):
        try:
            result = future.result()
        except BatchAborted as exc:
            _record(store, exc.outcomes)
            failures.append(exc)
            continue
        except Exception as exc:  # the batch's fate is unknown (e.g. its worker died)
            if isinstance(exc, KilledWorker):  # it killed every worker Dask gave it to
                why = f"Dask gave up on it: every worker that had it died, the last {exc.last_worker.address}"
            else:
                why = f"{type(exc).__name__}: {exc}"
                failures.append(exc)
            if not dry_run:
                total.merge(_lost(store, submitted[future], corpus, settings, why))
            continue
        if result.rerun:
            total.merge(_lost(store, submitted[future], corpus, settings,
                              "its Dask worker died and Dask ran it again elsewhere, which sent nothing"))
            continue
        _record(store, result.outcomes)
        total.merge(result.report)
        logger.info("batch done on %s: %d sent", ", ".join(result.report.workers), result.report.sent)
    if failures:
        raise failures[0]
    return total


WORKER_DIED = ("the Dask worker with this digest's batch died before returning its outcomes; "
               "the server may or may not have it")


def _lost(store: Store, plan: BatchPlan, corpus: Corpus, settings: Settings, why: str) -> BatchReport:
    """A batch that never came back (its worker died, or Dask lost it): any of its digests may
    have reached the relay, and which did is unknown here. Each is recorded uncertain, as the
    delivery records a digest whose final dot got no reply: never sent again in this run, and
    the next run applies PAPERBOY_UNCERTAIN."""
    report = BatchReport().merge(plan.report)
    # the Message-IDs compose.py gives (a backfill's catch-up digest keeps the default domain)
    domain = {} if corpus.catch_up else {"domain": message_id_domain(settings)}
    for subscriber in plan.todo:
        outcome = Outcome(subscriber.email, corpus.digest_date, "uncertain", error=WORKER_DIED,
                          message_id=message_id_for(subscriber.email, corpus.digest_date, **domain))
        store.record_outcome(outcome)
        report.count(outcome)
    get_run_logger().warning("a batch of %d digest(s) was lost (%s): they are recorded uncertain, as the dead "
                             "worker may have sent any of them; none is sent again in this run, and the next run "
                             "applies PAPERBOY_UNCERTAIN", len(plan.todo), why)
    return report


def _record(store: Store, outcomes: Sequence) -> None:
    for outcome in outcomes:
        store.record_outcome(outcome)
