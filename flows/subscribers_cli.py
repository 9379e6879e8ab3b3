"""``paperboy subscribers …``: the operator's commands over :mod:`flows.subscribers`.

A thin layer: every edit goes through the library functions the web pages use too.
Library errors become one red line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from pydantic import ValidationError

from flows import subscribers as subs
from flows.rank import RELATED_LEVELS
from flows.settings import PROJECT_ROOT, Settings

app = typer.Typer(
    help="Manage subscriber files: list, show, add, set, remove, check, preview.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BROKEN = 1  # the command ran, but some subscriber files are broken
EXIT_USAGE = 2  # nothing was changed: fix the input first
DIR_KEY = "paperboy.subscribers_dir"  # in ctx.meta, shared with every subcommand


class NoSuchKeyword(ValueError):
    """A keyword to remove is not among the subscriber's keywords."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def settings_for(ctx: typer.Context) -> Settings:
    overrides = {"subscribers_dir": ctx.meta[DIR_KEY]} if ctx.meta.get(DIR_KEY) else {}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PAPERBOY_" + "_".join(str(p) for p in first["loc"]).upper()
        fail(f"invalid configuration: {name}: {first['msg'].removeprefix('Value error, ')}")


def directory_for(ctx: typer.Context, must_exist: bool = False) -> Path:
    directory = ctx.meta.get(DIR_KEY) or settings_for(ctx).subscribers_dir
    # `add` may create a missing folder, but nothing can make one where a file is
    if (must_exist or directory.exists()) and not directory.is_dir():
        fail(f"{directory} is not a directory; set PAPERBOY_SUBSCRIBERS_DIR or pass --dir")
    return directory


def keywords_option(value: Optional[str], option: str) -> Optional[list[str]]:
    if value is None:
        return None
    try:
        return subs.split_keywords(value)
    except subs.KeywordSyntaxError as exc:
        fail(f"{option}: {exc}")


def weekday_option(value: Optional[str]) -> Optional[str]:
    """Accept a day's full name or its first three letters, any case."""
    if value is None:
        return None
    day = value.strip().lower()
    for name in subs.WEEKDAYS:
        if day == name or (len(day) >= 3 and name.startswith(day)):
            return name
    fail(f"{value!r} is not a weekday; use one of {', '.join(subs.WEEKDAYS)}")


@app.callback()
def main(
    ctx: typer.Context,
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="subscribers directory (default: PAPERBOY_SUBSCRIBERS_DIR or ./subscribers)",
    ),
) -> None:
    """Manage subscriber files: list, show, add, set, remove, check, preview."""
    ctx.meta[DIR_KEY] = directory


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """One line per subscriber; broken files are listed with their error (exit 1)."""
    directory = directory_for(ctx, must_exist=True)
    rows, errors = [], []
    for path, subscriber, error in subs.scan(directory):
        if error is not None:
            errors.append(error)
            continue
        assert subscriber is not None
        when = subscriber.frequency if subscriber.frequency == "daily" else f"weekly ({subscriber.weekday})"
        rows.append((subscriber.email, subscriber.name, when, str(len(subscriber.keywords)),
                     active_cell(subscriber), path.name))
    if rows:
        print_table(("email", "name", "frequency", "keywords", "active", "file"), rows)
    else:
        typer.echo(f"no subscribers in {directory}")
    for error in errors:
        typer.secho(f"broken: {error}", fg="red", err=True)
    raise typer.Exit(EXIT_BROKEN if errors else 0)


def active_cell(subscriber: subs.Subscriber) -> str:
    if subscriber.active:
        return "yes"
    if subscriber.suppressed is not None:  # its mail bounced: `set EMAIL --active` resumes it
        return f"no: suppressed {subscriber.suppressed.date} ({subscriber.suppressed.reason[:60]})"
    return "no"


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@app.command()
def show(ctx: typer.Context, email: str = typer.Argument(..., help="the subscriber's email address")) -> None:
    """The subscriber's file path and its YAML, as written."""
    directory = directory_for(ctx)
    try:
        path = subs.find(directory, email)[0]
        problem = None
    except subs.SubscriberNotFound as exc:
        fail(f"{exc}; see `paperboy subscribers list`")
    except subs.SubscriberError as exc:
        detail = getattr(exc, "detail", None)
        if detail is None:
            fail(str(exc))
        path, problem = detail.path, exc
    typer.echo(f"# {path}")
    typer.echo(path.read_text(encoding="utf-8").rstrip("\n"))
    if problem is not None:
        typer.secho(f"broken: {problem}", fg="red", err=True)
        raise typer.Exit(EXIT_BROKEN)


