"""``paperboy``: the operator's command line. A thin layer over the flows and stages."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from pydantic import ValidationError

from flows.settings import PROJECT_ROOT, SOURCE_NAMES, Settings, restrict_umask

app = typer.Typer(
    help="Paperboy: the day's trending research papers, ranked by each subscriber's keywords.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def private_files() -> None:
    """Paperboy: the day's trending research papers, ranked by each subscriber's keywords."""
    restrict_umask()  # every file a command creates (database, key, subscribers, mail) is 0600


from flows.subscribers_cli import app as subscribers_app  # noqa: E402

app.add_typer(subscribers_app, name="subscribers", help="List, check and edit subscriber files.")

from flows.mail_cli import app as mail_app  # noqa: E402

app.add_typer(mail_app)  # dkim-keygen, bounces: top-level commands


@app.command("web")
def web(
    host: str = typer.Option("127.0.0.1", help="address to listen on (put an HTTPS proxy in front)"),
    port: int = typer.Option(8000, min=0, max=65535, help="port to listen on (0: any free one)"),
) -> None:
    """Serve the subscribers' pages: preferences, unsubscribe, subscribe (double opt-in)."""
    from flows.web import web_command

    check_files(load_settings())
    web_command(host=host, port=port)

EXIT_PARTIAL = 1  # the run finished, but digests failed or were deferred, or listing dates failed
EXIT_CONFIG = 2  # nothing ran: fix the configuration or input first
EXIT_BROKEN_FILES = 3  # every digest went out, but some subscriber files are broken (they got none)
# 130 (SIGINT) and 143 (SIGTERM): stopped on request, everything reached is recorded; see
# flows/signals.py EXIT_CODES and the README's exit code table.


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with a friendly message naming the bad variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "PAPERBOY_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "settings"
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        fail("invalid configuration\n  " + "\n  ".join(lines))
    if settings.secret_key is None:  # a weak key file beside the database is refused as early
        from flows.links import SecretKeyError, key_file, read_key_file

        try:
            read_key_file(key_file(settings))
        except SecretKeyError as exc:
            fail(str(exc))
    if settings.dkim_key_file is not None:  # a bad DKIM key stops the run before anything is sent
        from flows.dkim import DkimError, signer_for

        try:
            signer_for(settings)
        except DkimError as exc:
            fail(str(exc))
    return settings


def check_files(settings: Settings, *, database: bool = True) -> None:
    """The folders and files the settings name can be used: otherwise one line per variable
    and exit 2 now, instead of a traceback halfway through a run (or, for a mistyped
    subscribers folder, a run that mails nobody and says all went well)."""
    from flows.render import CSS_FILE, HTML_TEMPLATE, TEXT_TEMPLATE

    problems = []
    if not settings.subscribers_dir.is_dir():
        problems.append(f"PAPERBOY_SUBSCRIBERS_DIR: {settings.subscribers_dir} is not a directory; point it at "
                        "the folder of subscriber YAML files (or create it)")
    missing = [name for name in (HTML_TEMPLATE, TEXT_TEMPLATE, CSS_FILE)
               if not (settings.templates_dir / name).is_file()]
    if missing:
        problems.append(f"PAPERBOY_TEMPLATES_DIR: {settings.templates_dir} has no {', '.join(missing)}; point it "
                        "at the project's templates/ folder (or a copy of it)")
    if settings.acronyms_file is not None:
        from flows.rank.acronyms import AcronymFileError, load_acronyms

        try:
            load_acronyms(settings.acronyms_file)
        except AcronymFileError as exc:
            problems.append(f"PAPERBOY_ACRONYMS_FILE: {exc}")
    if database:
        from flows.store import Store, StoreError

        try:
            with Store(settings.db_path):
                pass
        except StoreError as exc:
            problems.append(f"PAPERBOY_DB_PATH: {exc}")
        except OSError as exc:
            problems.append(f"PAPERBOY_DB_PATH: {settings.db_path}: cannot create the database "
                            f"({exc.strerror or exc}: {exc.filename or settings.db_path})")
    if problems:
        fail("invalid configuration\n  " + "\n  ".join(problems))


