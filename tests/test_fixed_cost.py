"""The fixed cost of an `fsc` process (issue #10, issue #11 point 10).

A short command pays for its imports and for reading its definitions: `fsc` imports the
parser, the checker and sqlglot only when it needs them, reads the checked model back from
`.fsc/cache` while the `.feat` files are unchanged (`fsdsl/check/cache.py`), and an incremental
run whose refresh query is cached imports no compiler. These tests pin that in fresh
interpreters, and pin that the parse cache is safe: exact, never trusted when damaged or forged,
and never read by `fsc verify`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl.check import cache as parse_cache
from fsdsl.check import load_repository
from fsdsl.cli import app
from fsdsl.online import aggstate
from fsdsl.online.fingerprint import fingerprint

ROOT = Path(__file__).resolve().parents[1]
AT, LATER = "2024-05-01T00:00:00", "2024-05-01T00:10:00"
runner = CliRunner(env={"COLUMNS": "120"})
HEAVY = ("sqlglot", "lark", "fsdsl.syntax.parser", "fsdsl.check.load", "fsdsl.compile.refresh")


def _fresh(code: str) -> list[str]:
    """Run `code` in a fresh interpreter (this source tree first on its path); it prints the
    modules it imported as JSON on its last line."""
    code += "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_importing_the_cli_imports_no_library():
    """`fsc --help` and every command start from here: typer, and nothing of ours that parses,
    compiles or connects."""
    modules = _fresh("import fsdsl.cli")
    drivers = ("pyarrow", "duckdb", "redis", "numpy", "pydantic", "rich")
    assert _loaded(modules, HEAVY + drivers) == []


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return example_project(
        tmp_path_factory.mktemp("fixed"), users=200, orders=4000, page_views=2000, seed=5
    )


def test_a_warm_parse_cache_loads_without_the_parser(project):
    """The second process reads the checked model back: no lark, no parser, no checker, and
    the same model (spans and warnings included) as parsing the files gives."""
    defs = project / "definitions"
    code = f"from fsdsl import FeatureStore\nFeatureStore({str(defs)!r})"
    first = _fresh(code)
    assert "lark" in first  # nothing cached yet: parsed
    second = _fresh(code)
    assert _loaded(second, HEAVY) == []
    cached, diags = parse_cache.load_repository(defs)
    fresh, fresh_diags = load_repository(defs)
    assert cached == fresh and repr(cached) == repr(fresh) and diags == fresh_diags
    for name, view in fresh.views.items():
        assert cached.views[name].span == view.span
        assert fingerprint(cached.views[name]) == fingerprint(view)


def test_an_incremental_run_with_warm_caches_imports_no_compiler(project, redis_urls):
    """A run whose definitions and refresh queries are cached connects, queries and writes
    without sqlglot, lark or the checker."""
    url = redis_urls["embedded"]
    flush(url)
    defs = str(project / "definitions")

    def run(at: str) -> list[str]:
        args = ["run", defs, "--online", url, "--at", at, "-f", "json"]
        return _fresh(
            f"from fsdsl.cli import app\ntry:\n    app({args!r})\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
        )

    run(AT)  # full: parses, compiles, fills the caches
    modules = run(LATER)
    assert _loaded(modules, HEAVY) == []


def test_a_training_set_from_parquet_imports_no_parser_and_no_pandas(project):
    """`fsc training-set -l labels.parquet` with its definitions cached: no lark or checker,
    and no pandas (reading a Parquet file through `pyarrow.dataset` imports it, a third of a
    second here, for a file it reads as well without)."""
    defs = str(project / "definitions")
    labels = project / "labels.parquet"
    pq.write_table(_labels(), labels)

    def training_set() -> list[str]:
        args = ["training-set", defs, "-s", "churn_core", "-l", str(labels)]
        args += ["-o", str(project / "train.parquet")]
        return _fresh(
            f"from fsdsl.cli import app\ntry:\n    app({args!r})\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
        )

    training_set()
    modules = training_set()
    assert _loaded(modules, ("lark", "fsdsl.syntax.parser", "fsdsl.check.load", "pandas")) == []
    assert pq.ParquetFile(project / "train.parquet").metadata.num_rows == _labels().num_rows


def _labels() -> pa.Table:
    users = [f"u{i:06d}" for i in range(1, 41)]
    return pa.table(
        {
            "user_id": users,
            "event_timestamp": [dt.datetime(2024, 5, 1) + dt.timedelta(hours=i) for i in range(40)],
        }
    )


def _entry(folder: Path) -> Path:
    (file,) = folder.glob("repo.*.bin")
    return file


def test_a_changed_file_misses_the_parse_cache(tmp_path):
    defs = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", defs)
    cache = tmp_path / "cache"
    before, _ = parse_cache.load_repository(defs, cache)
    feat = defs / "orders.feat"
    feat.write_text(feat.read_text().replace("count(*) over 7d", "count(*) over 8d", 1))
    after, _ = parse_cache.load_repository(defs, cache)
    assert after == load_repository(defs)[0] and after != before
    assert len(list(cache.glob("repo.*.bin"))) == 1  # one entry per repository, rewritten


@pytest.mark.parametrize("damage", ["truncate", "flip", "edit"])
def test_a_damaged_parse_cache_entry_is_a_miss(tmp_path, damage):
    defs, cache = ROOT / "definitions", tmp_path
    fresh, _ = parse_cache.load_repository(defs, cache)
    file = _entry(cache)
    raw = file.read_bytes()
    if damage == "truncate":
        file.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        file.write_bytes(raw[:-10] + bytes([raw[-10] ^ 1]) + raw[-9:])
    else:  # another feature's window, in a body that still unpickles
        edited = raw.replace(b"spend_30d", b"spend_31d")
        assert edited != raw
        file.write_bytes(edited)
    again, _ = parse_cache.load_repository(defs, cache)
    assert again == fresh and repr(again) == repr(fresh)
    assert file.read_bytes() == raw  # rewritten whole


class _Boom:
    """Unpickling this calls `os.system`: a forged entry must never get that far."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_forged_entry_with_a_valid_digest_runs_no_code(tmp_path):
    """The body is read by an unpickler that builds the model's classes only: an entry forged
    with a valid digest that names any other callable is a miss, never executed."""
    defs, cache = ROOT / "definitions", tmp_path / "cache"
    fresh, diags = parse_cache.load_repository(defs, cache)
    file = _entry(cache)
    key = parse_cache._key(defs)
    body = pickle.dumps((fresh, [*diags, _Boom()]))
    file.write_bytes(parse_cache._MAGIC + parse_cache._digest(key, body) + b"\n" + body)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        again, _ = parse_cache.load_repository(defs, cache)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()
    assert again == fresh


