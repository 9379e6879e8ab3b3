"""Where `make eval` (python -m flows.bench.eval) writes eval.json: the checkout's bench-results/
by default, whatever the current directory, or --out.

Before, the default was the relative path bench-results, so running the module from another
directory (a shell in tests/, `make -C`, a CI step) left a bench-results/eval.json there,
outside the git-ignored folder `make clean` empties; an --out under a regular file was a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flows.bench.eval import DEFAULT_OUT, main, parse

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_is_the_checkouts_bench_results_wherever_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_OUT == ROOT / "bench-results"
    assert parse([]).out == ROOT / "bench-results"
    assert parse(["--out", "elsewhere"]).out == Path("elsewhere")  # an explicit path is the caller's


def test_a_run_from_another_directory_writes_nothing_there(tmp_path):
    out = tmp_path / "results"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "flows.bench.eval", "--rankers", "exact", "--out", str(out)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(elsewhere.iterdir()) == []
    assert json.loads((out / "eval.json").read_text())["rankers"].keys() == {"exact"}


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert main(["--rankers", "exact", "--out", str(tmp_path / "a-file" / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and "cannot write eval.json" in err and "Traceback" not in err