def check_not_running(settings: Settings) -> None:
    """No other run is sending from this database (the flow holds flows.store.run_lock while
    it runs; this says so before a temporary server is started for nothing)."""
    from flows.store import RunLocked, run_lock

    try:
        with run_lock(settings.db_path):
            pass
    except RunLocked as exc:
        fail(str(exc))


def print_summary(result: dict) -> int:
    typer.echo(result["line"])
    if result.get("relay_broken"):  # the circuit breaker: every message would fail the same way
        typer.secho(f"error: {result['relay_broken']}\nNothing was marked failed: run again once the relay works.",
                    fg="red", err=True)
        return EXIT_PARTIAL
    problems = digest_problems("failed", result["failed"])
    problems += digest_problems("deferred", result["deferred"])
    problems += digest_problems("uncertain", result.get("uncertain", {}))
    problems += fetch_problems(result["dates_failed"])
    problems += [f"subscriber file {e}" for e in result["subscriber_errors"]]
    for line in problems:
        typer.secho(f"  ! {line}", fg="yellow", err=True)
    if result["failed"] or result["deferred"] or result["dates_failed"]:
        return EXIT_PARTIAL
    return EXIT_BROKEN_FILES if result["subscriber_errors"] else 0


GROUPED_FROM = 4  # subscribers sharing one reason from which the summary names a few, not each


def digest_problems(what: str, reasons: dict[str, str]) -> list[str]:
    """One line per subscriber ("failed EMAIL: reason"), except that many digests with the same
    reason (a Dask batch whose worker died, a relay refusing one provider) are one line naming
    a few of them (the run's Prefect artifact lists every one)."""
    groups: dict[str, list[str]] = {}
    for email, why in reasons.items():
        groups.setdefault(why, []).append(email)
    lines = []
    for why, emails in groups.items():
        if len(emails) < GROUPED_FROM:
            lines += [f"{what} {email}: {why}" for email in emails]
        else:
            shown = ", ".join(emails[:3])
            lines.append(f"{what} {len(emails)} digests: {why} ({shown} and {len(emails) - 3} more)")
    return lines


