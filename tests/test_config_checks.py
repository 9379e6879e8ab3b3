"""A setting that names a file, a folder or an address nothing can use stops the command before
anything runs, with one line naming the variable (exit 2), as the README's exit codes say.

Before, each of these got through `load_settings`: a database path that was a folder, or under
a missing or unwritable folder, a templates folder without the digest templates, or a missing
or malformed acronyms file stopped the run halfway with a Prefect traceback and exit 1; a
mistyped subscribers folder ran "successfully" for 0 subscribers (exit 0, nobody mailed); and a
From address without a domain was mailed as ``From: nope`` while one with a line break failed
every digest with a message about the unsubscribe link.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(result, variable: str) -> None:
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert variable in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("variable, value", [
    ("PAPERBOY_DB_PATH", "{tmp}"),  # a folder
    ("PAPERBOY_DB_PATH", "{tmp}/a-file/paperboy.db"),  # under a regular file
    ("PAPERBOY_TEMPLATES_DIR", "{tmp}/no-templates"),
    ("PAPERBOY_ACRONYMS_FILE", "{tmp}/no-acronyms.csv"),
    ("PAPERBOY_ACRONYMS_FILE", "{tmp}/a-file"),  # not "acronym,long form" lines
    ("PAPERBOY_SUBSCRIBERS_DIR", "{tmp}/subscriber"),  # a typo: nobody would be mailed
    ("PAPERBOY_MAIL_FROM", "nope"),
    ("PAPERBOY_MAIL_FROM", "Paperboy <digest@example.org>\r\nBcc: someone@example.net"),
    ("PAPERBOY_MAIL_FROM", "a@example.org, b@example.org"),
    ("PAPERBOY_LIST_ID", "daily digest"),
    ("PAPERBOY_LIST_ID", "paperboy.example.org>\r\nBcc: someone@example.net"),
    ("PAPERBOY_PUBLIC_BASE_URL", "https://"),
    ("PAPERBOY_PUBLIC_BASE_URL", "https://paperboy.example.org/a b"),
    ("PAPERBOY_HF_BASE_URL", "huggingface.co"),  # was retried 5 times a date, then exit 1
    ("PAPERBOY_ARXIV_FEED_URL", "ftp://rss.arxiv.org/atom"),
    ("PAPERBOY_ARXIV_API_URL", "https://"),
])
@pytest.mark.parametrize("command", [["run", "--dry-run"], ["backfill", "--from", "2025-06-12", "--to", "2025-06-13"]])
def test_an_unusable_setting_stops_the_command_with_one_line(workspace, monkeypatch, variable, value, command):
    tmp = workspace.path
    (tmp / "a-file").write_text("one,two,three\n", encoding="utf-8")
    monkeypatch.setenv(variable, value.format(tmp=tmp))
    refused(invoke(*command), variable)


@pytest.mark.parametrize("command", [["doctor"], ["preview", "ada@example.org"]])
def test_commands_that_open_the_database_name_a_bad_path(workspace, monkeypatch, command):
    monkeypatch.setenv("PAPERBOY_DB_PATH", str(workspace.path))
    refused(invoke(*command), "PAPERBOY_DB_PATH")


def test_usable_settings_still_pass(workspace):
    from flows.cli import check_files, load_settings

    check_files(load_settings())  # the workspace's own settings: no exit


@pytest.fixture
def listed(workspace):
    from flows.fetch import today_in
    from flows.models import Paper
    from flows.store import Store

    with Store(workspace.db_path) as store:  # listed today: `subscribers preview` has no --date
        store.upsert_papers([Paper(id="2506.00001", title="Offline reinforcement learning at scale",
                                   abstract="offline RL", listed=today_in("UTC"), source="huggingface")])
    return workspace


@pytest.mark.parametrize("command", [["preview"], ["subscribers", "preview"]])
@pytest.mark.parametrize("target", ["{tmp}", "{tmp}/a-file/preview.html"])
def test_a_preview_that_cannot_be_written_says_where_and_why(listed, command, target):
    tmp = listed.path
    (tmp / "a-file").write_text("", encoding="utf-8")
    refused(invoke(*command, "ada@example.org", "-o", target.format(tmp=tmp)), "-o")


def test_status_refuses_an_absurd_number_of_runs(workspace):
    invoke("run", "--dry-run", "--date", workspace.day.isoformat())  # a database to read
    refused(invoke("status", "--runs", str(10**20)), "--runs")


@pytest.mark.parametrize("command", [["preview"], ["subscribers", "preview"]])
def test_a_preview_of_a_broken_file_names_the_file_and_field(listed, command):
    (listed.subscribers_dir / "ada.yaml").write_text("email: ada@example.org\nkeywords: [x]\nmax_papers: 0\n")
    result = invoke(*command, "ada@example.org")
    assert result.exit_code == 2, result.output
    assert "ada.yaml (field 'max_papers')" in result.output, result.output  # not "no subscriber ada@…"


@pytest.mark.parametrize("variable", ["PAPERBOY_HTTP_TIMEOUT", "PAPERBOY_SMTP_TIMEOUT", "PAPERBOY_SMTP_DATA_TIMEOUT",
                                      "PAPERBOY_HF_MIN_INTERVAL", "PAPERBOY_SMTP_RETRY_DELAY", "PAPERBOY_SMTP_RATE"])
@pytest.mark.parametrize("value", ["inf", "Infinity", "nan"])
def test_an_endless_number_is_refused(workspace, monkeypatch, variable, value):
    # "inf" seconds turned each bound (a response within 3 x PAPERBOY_HTTP_TIMEOUT, a reply to
    # the final dot) into none: a stalled relay or API held the run for ever.
    monkeypatch.setenv(variable, value)
    refused(invoke("run", "--dry-run"), variable)


@pytest.mark.parametrize("args, names", [
    (["--selector", "bad sel"], "--selector"),  # not a DNS name: the record printed could never be published
    (["--selector", "s;h=x"], "--selector"),  # would end up in the DKIM-Signature's tags
    (["--out", "{tmp}/a-file/k.pem"], "--out"),  # under a regular file: was a traceback
])
def test_dkim_keygen_refuses_a_bad_selector_or_out_with_one_line(tmp_path, monkeypatch, args, names):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    monkeypatch.setenv("PAPERBOY_MAIL_FROM", "Paperboy <digest@example.org>")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "k.pem")]
    result = invoke("dkim-keygen", "--bits", "1024", *args)
    refused(result, names)
    assert not (tmp_path / "k.pem").exists()


@pytest.mark.parametrize("command", [["add", "new@example.org", "-k", "x"], ["set", "ada@example.org", "--max", "3"],
                                     ["remove", "ada@example.org", "--yes"], ["show", "ada@example.org"]])
def test_subscriber_edits_in_a_folder_that_is_a_file_say_so(tmp_path, command):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    result = invoke("subscribers", "--dir", str(tmp_path / "a-file"), *command)
    assert result.exit_code == 2, result.output
    assert "is not a directory" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_web_refuses_a_port_that_does_not_exist(workspace, port):
    refused(invoke("web", "--port", port), "--port")