@app.command()
def add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="the new subscriber's email address"),
    keywords: str = typer.Option(..., "--keywords", "-k", help='comma-separated, e.g. "diffusion, \\"world models\\""'),
    name: Optional[str] = typer.Option(None, "--name", help="shown in the greeting and the To: header"),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="comma-separated words or phrases to leave out"),
    max_papers: Optional[int] = typer.Option(None, "--max", help="at most this many papers per digest (1-100)"),
    weekly: Optional[str] = typer.Option(None, "--weekly", "--weekday", metavar="DAY",
                                         help="a weekly digest on this day (mon … sun)"),
    trending: Optional[bool] = typer.Option(None, "--trending/--no-trending", help="add an 'also trending' section"),
    related: Optional[str] = typer.Option(None, "--related", metavar="off|near|far",
                                          help="papers only related terms find: off, near (default) or far"),
) -> None:
    """Create a subscriber file."""
    fields = {
        "name": name,
        "exclude": keywords_option(exclude, "--exclude"),
        "max_papers": max_papers,
        "include_trending": trending,
        "related": related_option(related),
    }
    if weekly is not None:
        fields.update(frequency="weekly", weekday=weekday_option(weekly))
    given = {key: value for key, value in fields.items() if value is not None}
    try:
        path = subs.add(directory_for(ctx), email, keywords=keywords_option(keywords, "--keywords") or [], **given)
    except subs.SubscriberError as exc:
        fail(str(exc))
    typer.echo(f"added {email}: {path}")