def fetch_problems(dates_failed: dict[str, str]) -> list[str]:
    """One line per failed listing date ("source:date" → reason), except that dates of one
    source failing for the same reason (an unreachable source's untried dates, a month of
    one outage) are one line: a year's backfill without network is not 366 lines."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key, why in dates_failed.items():
        source, _, day = key.rpartition(":")
        groups.setdefault((source, why), []).append(day)
    lines = []
    for (source, why), days in sorted(groups.items(), key=lambda group: (group[0][0], min(group[1]))):
        if len(days) == 1:
            lines.append(f"fetch {source}:{days[0]}: {why}")
        else:
            days.sort()
            lines.append(f"fetch {source}: {len(days)} dates, {days[0]} … {days[-1]}: {why}")
    return lines


def check_source(settings: Settings, source: str | None) -> None:
    if source is not None and source not in SOURCE_NAMES:
        fail(f"--source {source!r} is not a source; use one of {', '.join(SOURCE_NAMES)} "
             f"(PAPERBOY_SOURCES is {','.join(settings.sources)})")


def check_not_future_date(settings: Settings, day: date | None, option: str = "--date") -> None:
    from flows.fetch import FutureDateError, check_not_future

    if day is not None:
        try:
            check_not_future(day, settings.timezone, option)
        except FutureDateError as exc:
            fail(str(exc))


def check_only(settings: Settings, only: str | None) -> None:
    """--only must name a valid subscriber: otherwise the run would serve nobody, silently."""
    if only is None:
        return
    from flows.subscribers import load_all

    subscribers, errors = load_all(settings.subscribers_dir)
    if not any(s.email.lower() == only.lower() for s in subscribers):
        # Imported only to refuse: flows.tasks imports Prefect, which must not be imported before
        # run_flow sets PREFECT_API_URL (after the run, reading its result would start a second
        # temporary server: 5 s, up to 90 s and "Error logging to API" on a busy machine).
        from flows.tasks import unknown_subscriber_message

        fail(unknown_subscriber_message(only, settings, errors))


def run_flow(start: Callable[[], Any], resume: str) -> int:
    """Run a flow at the command's edge and exit with its outcome.

    SIGINT/SIGTERM ask the run to stop (flows/signals.py); the flow then ends Cancelled with
    what it reached recorded. Without PREFECT_API_URL the flow reports to a temporary Prefect
    server started here, out of the terminal's reach, watched, and stopped last
    (flows/tempserver.py). A configured PREFECT_API_URL must answer, or nothing runs."""
    from flows.signals import exit_code, stop_on_signals
    from flows.stopping import clear_stop, stop_requested
    from flows.tempserver import (ServerError, ServerStartInterrupted, TemporaryServer, configured_api_url,
                                  drain_prefect)

    clear_stop()
    server: TemporaryServer | None = None
    interrupted = False
    with stop_on_signals():
        api_url = configured_api_url()
        if api_url and not prefect_server_reachable(api_url):
            fail(f"cannot reach the Prefect server at PREFECT_API_URL={api_url}: start it "
                 "(`prefect server start`), or unset PREFECT_API_URL to use a temporary one")
        try:
            if not api_url:
                try:
                    server = TemporaryServer().start()
                except ServerStartInterrupted as exc:
                    typer.secho(f"interrupted ({exc}) before the run started: nothing was done",
                                fg="yellow", err=True)
                    return exit_code(str(exc)) or EXIT_PARTIAL
                except ServerError as exc:
                    fail(str(exc), EXIT_PARTIAL)
                os.environ["PREFECT_API_URL"] = server.api_url
            with api_url_setting(server.api_url if server else None):
                try:
                    state = start()
                except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
                    interrupted, state = True, None
                except Exception as exc:  # noqa: BLE001 - Prefect could not even report it
                    if server is None or server.died is None:
                        raise
                    log_exception(exc)
                    state = None
                drain_prefect()
        finally:
            if server is not None:
                server.stop()
                os.environ.pop("PREFECT_API_URL", None)
        reason = "SIGINT" if interrupted else stop_requested()
    code = EXIT_PARTIAL
    if state is not None:
        from flows.tasks import summary_of

        try:
            code = print_summary(summary_of(state))  # a broken relay is in the summary (relay_broken)
        except Exception as exc:  # a crash: one line, the log above has the details
            typer.secho(f"error: the run failed: {type(exc).__name__}: {exc}", fg="red", err=True)
            code = EXIT_PARTIAL
    if server is not None and server.died is not None:
        typer.secho(f"the temporary Prefect server stopped during the run (exit {server.died}); "
                    f"what was done is recorded: {resume}", fg="yellow", err=True)
        return EXIT_PARTIAL
    if reason:
        typer.secho(f"interrupted ({reason}): what was done is recorded; {resume}", fg="yellow", err=True)
        code = exit_code(reason) or code
    return code


def daily_flow() -> Any:
    """The daily flow, imported when called: Prefect reads its settings once, at import, so
    it is imported only after run_flow has set PREFECT_API_URL."""
    from flows.daily import daily_digest

    return daily_digest


def log_exception(exc: BaseException) -> None:
    import logging

    logging.getLogger("paperboy").debug("the run ended with %s", exc, exc_info=exc)


@contextmanager
def api_url_setting(url: str | None) -> Iterator[None]:
    """PREFECT_API_URL for Prefect inside the block, also when Prefect was imported before
    (and froze its settings then)."""
    if url is None or "prefect.settings" not in sys.modules:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


@app.command()
def run(
    digest_date: Optional[str] = typer.Option(None, "--date", help="digest date YYYY-MM-DD (default: today)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="rank and render, send nothing, write no ledger"),
    only: Optional[str] = typer.Option(None, "--only", metavar="EMAIL", help="just this subscriber"),
    source: Optional[str] = typer.Option(None, "--source", help="just this source (huggingface, arxiv, snapshot)"),
) -> None:
    """Run the daily digest flow once, now."""
    settings = load_settings()  # fail early and clearly on a bad environment
    check_files(settings)
    day = parse_date(digest_date) if digest_date else None
    check_not_future_date(settings, day)
    check_source(settings, source)
    check_only(settings, only)
    if not dry_run:
        check_not_running(settings)
    raise typer.Exit(run_flow(
        lambda: daily_flow()(digest_date=day, dry_run=dry_run, only=only, source=source, return_state=True),
        resume="run the same command again to finish (nothing is sent twice)"))


@app.command()
def backfill(
    start: str = typer.Option(..., "--from", help="first listing date, YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="last listing date, YYYY-MM-DD"),
    source: Optional[str] = typer.Option(None, "--source", help="one source only (default: PAPERBOY_SOURCES)"),
    send: bool = typer.Option(False, "--send", help="also mail each subscriber ONE catch-up digest for the range"),
    refresh: bool = typer.Option(False, "--refresh", help="fetch dates again even if already fetched"),
    long_range: bool = typer.Option(False, "--long-range", help="allow a range of more than 366 dates (hours of requests)"),
) -> None:
    """Fetch and index a range of listing dates; resumable (fetched dates are skipped)."""
    settings = load_settings()
    check_files(settings)
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    check_source(settings, source)
    from flows.fetch import BackfillRangeError, check_backfill, today_in

    try:
        check_backfill(first, last, [source] if source else list(settings.sources), today_in(settings.timezone),
                       long_range)
    except BackfillRangeError as exc:
        fail(str(exc))
    if send:
        check_not_running(settings)
    def start_backfill() -> Any:
        from flows.backfill import backfill as backfill_flow  # Prefect: after the server is up

        return backfill_flow(start=first, end=last, source=source, send=send, refresh=refresh,
                             long_range=long_range, return_state=True)

    raise typer.Exit(run_flow(
        start_backfill,
        resume="the dates fetched so far are kept; run the same command again to resume"))


@app.command()
def serve() -> None:
    """Run the daily flow on its schedule (PAPERBOY_SCHEDULE, PAPERBOY_TIMEZONE) until stopped.

    Needs a persistent Prefect server: start one with `prefect server start` and
    export PREFECT_API_URL=http://127.0.0.1:4200/api first.
    """
    settings = load_settings()
    check_files(settings)
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        fail("paperboy serve needs a running Prefect server (the temporary one cannot run "
             "schedules): run `prefect server start` in another terminal, then "
             "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and try again")
    if not prefect_server_reachable(api_url):
        fail(f"cannot reach the Prefect server at PREFECT_API_URL={api_url}: is "
             "`prefect server start` running there?")
    from flows.daily import serve_daily

    typer.echo(f"serving daily-digest: cron '{settings.schedule}' in {settings.timezone} "
               "(Ctrl-C stops serving and pauses the schedule)")
    interrupted: list[int] = []

    def on_interrupt(signum: int, frame: object) -> None:
        # Prefect's runner stops on KeyboardInterrupt and pauses the schedule; a flow run in
        # progress (its own process, in this terminal's process group) got the same Ctrl-C
        # and stops after the work in hand, Cancelled (flows/signals.py).
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        serve_daily(settings)
    except KeyboardInterrupt:
        interrupted.append(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        typer.secho("interrupted (SIGINT): stopped serving; the schedule is paused until "
                    "`paperboy serve` runs again", fg="yellow", err=True)
        raise typer.Exit(130)


def prefect_server_reachable(api_url: str, timeout: float = 5.0) -> bool:
    """Whether anything answers at the Prefect API URL. Any HTTP answer counts (a server
    behind auth may refuse /health); only a refused or silent connection does not."""
    import httpx

    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL):
        return False
    return True


@app.command()
def demo(
    fresh: bool = typer.Option(False, "--fresh", help="start from an empty demo database and mailbox"),
    home: Path = typer.Option(PROJECT_ROOT / "var" / "demo", "--home",
                              help="the demo's folder: database, signing key, Maildir, demo.env"),
) -> None:
    """Run the daily flow offline: bundled listings, a local SMTP server, a Maildir under var/demo."""
    import shutil

    from flows.mailsink import MaildirSink

    home = home.resolve()
    if fresh and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    maildir = home / "mail"
    # What `paperboy preview`, `paperboy web` and `paperboy run` need to work on the demo's
    # own database (and so its signing key, kept beside it): written for the operator to source.
    shared = {"PAPERBOY_SOURCES": "snapshot", "PAPERBOY_SNAPSHOT_REPLAY": "true",
              "PAPERBOY_DB_PATH": str(home / "paperboy.db")}
    env_file = home / "demo.env"
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in shared.items()), encoding="utf-8")
    with MaildirSink(maildir) as sink:
        os.environ.update({
            **shared,
            "PAPERBOY_SMTP_HOST": "127.0.0.1",
            "PAPERBOY_SMTP_PORT": str(sink.port),
            "PAPERBOY_SMTP_TLS": "none",
            "PAPERBOY_MAIL_FROM": "Paperboy demo <paperboy@localhost>",
        })
        os.environ.pop("PAPERBOY_SMTP_USER", None)
        os.environ.pop("PAPERBOY_SMTP_PASSWORD", None)
        settings = load_settings()
        check_files(settings)
        check_not_running(settings)
        typer.echo(f"demo SMTP server listening on 127.0.0.1:{sink.port}, storing mail in {maildir}")
        code = run_flow(lambda: daily_flow()(return_state=True),
                        resume="run `paperboy demo` again to finish")
        received = sink.received
    if received:
        typer.echo(f"{received} new messages delivered to the Maildir {maildir}")
        typer.echo(f"open the HTML digests in a browser: {maildir / 'html'}")
        for path in sorted((maildir / "html").glob("*.html"))[-received:]:
            typer.echo(f"  file://{path}")
    elif code == 0:
        typer.echo("0 new messages this time: every subscriber already has today's digest "
                   "(run `make demo-reset` or `paperboy demo --fresh` to start over)")
    typer.echo(demo_next_steps(settings, env_file))
    raise typer.Exit(code)


def demo_next_steps(settings: Settings, env_file: Path) -> str:
    """The commands that work on the demo's database and key, exactly as to type them."""
    from flows.subscribers import load_all

    subscribers, _ = load_all(settings.subscribers_dir)
    someone = subscribers[0].email if subscribers else "EMAIL"
    cli = shlex.quote(str(Path(sys.argv[0]).resolve())) if Path(sys.argv[0]).name == "paperboy" else "paperboy"
    return "\n".join([
        f"next, on the demo's database and signing key ({env_file} sets them):",
        f"  . {shlex.quote(str(env_file))}",
        f"  {cli} preview {someone}       # one subscriber's digest, explained",
        f"  {cli} web                    # the digests' 'Edit your keywords' and unsubscribe "
        f"links open here ({settings.public_base_url})",
    ])


