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
