"""Issue 12, V11: a malformed subscriber file is that file's error, never a crash; both YAML
readers (the fast C one and the round-trip one) read every file alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.subscribers import files, load_all

MALFORMED = {
    "flow nesting": "email: a@example.org\nkeywords: " + "[" * 5000 + "]" * 5000 + "\n",
    "flow nesting 200": "email: b@example.org\nkeywords: " + "[" * 200 + "x" + "]" * 200 + "\n",
    "mapping nesting": "email: c@example.org\nkeywords: [x]\nname: " + "{a: " * 3000 + "b" + "}" * 3000 + "\n",
    "block sequence nesting": "email: d@example.org\nkeywords:\n" + "- " * 20_000 + "x\n",
    "complex key with a list": "email: e@example.org\nkeywords: [x]\n? key: [list]\n: value\n",
    "complex key a list": "email: f@example.org\n? [a, b]\n: [x]\nkeywords: [y]\n",
    "dashes nesting (crashed the C reader)": "email: h@example.org\nkeywords:\n" + "- " * 30_000 + "x\n",
    "billion laughs": "email: i@example.org\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9)) + "keywords: *a8\n",
    "huge file": "email: g@example.org\nkeywords: [x]\n# " + "padding " * 20_000 + "\n",
}
GOOD = "email: ok@example.org\nkeywords: [reinforcement learning]\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "subscribers"
    directory.mkdir()
    (directory / "ok.yaml").write_text(GOOD, encoding="utf-8")
    for n, text in enumerate(MALFORMED.values()):
        (directory / f"bad{n}.yaml").write_text(text, encoding="utf-8")
    return directory


def test_every_malformed_file_is_its_own_error(folder):
    subscribers, errors = load_all(folder)
    assert [s.email for s in subscribers] == ["ok@example.org"]
    assert sorted(e.path.name for e in errors) == sorted(f"bad{n}.yaml" for n in range(len(MALFORMED)))


@pytest.mark.slow
@pytest.mark.parametrize("command", [["subscribers", "check"], ["subscribers", "list"]])
def test_the_cli_reports_instead_of_crashing(command, folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOY_")}
    env["PAPERBOY_SUBSCRIBERS_DIR"] = str(folder)
    paperboy = Path(sys.executable).with_name("paperboy")
    done = subprocess.run([str(paperboy), *command], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode in (0, 1, 2)
    shown = done.stdout + done.stderr
    assert all(f"bad{n}.yaml" in shown for n in range(len(MALFORMED)))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_daily_run_goes_on_past_malformed_files(workspace):
    from flows.daily import daily_digest

    for n, text in enumerate(MALFORMED.values()):
        (workspace.subscribers_dir / f"bad{n}.yaml").write_text(text, encoding="utf-8")
    result = daily_digest(digest_date=workspace.day)
    assert result["sent"] == 3
    assert len(result["subscriber_errors"]) == len(MALFORMED)


@pytest.mark.parametrize("text", [
    "email: a@example.org\nkeywords: [a\u2028b]\n",
    "email: a@example.org\nname: Ada\u0085Lovelace\nkeywords: [x]\n",
    "email: a@example.org\nname: Ada\u2029\nkeywords: [x]\n",
    "email: a@example.org\nkeywords:\n  - a\u2028  - b\n",
    "\ufeffemail: a@example.org\nkeywords: [x]\n",
    "email: a@example.org\nkeywords: [x\x85y, z]\n",
])
def test_both_readers_agree_on_line_separators(text, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    fast = files._fast_fields(text)
    try:
        slow = files._plain(files.read_mapping(path, for_edit=False)[0])
    except files.SubscriberError:
        slow = None
    assert fast is None or fast == slow  # the fast reader defers whenever they could differ