@app.command()
def doctor(
    repair: bool = typer.Option(False, "--repair", help="fix what can be fixed (asks first at a terminal)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="with --repair: do not ask"),
) -> None:
    """Check the state for what would trouble later runs, and offer to repair it.

    Finds listings or digests recorded for dates after today (a run with a future --date, a
    changed clock or timezone), digests left in flight by a killed run, broken subscriber
    files, and an unreachable PREFECT_API_URL. Exit 0 when all is well, 1 otherwise."""
    from datetime import datetime, timedelta, timezone

    from flows.fetch import today_in
    from flows.store import Store
    from flows.subscribers import load_all
    from flows.tempserver import configured_api_url

    settings = load_settings()
    check_files(settings)
    today = today_in(settings.timezone)
    problems = 0
    with Store(settings.db_path) as store:
        future = store.future_rows(after=today)
        # in flight longer than any SMTP reply may take: the run that wrote them is gone
        longest = max(settings.smtp_timeout, settings.smtp_data_timeout)
        stale = store.stale_in_flight(before=datetime.now(timezone.utc) - timedelta(seconds=2 * longest))
        every_in_flight = store.stale_in_flight(before=datetime.now(timezone.utc) + timedelta(days=1))
    if future["fetches"] or future["digests"]:
        problems += 1
        typer.secho(f"{len(future['fetches'])} listing dates and {len(future['digests'])} digests are "
                    f"recorded for dates after today ({today} in {settings.timezone}):", fg="yellow")
        for row in future["fetches"][:10]:
            typer.echo(f"  fetch {row['source']}:{row['listed']} ({row['status']})")
        for row in future["digests"][:10]:
            typer.echo(f"  digest {row['digest_date']} {row['subscriber']} ({row['status']})")
        typer.echo("  repair: forget them (papers and deliveries stay: nothing is sent twice); "
                   "each date is fetched and sent normally when it comes")
    if stale:
        problems += 1
        typer.secho(f"{len(stale)} digests were left in flight by a run that stopped (the server may "
                    "or may not have accepted them):", fg="yellow")
        for row in stale[:10]:
            typer.echo(f"  {row['digest_date']} {row['subscriber']} (since {row['updated_at']})")
        typer.echo("  repair: mark them uncertain now (the next run applies PAPERBOY_UNCERTAIN to them, "
                   "as it would anyway)")
    subscribers, errors = load_all(settings.subscribers_dir)
    if errors:
        problems += 1
        typer.secho(f"{len(errors)} broken subscriber files (they get no digest):", fg="yellow")
        for error in errors:
            typer.echo(f"  {error}")
        typer.echo("  repair: edit each file (`paperboy subscribers check` rechecks them)")
    api_url = configured_api_url()
    if api_url and not prefect_server_reachable(api_url):
        problems += 1
        typer.secho(f"PREFECT_API_URL={api_url} does not answer: start that server, or unset the "
                    "variable to use a temporary one", fg="yellow")
    if not problems:
        typer.echo(f"all good: {len(subscribers)} subscribers, no future or in-flight records in "
                   f"{settings.db_path}")
        raise typer.Exit(0)
    # stale in-flight rows are settled only when no run could still own one
    settle = bool(stale) and len(stale) == len(every_in_flight)
    if (future["fetches"] or future["digests"] or settle) and (repair or sys.stdin.isatty()):
        if not yes:
            if not sys.stdin.isatty():
                fail("not repairing without confirmation; pass --yes when not at a terminal", EXIT_PARTIAL)
            yes = typer.confirm("repair what is listed above?", default=False)
        if yes:
            with Store(settings.db_path) as store:
                gone = store.forget_future(after=today)
                settled = store.settle_in_flight() if settle else 0
            if gone["fetches"] or gone["digests"]:
                typer.echo(f"repaired: forgot {gone['fetches']} listing dates and {gone['digests']} digests "
                           "dated after today")
                problems -= 1
            if settled:
                typer.echo(f"repaired: {settled} in-flight digests marked uncertain")
                problems -= 1
    raise typer.Exit(EXIT_PARTIAL if problems else 0)


@app.command()
def preview(
    email: str = typer.Argument(..., help="the subscriber's email address"),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default var/preview-EMAIL.html)"),
    digest_date: Optional[str] = typer.Option(None, "--date", help="digest date YYYY-MM-DD (default: today)"),
    text: bool = typer.Option(False, "--text", help="also print the plain-text part"),
) -> None:
    """Write the HTML digest this subscriber would get now; sends nothing, records nothing."""
    from flows.preview import PreviewError, preview_digest

    settings = load_settings()
    check_files(settings)
    day = parse_date(digest_date) if digest_date else None
    try:
        result = preview_digest(settings, email, day)
    except PreviewError as exc:
        fail(str(exc))
        return
    from flows.subscribers import file_stem
    from flows.subscribers_cli import write_preview

    target = out or PROJECT_ROOT / "var" / f"preview-{file_stem(email)}.html"
    write_preview(target, result.html)
    typer.echo(f"{result.count} papers for {email} ({result.candidates} candidates, "
               f"{result.already_seen} already sent to them)")
    for line in result.explanations:
        typer.echo(f"  {line}")
    if result.would_get:
        typer.secho(f"note: {result.would_get}", fg="yellow")
    if text:
        typer.echo(result.text)
    typer.echo(f"wrote {target}")


@app.command()
def status(
    runs: int = typer.Option(7, "--runs", min=1, max=10_000, help="how many recent digest dates to show"),
) -> None:
    """What the ledger says: recent runs, today's counts, uncertain and deferred digests,
    the daily cap, suppressed subscribers. Reads only."""
    from flows.status import status_report
    from flows.store import Store, StoreError
    from flows.subscribers import load_all
    from flows.tasks import today_in

    settings = load_settings()
    if not settings.db_path.exists():
        fail(f"no database at {settings.db_path} (PAPERBOY_DB_PATH): nothing has run yet")
    subscribers, _ = load_all(settings.subscribers_dir)
    try:
        with Store(settings.db_path) as store:
            typer.echo(status_report(store, settings, subscribers, today_in(settings.timezone), runs=runs))
    except StoreError as exc:
        fail(str(exc))


def parse_date(value: str, option: str = "--date") -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2025-06-13")
        raise AssertionError("unreachable")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="paperboy")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
