"""`fsc run` keeps compiled refresh queries in `.fsc/cache`: a cached text must be exactly the
compiled one, and any change to what decides it must miss the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsdsl.check import load_repository, load_text
from fsdsl.compile.render import sql_text
from fsdsl.online import refresh
from fsdsl.online.refresh import refresh_sql

ROOT = Path(__file__).resolve().parents[1]


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