@app.command("set")
def set_(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="the subscriber's email address"),
    keywords: Optional[str] = typer.Option(None, "--keywords", "-k", help="replace all keywords (comma-separated)"),
    add_keyword: Optional[list[str]] = typer.Option(None, "--add-keyword", help="append keywords (comma-separated, repeatable)"),
    remove_keyword: Optional[list[str]] = typer.Option(None, "--remove-keyword", help="drop keywords (repeatable)"),
    exclude: Optional[str] = typer.Option(None, "--exclude", help='replace the exclusions ("" clears them)'),
    name: Optional[str] = typer.Option(None, "--name", help="the subscriber's name"),
    max_papers: Optional[int] = typer.Option(None, "--max", help="at most this many papers per digest (1-100)"),
    frequency: Optional[str] = typer.Option(None, "--frequency", help="daily or weekly"),
    weekday: Optional[str] = typer.Option(None, "--weekday", "--weekly", metavar="DAY",
                                          help="day of a weekly digest (implies --frequency weekly)"),
    trending: Optional[bool] = typer.Option(None, "--trending/--no-trending", help="the 'also trending' section"),
    active: Optional[bool] = typer.Option(None, "--active/--inactive", help="resume or pause the digests"),
    related: Optional[str] = typer.Option(None, "--related", metavar="off|near|far",
                                          help="papers only related terms find: off, near or far"),
) -> None:
    """Change some fields of a subscriber; the file keeps its comments and key order."""
    changes = {
        "related": related_option(related),
        "keywords": keywords_option(keywords, "--keywords"),
        "exclude": keywords_option(exclude, "--exclude"),
        "name": name,
        "max_papers": max_papers,
        "frequency": frequency.strip().lower() if frequency else None,
        "weekday": weekday_option(weekday),
        "include_trending": trending,
        "active": active,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if "weekday" in changes:
        changes.setdefault("frequency", "weekly")
    added = [k for item in add_keyword or [] for k in keywords_option(item, "--add-keyword") or []]
    removed = [k for item in remove_keyword or [] for k in keywords_option(item, "--remove-keyword") or []]
    if not (changes or added or removed):
        fail("nothing to change; give at least one option, e.g. --max 10 (see --help)")
    directory = directory_for(ctx)
    try:
        if added or removed:
            subscriber = subs.modify(directory, email, lambda current: {
                **changes, "keywords": edit_keywords(changes.get("keywords", current.keywords), added, removed),
            })
        else:
            subscriber = subs.update(directory, email, **changes)
    except (subs.SubscriberError, NoSuchKeyword) as exc:
        fail(str(exc))
    touched = sorted({*changes, *(["keywords"] if added or removed else [])})
    typer.echo(f"updated {subscriber.email}: " + ", ".join(touched))


def related_option(value: str | None) -> str | None:
    """--related, checked here so the message names the option."""
    if value is None:
        return None
    level = value.strip().lower()
    if level not in RELATED_LEVELS:
        fail(f"--related {value!r}: use off, near or far")
    return level


def edit_keywords(current: list[str], added: list[str], removed: list[str]) -> list[str]:
    """Drop ``removed`` (case-insensitively; each must be there) and append new ``added``."""
    kept = list(current)
    for keyword in removed:
        match = next((k for k in kept if k.lower() == keyword.lower()), None)
        if match is None:
            raise NoSuchKeyword(f"--remove-keyword {keyword!r}: not among the keywords {kept}")
        kept.remove(match)
    lowered = {k.lower() for k in kept}
    return kept + [k for k in dict.fromkeys(added) if k.lower() not in lowered]


@app.command()
def remove(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="the subscriber's email address"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Remove a subscriber (the file moves to .removed/ in the subscribers directory)."""
    directory = directory_for(ctx)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"not removing {email} without confirmation; pass --yes when not at a terminal")
        if not typer.confirm(f"Remove {email}?"):
            fail("nothing removed")
    try:
        target = subs.remove(directory, email)
    except subs.SubscriberError as exc:
        fail(str(exc))
    typer.echo(f"removed {email}; the file is kept as {target}")


@app.command()
def check(ctx: typer.Context) -> None:
    """Validate every subscriber file; exit 1 if any is broken (warnings, such as a weekday:
    without frequency: weekly, are shown and leave the exit code 0)."""
    directory = directory_for(ctx, must_exist=True)
    good, errors, warnings = 0, [], []
    for path, subscriber, error in subs.scan(directory):
        if error is not None:
            errors.append(error)
            continue
        good += 1
        warnings += [subs.SubscriberFileError(path, field, message) for field, message in subs.notices(subscriber)]
    for error in errors:
        typer.secho(str(error), fg="red", err=True)
    for warning in warnings:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)
    also = f", {len(warnings)} warning(s)" if warnings else ""
    if errors:
        typer.echo(f"{len(errors)} broken file(s), {good} subscribers OK{also}")
        raise typer.Exit(EXIT_BROKEN)
    typer.echo(f"{good} subscribers OK{also}")


def write_preview(target: Path, html: str) -> None:
    """Write a preview's HTML to ``target`` (its folder made if need be), or say why not (-o)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        fail(f"-o {target}: cannot write the preview ({exc.strerror or exc}); give a file in a writable folder")


@app.command()
def preview(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="the subscriber's email address"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default var/preview-EMAIL.html)"),
) -> None:
    """Write the HTML digest this subscriber would get now and explain each paper; sends nothing."""
    from flows.preview import PreviewError, preview_digest  # the pipeline is heavy: load it on demand

    try:
        result = preview_digest(settings_for(ctx), email)
    except PreviewError as exc:
        fail(str(exc))
    target = out or PROJECT_ROOT / "var" / f"preview-{subs.file_stem(email)}.html"
    write_preview(target, result.html)
    typer.echo(f"{result.count} papers for {email}")
    for line in result.explanations:
        typer.echo(f"  {line}")
    if result.would_get:
        typer.secho(f"note: {result.would_get}", fg="yellow")
    typer.echo(f"wrote {target}")
