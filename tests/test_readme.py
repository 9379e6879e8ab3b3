"""The README stays a true guide: every setting documented, every documented setting real."""

from __future__ import annotations

import re

from flows.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_has_a_row_in_the_configuration_table():
    rows = set(re.findall(r"^\| `(PAPERBOY_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    settings = {f"PAPERBOY_{name.upper()}" for name in Settings.model_fields}
    assert settings - rows == set(), "settings missing from the README's table"
    assert rows - settings == set(), "README rows for settings that do not exist"


def test_every_variable_the_readme_mentions_exists():
    mentioned = set(re.findall(r"PAPERBOY_[A-Z0-9_]*[A-Z0-9]", README))
    assert mentioned <= {f"PAPERBOY_{name.upper()}" for name in Settings.model_fields}


# -- the README's commands are true ------------------------------------------------------------------

import shlex  # noqa: E402

import click  # noqa: E402
import pytest  # noqa: E402
import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from flows.cli import app  # noqa: E402


def readme_commands() -> list[str]:
    """Every `paperboy …` command the README shows: lines of its shell blocks and inline code
    (placeholders such as `[--date D]`, `EMAIL` or `…` are the CLI table's syntax, not commands)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in re.split(r"&&|;", line):
                found.append(part.strip())
    found += re.findall(r"`((?:\.venv/bin/)?paperboy [^`]+)`", README)
    commands = []
    for text in found:
        text = re.sub(r"^(\S+=\S+ )+", "", text)  # VAR=value prefixes
        if not re.match(r"(\.venv/bin/)?paperboy( |$)", text):
            continue
        if re.search(r"\[|…|\||\bEMAIL\b|\bFILE\b|\bDIR\b|\bDAY\b", text):
            continue
        commands.append(text)
    return sorted(set(commands))


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_an_operator_needs():
    named = {shlex.split(c)[1] for c in COMMANDS}
    assert {"subscribers", "backfill", "serve", "web", "preview"} <= named, COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command):
    """Each command's options exist for that very subcommand (`set … --weekly fri` did not)."""
    args = shlex.split(command)[1:]
    group: click.Command = typer.main.get_command(app)
    ctx = group.make_context("paperboy", list(args), resilient_parsing=False)
    while isinstance(group, click.Group) and ctx.protected_args + ctx.args:
        rest = ctx.protected_args + ctx.args
        name, group, rest = group.resolve_command(ctx, rest)
        ctx = group.make_context(name, rest, parent=ctx)  # raises UsageError on a bad option


def test_the_readme_subscriber_commands_run_in_order(tmp_path, monkeypatch):
    """The Subscribers section's block, run for real, in order, on an empty directory."""
    monkeypatch.setenv("PAPERBOY_SUBSCRIBERS_DIR", str(tmp_path / "subscribers"))
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(tmp_path / "paperboy.db"))
    (tmp_path / "subscribers").mkdir()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", README, re.S) if "subscribers add" in b)
    runner = CliRunner()
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if not command or "preview" in command:  # preview needs listings: covered by the flow tests
            continue
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    assert not list((tmp_path / "subscribers").glob("*.yaml"))  # the last one removed bob