def test_verify_reads_the_definitions_not_the_parse_cache(project, redis_urls):
    """A model forged into the cache (a valid digest, only model classes) drives `fsc run`;
    `fsc verify` parses the files themselves, so the store is found stale, not verified."""
    url = redis_urls["embedded"]
    flush(url)
    defs = project / "definitions"
    d = str(defs)
    cache = project / ".fsc" / "cache"
    repo, diags = parse_cache.load_repository(defs)
    forged_text = (defs / "orders.feat").read_text().replace("over 7d", "over 8d")
    from fsdsl.check import load_text

    forged, _ = load_text(forged_text, str(defs / "orders.feat"))
    assert forged is not None and forged != repo
    key = parse_cache._key(defs)
    body = pickle.dumps((forged, diags), protocol=pickle.HIGHEST_PROTOCOL)
    entry = _entry(cache)
    entry.write_bytes(parse_cache._MAGIC + parse_cache._digest(key, body) + b"\n" + body)
    try:
        r = runner.invoke(app, ["run", d, "--online", url, "--at", AT, "-v", "user_orders"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["verify", d, "--online", url, "-v", "user_orders", "-f", "json"])
        assert r.exit_code == 1, r.output
        assert "user_orders" in json.loads(r.stdout)["stale"], r.output
    finally:
        entry.unlink()
    flush(url)
    assert runner.invoke(app, ["run", d, "--online", url, "--at", AT]).exit_code == 0
    r = runner.invoke(app, ["verify", d, "--online", url, "--sample", "200", "-f", "json"])
    assert_verified(r, set(repo.views), sampled=20)


def test_a_run_that_changes_nothing_keeps_the_aggregate_state(project, redis_urls, monkeypatch):
    """A second run as of the same time finds no entity to change: it neither merges nor
    rewrites the stored aggregate state (12 MB at scale M), the state stays readable, and the
    next run that does change entities resumes from it exactly."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    dumped: list[int] = []
    real = aggstate.dumps

    def counted(table):
        dumped.append(table.num_rows)
        return real(table)

    monkeypatch.setattr(aggstate, "dumps", counted)

    def run(at: str) -> dict:
        args = ["run", d, "--online", url, "--at", at, "-v", "user_orders", "-f", "json"]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)["views"][0]

    assert run(AT)["mode"] == "full" and len(dumped) == 1
    again = run(AT)
    assert again["mode"] == "incremental" and again["entities_written"] == 0
    assert len(dumped) == 1  # nothing changed: the state was not rewritten
    later = run("2024-06-15T00:00:00")  # windows moved: entities change, the state is merged
    assert later["mode"] == "incremental" and later["entities_written"] > 0
    assert len(dumped) == 2
    r = runner.invoke(app, ["verify", d, "--online", url, "-v", "user_orders", "-f", "json"])
    assert_verified(r, {"user_orders"}, sampled=20)
