"""`fsc lint` and `fsc fmt --check` on a generated repository of 1,000 views x 4 features
(bench/large_repo.py), issue #13's performance targets: lint <= 1.0 s, fmt --check <= 1.5 s for
the whole process.

The timing test takes the best CPU time (user + system) of three runs of each process: on a
shared machine it is steadier than the wall clock, which on an idle one it equals. Shared CI
machines still vary, so the bound is the target times `FSC_PERF_SLACK` (default 1.5; set 1 on a
quiet machine to hold the targets themselves). What made the commands slow is pinned exactly
instead: fmt reads a file with one lark pass when it is already formatted, and the loader and
the lint rules run with the cyclic garbage collector paused.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark
from typer.testing import CliRunner

from fsdsl.check import load_repository
from fsdsl.cli import app
from fsdsl.fmt import format_paths

ROOT = Path(__file__).resolve().parents[1]
SLACK = float(os.environ.get("FSC_PERF_SLACK", "1.5"))
TARGETS = {"lint": 1.0, "fmt --check": 1.5}


def _generator():
    # loaded by path under its own name: tests/ has a module of the same file name
    spec = importlib.util.spec_from_file_location(
        "bench_large_repo", ROOT / "bench" / "large_repo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("large") / "definitions"
    _generator().write(out, views=1000, features=4)
    return out


def test_large_repository_is_clean_and_formatted(large):
    repo, diags = load_repository(large)
    assert repo is not None and len(repo.views) == 1000
    assert sum(len(v.features) for v in repo.views.values()) == 4000
    result = CliRunner().invoke(app, ["lint", str(large)])
    assert result.exit_code == 0 and result.output.strip() == "All checks passed.", result.output
    result = CliRunner().invoke(app, ["fmt", "--check", str(large)])
    assert result.exit_code == 0, result.output


def test_fmt_check_parses_a_formatted_file_once(large, monkeypatch):
    """One lark pass gives the syntax tree and the layout; the text is not parsed again to
    verify it when formatting leaves it as it was."""
    calls = []
    parse = Lark.parse
    monkeypatch.setattr(
        Lark, "parse", lambda self, *a, **k: calls.append(1) or parse(self, *a, **k)
    )
    results = list(format_paths([large], check=True))
    assert {r.status for r in results} == {"unchanged"}
    assert len(calls) == len(results)


def test_loading_and_linting_pause_the_garbage_collector(large, monkeypatch):
    import fsdsl.check.load as load
    from fsdsl.lint import duplicates

    seen = []
    parse_file, keys = load.parse_file, duplicates.feature_keys
    monkeypatch.setattr(load, "parse_file", lambda f: seen.append(gc.isenabled()) or parse_file(f))
    monkeypatch.setattr(
        duplicates, "feature_keys", lambda *a: seen.append(gc.isenabled()) or keys(*a)
    )
    assert gc.isenabled()
    result = CliRunner().invoke(app, ["lint", str(large)])
    assert result.exit_code == 0, result.output
    assert seen and not any(seen)
    assert gc.isenabled()  # and on again after


def _best_cpu(args: list[str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(args, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stdout + done.stderr
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best = min(best, cpu)
    return best


@pytest.mark.parametrize("command", list(TARGETS))
def test_whole_process_time(large, command):
    seconds = _best_cpu([sys.executable, "-m", "fsdsl.cli", *command.split(), str(large)])
    bound = TARGETS[command] * SLACK
    assert seconds <= bound, f"fsc {command}: {seconds:.2f} s CPU, bound {bound:.2f} s"
