"""``paperboy dkim-keygen`` and ``paperboy bounces``: the commands of a trusted bulk sender.

A thin layer over flows/dkim.py and flows/bounces.py; errors become one red line on stderr
and exit code 2, never a traceback. Merged into the top-level ``paperboy`` command (cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, Optional

import typer
from pydantic import ValidationError

from flows.settings import PROJECT_ROOT, Settings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"PAPERBOY_{'_'.join(str(p) for p in err['loc']).upper()}: "
                 f"{err['msg'].removeprefix('Value error, ')}" for err in exc.errors()]
        fail("invalid configuration\n  " + "\n  ".join(lines))


@app.command("dkim-keygen")
def dkim_keygen(
    out: Optional[Path] = typer.Option(
        None, "--out", "-o",
        help="key file to write (default: PAPERBOY_DKIM_KEY_FILE, else var/dkim/SELECTOR.pem)"),
    selector: Optional[str] = typer.Option(None, "--selector", help="DKIM selector (default: PAPERBOY_DKIM_SELECTOR)"),
    bits: int = typer.Option(2048, "--bits", help="RSA key size (1024-4096; 2048 is what receivers expect)"),
    show: bool = typer.Option(False, "--show", help="write nothing: print the DNS records for the existing key"),
) -> None:
    """Make a DKIM signing key (mode 0600) and print the DNS records to publish and check."""
    from flows import dkim

    settings = settings_or_exit()
    selector = selector or settings.dkim_selector
    path = out or settings.dkim_key_file or PROJECT_ROOT / "var" / "dkim" / f"{selector}.pem"
    if not 1024 <= bits <= 4096:
        fail(f"--bits {bits}: use 1024 to 4096 (2048 recommended)")
    if not dkim._SELECTOR.match(selector):  # it names the DNS record to publish, and goes into s=
        fail(f"--selector {selector!r} is not a DNS name; use letters, digits and hyphens, e.g. pb2026")
    try:
        domain = dkim.signing_domain(settings.mail_from)
        if show:
            signer = dkim.Signer(domain, selector, dkim.read_key(path))
        else:
            signer = dkim.generate_key(path, bits)
            typer.echo(f"wrote a {bits}-bit RSA key to {path} (mode 600): keep it secret, back it up")
        records = dkim.dns_records(signer, domain, selector, report_to=f"dmarc-reports@{domain}")
    except dkim.DkimError as exc:
        fail(str(exc))
    except OSError as exc:  # a folder that cannot be made or written
        fail(f"--out {path}: cannot write the key ({exc.strerror or exc}: {exc.filename or path})")
    publish, check = records[0], records[1:]
    typer.echo("\nPublish this DNS record (the public key receivers verify each digest with):\n")
    typer.echo(f"  {publish.name}.  TXT  {dkim.txt_chunks(publish.value)}\n")
    typer.echo("Check these (your domain may have them already; never publish two SPF records):\n")
    for record in check:
        typer.echo(f"  {record.name}.  TXT  \"{record.value}\"")
        typer.echo(f"      {record.why}")
    typer.echo("\nThen sign every digest with it:\n")
    typer.echo(f"  export PAPERBOY_DKIM_KEY_FILE={path.resolve()}")
    typer.echo(f"  export PAPERBOY_DKIM_SELECTOR={selector}")
    typer.echo(f"\nOnce DNS has it, `dig +short TXT {publish.name}` prints the record.")


@app.command("bounces")
def bounces(
    maildir: Optional[Path] = typer.Option(None, "--maildir", help="the Maildir your MTA delivers bounces+*@ to"),
    imap: bool = typer.Option(False, "--imap", help="read the mailbox at PAPERBOY_BOUNCE_IMAP_URL instead"),
    include_seen: bool = typer.Option(False, "--all", help="also read messages already marked seen (safe: "
                                      "a bounce is counted once however often it is read)"),
) -> None:
    """Read bounce reports (DSNs) from the bounce mailbox, count them per subscriber and digest,
    and suppress the subscribers over PAPERBOY_BOUNCE_LIMIT / PAPERBOY_BOUNCE_LIMIT_NO_USER."""
    from flows.bounces import BounceError, process_imap, process_maildir
    from flows.links import SecretKeyError, secret_key
    from flows.store import Store, StoreError

    settings = settings_or_exit()
    if (maildir is None) == (not imap):
        fail("where are the bounces? give --maildir DIR or --imap (PAPERBOY_BOUNCE_IMAP_URL), one of them")
    if not settings.bounce_address:
        fail("PAPERBOY_BOUNCE_ADDRESS is not set, so digests carry no VERP token and no bounce can be "
             "matched to its digest; set it (e.g. bounces@example.org) for the runs that send, then read "
             "the bounces of digests sent after that")
    try:
        key = secret_key(settings)
        with Store(settings.db_path) as store:
            if maildir is not None:
                run = process_maildir(maildir, store, settings, key, include_seen=include_seen)
            else:
                run = process_imap(settings, store, key, include_seen=include_seen)
    except (BounceError, SecretKeyError, StoreError) as exc:
        fail(str(exc))
    typer.echo(run.line())
    for done in run.suppressed:
        typer.echo(f"  suppressed {done.subscriber}: {done.reason}")
    for line in run.unmatched:
        typer.secho(f"  ! unmatched {line}", fg="yellow", err=True)
