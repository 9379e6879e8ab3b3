"""``paperboy``: the operator's command line. A thin layer over the flows and stages."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from flows.settings import PROJECT_ROOT, Settings, restrict_umask

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
    port: int = typer.Option(8000, help="port to listen on"),
) -> None:
    """Serve the subscribers' pages: preferences, unsubscribe, subscribe (double opt-in)."""
    from flows.web import web_command

    load_settings()
    web_command(host=host, port=port)

EXIT_PARTIAL = 1  # the run finished but some digests or listing dates failed
EXIT_CONFIG = 2  # nothing ran: fix the configuration or input first
EXIT_STOPPED = 3  # stopped early on request (SIGTERM/SIGINT): what was sent is recorded; rerun for the rest


def fail(message: str, code: int = EXIT_CONFIG) -> None:
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
        raise AssertionError("unreachable")
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


def print_summary(result: dict) -> int:
    typer.echo(result["line"])
    problems = [f"failed {k}: {v}" for k, v in result["failed"].items()]
    problems += [f"deferred {k}: {v}" for k, v in result["deferred"].items()]
    problems += [f"uncertain {k}: {v}" for k, v in result.get("uncertain", {}).items()]
    problems += [f"fetch {k}: {v}" for k, v in result["dates_failed"].items()]
    problems += [f"subscriber file {e}" for e in result["subscriber_errors"]]
    for line in problems:
        typer.secho(f"  ! {line}", fg="yellow", err=True)
    if result.get("stopped"):
        return EXIT_STOPPED
    return EXIT_PARTIAL if (result["failed"] or result["deferred"] or result["dates_failed"]) else 0


@app.command()
def run(
    digest_date: Optional[str] = typer.Option(None, "--date", help="digest date YYYY-MM-DD (default: today)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="rank and render, send nothing, write no ledger"),
    only: Optional[str] = typer.Option(None, "--only", metavar="EMAIL", help="just this subscriber"),
    source: Optional[str] = typer.Option(None, "--source", help="just this source (huggingface, arxiv, snapshot)"),
) -> None:
    """Run the daily digest flow once, now."""
    load_settings()  # fail early and clearly on a bad environment
    day = parse_date(digest_date) if digest_date else None
    from flows.daily import daily_digest
    from flows.deliver import RelayError

    try:
        result = daily_digest(digest_date=day, dry_run=dry_run, only=only, source=source)
    except RelayError as exc:  # the circuit breaker: every message would fail the same way
        fail(f"{exc}\nNothing was marked failed: run again once the relay works.", EXIT_PARTIAL)
        return
    raise typer.Exit(print_summary(result))


@app.command()
def backfill(
    start: str = typer.Option(..., "--from", help="first listing date, YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="last listing date, YYYY-MM-DD"),
    source: Optional[str] = typer.Option(None, "--source", help="one source only (default: PAPERBOY_SOURCES)"),
    send: bool = typer.Option(False, "--send", help="also mail each subscriber ONE catch-up digest for the range"),
    refresh: bool = typer.Option(False, "--refresh", help="fetch dates again even if already fetched"),
) -> None:
    """Fetch and index a range of listing dates; resumable (fetched dates are skipped)."""
    load_settings()
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    from flows.backfill import BackfillRangeError, backfill as backfill_flow, check_range
    from flows.tasks import today_in

    try:
        check_range(first, last, today_in(load_settings().timezone))
    except BackfillRangeError as exc:
        fail(str(exc))
    try:
        result = backfill_flow(start=first, end=last, source=source, send=send, refresh=refresh)
    except KeyboardInterrupt:
        typer.secho("interrupted: the dates fetched so far are kept; run the same command "
                    "again to resume", fg="yellow", err=True)
        raise typer.Exit(130)
    raise typer.Exit(print_summary(result))


@app.command()
def serve() -> None:
    """Run the daily flow on its schedule (PAPERBOY_SCHEDULE, PAPERBOY_TIMEZONE) until stopped.

    Needs a persistent Prefect server: start one with `prefect server start` and
    export PREFECT_API_URL=http://127.0.0.1:4200/api first.
    """
    settings = load_settings()
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

    typer.echo(f"serving daily-digest: cron '{settings.schedule}' in {settings.timezone}")
    serve_daily(settings)


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
) -> None:
    """Run the daily flow offline: bundled listings, a local SMTP server, a Maildir under var/demo."""
    import shutil

    from flows.mailsink import MaildirSink

    home = PROJECT_ROOT / "var" / "demo"
    if fresh and home.exists():
        shutil.rmtree(home)
    maildir = home / "mail"
    with MaildirSink(maildir) as sink:
        os.environ.update({
            "PAPERBOY_SOURCES": "snapshot",
            "PAPERBOY_SNAPSHOT_REPLAY": "true",
            "PAPERBOY_DB_PATH": str(home / "paperboy.db"),
            "PAPERBOY_SMTP_HOST": "127.0.0.1",
            "PAPERBOY_SMTP_PORT": str(sink.port),
            "PAPERBOY_SMTP_TLS": "none",
            "PAPERBOY_MAIL_FROM": "Paperboy demo <paperboy@localhost>",
        })
        os.environ.pop("PAPERBOY_SMTP_USER", None)
        os.environ.pop("PAPERBOY_SMTP_PASSWORD", None)
        typer.echo(f"demo SMTP server listening on 127.0.0.1:{sink.port}, storing mail in {maildir}")
        from flows.daily import daily_digest

        result = daily_digest()
        received = sink.received
    code = print_summary(result)
    if received:
        typer.echo(f"{received} new messages delivered to the Maildir {maildir}")
        typer.echo(f"open the HTML digests in a browser: {maildir / 'html'}")
        for path in sorted((maildir / "html").glob("*.html"))[-received:]:
            typer.echo(f"  file://{path}")
    else:
        typer.echo("0 new messages this time: every subscriber already has today's digest "
                   "(run `make demo-reset` or `paperboy demo --fresh` to start over)")
    raise typer.Exit(code)


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
    day = parse_date(digest_date) if digest_date else None
    try:
        result = preview_digest(settings, email, day)
    except PreviewError as exc:
        fail(str(exc))
        return
    target = out or PROJECT_ROOT / "var" / f"preview-{email.replace('@', '_at_')}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.html, encoding="utf-8")
    typer.echo(f"{result.count} papers for {email} ({result.candidates} candidates, "
               f"{result.already_seen} already sent to them)")
    for line in result.explanations:
        typer.echo(f"  {line}")
    if text:
        typer.echo(result.text)
    typer.echo(f"wrote {target}")


@app.command()
def status(
    runs: int = typer.Option(7, "--runs", min=1, help="how many recent digest dates to show"),
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
