"""`fsc run` keeps compiled refresh queries in `.fsc/cache`: a cached text must be exactly the
compiled one, and any change to what decides it must miss the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl.check import load_repository, load_text
from fsdsl.cli import app
from fsdsl.compile.render import sql_text
from fsdsl.online import refresh
from fsdsl.online.refresh import refresh_sql

ROOT = Path(__file__).resolve().parents[1]
AT = "2024-05-01T00:00:00"
runner = CliRunner(env={"COLUMNS": "120"})


def test_cached_text_is_the_compiled_text_and_is_reused(tmp_path, monkeypatch):
    repo, _ = load_repository(ROOT / "definitions")
    view = repo.views["user_orders"]
    fresh = {}
    for dialect in ("duckdb", "postgres", "spark"):
        fresh[dialect] = sql_text(refresh.refresh_query(view, dialect), dialect, pretty=False)
        assert refresh_sql(view, dialect, tmp_path) == fresh[dialect]
        assert len(list(tmp_path.glob(f"user_orders.{dialect}.*.sql"))) == 1

    def no_compiling(*_a, **_k):
        raise AssertionError("compiled although cached")

    monkeypatch.setattr(refresh, "refresh_query", no_compiling)
    for dialect, text in fresh.items():  # read back, not compiled
        assert refresh_sql(view, dialect, tmp_path) == text


@pytest.mark.parametrize(
    "change",
    [
        ("count(*) over 7d", "count(*) over 8d"),
        ("ttl 60d", "ttl 61d"),
        ("where status = 'completed'", "where status = 'done'"),
        ("created created_at", ""),
    ],
)
def test_any_change_to_the_view_misses_the_cache(tmp_path, change):
    text = (ROOT / "definitions" / "orders.feat").read_text()
    assert change[0] in text
    before, _ = load_text(text, "orders.feat")
    after, diags = load_text(text.replace(change[0], change[1], 1), "orders.feat")
    assert after is not None, [d.message for d in diags]
    a = refresh_sql(before.views["user_orders"], "duckdb", tmp_path)
    b = refresh_sql(after.views["user_orders"], "duckdb", tmp_path)
    assert a != b
    assert b == sql_text(
        refresh.refresh_query(after.views["user_orders"], "duckdb"), "duckdb", pretty=False
    )
    assert len(list(tmp_path.glob("user_orders.duckdb.*.sql"))) == 2


def _entry(tmp_path: Path, dialect: str = "duckdb") -> tuple[Path, str, object]:
    repo, _ = load_repository(ROOT / "definitions")
    view = repo.views["user_orders"]
    text = refresh_sql(view, dialect, tmp_path)
    (file,) = tmp_path.glob(f"user_orders.{dialect}.*.sql")
    return file, text, view


def _damage_truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _damage_garble(file: Path) -> None:
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 4] = b"\xff\xfe\xc3\x28"  # not UTF-8
    file.write_bytes(bytes(raw))


def _damage_edit(file: Path) -> None:
    # still a valid query, computing other values: every order counts twice as much
    raw = file.read_bytes()
    edited = raw.replace(b'"src"."amount" AS "__a0"', b'"src"."amount" * 2 AS "__a0"', 1)
    assert edited != raw
    file.write_bytes(edited)


def _damage_folder(file: Path) -> None:
    file.unlink()
    file.mkdir()  # unreadable as a file


@pytest.mark.parametrize(
    "damage",
    [_damage_truncate, _damage_garble, _damage_edit, _damage_folder],
    ids=lambda f: f.__name__[8:],
)
def test_a_damaged_entry_is_recompiled_and_rewritten(tmp_path, damage):
    """A cached text decides the values served: a truncated, garbled or edited entry must be
    a miss (recompiled), never run, and never an internal error."""
    file, text, view = _entry(tmp_path)
    damage(file)
    assert refresh_sql(view, "duckdb", tmp_path) == text
    if file.is_file():  # rewritten whole, and read back from the cache from now on
        assert refresh_sql(view, "duckdb", tmp_path) == text
        assert text.encode() in file.read_bytes()
    assert not list(tmp_path.glob("*.partial"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return example_project(
        tmp_path_factory.mktemp("cached"), users=300, orders=6000, page_views=3000, seed=3
    )


def fsc(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_a_run_never_serves_values_from_an_edited_entry(project, redis_urls):
    """An entry edited into another valid query (a constant changed) is recompiled: the run
    serves the definition's values, and `fsc verify` agrees."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    assert fsc("run", d, "--online", url, "--at", AT, "-v", "user_orders").exit_code == 0
    (entry,) = (project / ".fsc" / "cache").glob("user_orders.duckdb.*.sql")
    _damage_edit(entry)
    r = fsc("run", d, "--online", url, "--at", AT, "-v", "user_orders", "--full")
    assert r.exit_code == 0, r.output
    r = fsc("verify", d, "--online", url, "-v", "user_orders", "--sample", "300", "-f", "json")
    assert_verified(r, {"user_orders"}, sampled=50)
    assert b'"src"."amount" * 2' not in entry.read_bytes()


def test_verify_catches_a_store_filled_by_a_tampered_query(project, redis_urls, monkeypatch):
    """The digest guards against accidents; a query tampered with before it was cached (with a
    valid digest) fills the store with wrong values. The fingerprint is the definition's, so
    the store is not stale; `fsc verify` takes its expectation from the training query and
    never reads the cache, and samples entities from the warehouse too, so it finds the
    entities the tampered query dropped, which sampling the store's own keys could never
    find."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    shutil.rmtree(project / ".fsc" / "cache", ignore_errors=True)
    compile_text = refresh.sql_text

    changed = []

    def tampered(tree, dialect, **kw):
        text = compile_text(tree, dialect, **kw)
        needle = 'WHERE (NOT "src"."user_id" IS NULL'
        changed.append(needle in text)
        return text.replace(
            needle, """WHERE ("src"."user_id" < 'u000150' AND NOT "src"."user_id" IS NULL""", 1
        )

    monkeypatch.setattr(refresh, "sql_text", tampered)
    assert fsc("run", d, "--online", url, "--at", AT).exit_code == 0
    monkeypatch.undo()
    assert any(changed), "the tamper must change a query: update its needle"
    served = json.loads(
        fsc("get", d, "-s", "churn_model", "--online", url, "user_id=u000200").output
    )
    assert served["orders_7d"] in (0, None)  # the tampered cache is what `get` plans from
    r = fsc("verify", d, "--online", url, "--sample", "300", "-f", "json")
    assert r.exit_code == 1, r.output
    report = json.loads(r.output)
    assert not report["stale"], r.output
    wrong = {f["feature"]: f for f in report["features"] if f["view"] == "user_orders"}
    assert wrong["orders_7d"]["mismatches"] > 0, r.output
    dropped = [e["key"] for e in wrong["orders_7d"]["examples"] if e["online"] == "None"]
    assert dropped and all(k[0] >= "u000150" for k in dropped), r.output
