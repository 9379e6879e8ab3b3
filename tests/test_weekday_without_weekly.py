"""`weekday:` without `frequency: weekly` does nothing: the file is read as daily.

Before, such a file (written by hand, or left by the web page's switch from weekly to daily,
which kept `weekday: friday` in the file) was silently daily: `paperboy subscribers check`
said "N subscribers OK" and the run said nothing. Now `check` and the run warn, naming the
file and field and what to do (a warning: the file still works, exit 0), and an edit that
makes a subscriber daily drops the weekday it would have left behind.
"""

from __future__ import annotations

from pathlib import Path

import logging
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from flows.cli import app
from flows.links import make_token
from flows.subscribers import find, update
from flows.web import create_app
from tests.support.smtp import settings_for

KEY = "test-secret-key-0123456789-abcdefghij"
WEEKDAY_ONLY = "email: cy@example.org\nkeywords: [diffusion]\nweekday: friday  # hand-written\n"
WEEKLY = "email: di@example.org\nkeywords: [diffusion]\nfrequency: weekly\nweekday: friday\n"
DAILY = "email: ed@example.org\nkeywords: [diffusion]\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "cy.yaml").write_text(WEEKDAY_ONLY, encoding="utf-8")
    (directory / "di.yaml").write_text(WEEKLY, encoding="utf-8")
    (directory / "ed.yaml").write_text(DAILY, encoding="utf-8")
    return directory


def test_check_warns_about_a_weekday_without_weekly_and_still_passes(folder):
    result = CliRunner().invoke(app, ["subscribers", "--dir", str(folder), "check"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    (warning,) = warnings
    assert str(folder / "cy.yaml") in warning and "field 'weekday'" in warning
    assert "frequency: weekly" in warning and "every day" in warning and "remove the weekday: line" in warning
    assert "3 subscribers OK, 1 warning(s)" in result.output


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_run_warns_about_it_too(workspace, prefect_harness):
    (workspace.subscribers_dir / "cy.yaml").write_text(WEEKDAY_ONLY, encoding="utf-8")
    from flows.daily import daily_digest

    records = Records()
    logger = logging.getLogger("prefect.flow_runs")  # get_run_logger()'s, in a flow
    logger.addHandler(records)
    try:
        daily_digest(digest_date=workspace.day, dry_run=True)
    finally:
        logger.removeHandler(records)
    hits = [m for m in records.messages if "field 'weekday'" in m]
    assert len(hits) == 1, records.messages
    assert str(workspace.subscribers_dir / "cy.yaml") in hits[0] and "frequency: weekly" in hits[0]


def test_switching_to_daily_drops_the_weekday(folder):
    saved = update(folder, "di@example.org", frequency="daily")
    assert saved.frequency == "daily"
    assert "weekday" not in (folder / "di.yaml").read_text()
    update(folder, "di@example.org", weekday="tuesday", frequency="weekly")  # and back
    assert "weekday: tuesday" in (folder / "di.yaml").read_text()
    update(folder, "di@example.org", active=False)  # an edit of other fields leaves it alone
    assert "weekday: tuesday" in (folder / "di.yaml").read_text()


def test_the_web_page_switch_to_daily_leaves_no_stale_weekday(folder, smtp_server, tmp_path):
    settings = settings_for(smtp_server, tmp_path, subscribers_dir=folder, secret_key=KEY,
                            public_base_url="http://testserver")
    token = make_token(KEY, "di@example.org", "prefs")
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/preferences/{token}").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # what the browser posts: the weekday select still says friday, frequency now daily
        form = {"csrf": csrf, "keywords": "diffusion", "max_papers": "20", "frequency": "daily",
                "weekday": "friday", "related": "near"}
        response = client.post(f"/preferences/{token}", data=form)
        assert response.status_code == 200, response.text
    text = (folder / "di.yaml").read_text()
    assert "frequency: daily" in text and "weekday" not in text, text
    _, di = find(folder, "di@example.org")
    assert di.frequency == "daily"
    result = CliRunner().invoke(app, ["subscribers", "--dir", str(folder), "check"])
    assert "di.yaml" not in result.output, result.output


def test_the_run_finds_the_files_of_many_warned_subscribers_in_one_pass(tmp_path, monkeypatch):
    """The run names each warned subscriber's file; with a thousand of them among ten
    thousand files it looked every one up on its own, reading the whole folder each time
    (≈ 3 minutes added to the morning's run). locate_each reads each file once, and finds
    what locate finds however the address is written."""
    from flows.subscribers import locate, locate_each

    directory = tmp_path / "subscribers"
    directory.mkdir()
    spellings = {
        "plain": "email: {e}\n",
        "quoted": 'email: "{e}"\n',
        "upper": "email: {E}\n",
        "flow": "{{email: '{e}', keywords: [diffusion]}}\n",
        "commented": "# mail {e} about RL too\nemail: {e}\n",
        "escaped": 'email: "{escaped}"\n',  # no text holds the address as written
    }
    emails = []
    for n in range(60):
        kind = list(spellings)[n % len(spellings)]
        email = f"r{n}@example.org"
        escaped = email.replace("@", "\\x40")
        body = spellings[kind].format(e=email, E=email.upper(), escaped=escaped)
        if kind != "flow":
            body += "keywords: [diffusion]\n"
        (directory / f"{n:03d}-{kind}.yaml").write_text(body, encoding="utf-8")
        emails.append(email)
    # a file that mentions another subscriber's address without being theirs
    (directory / "zz-mentions.yaml").write_text("email: other@example.org\nkeywords: [r1@example.org]\n",
                                                encoding="utf-8")
    wanted = emails + ["nobody@example.org"]
    expected = {email: locate(directory, email) for email in wanted}
    expected = {email: path for email, path in expected.items() if path is not None}
    assert len(expected) == len(emails)
    assert locate_each(directory, wanted) == expected  # every spelling, the first file in load order

    reads: list[str] = []
    real_read_text = Path.read_text

    def counting(self, *args, **kwargs):
        reads.append(self.name)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    written = [email for email in emails if "escaped" not in expected[email].name][:20]
    assert locate_each(directory, written + ["nobody@example.org"]) == {e: expected[e] for e in written}
    files = len(list(directory.iterdir()))
    # one pass (each file read, the 20 holders read again to parse them), then the folder
    # once more for the address no file holds; locate for each would read it 21 times
    assert len(reads) <= 2 * files + 2 * 20, (len(reads), files)
