"""`_as_of` on every served value (issue #11, item 5): the as-of time of the state the values
were read from, in `fsc get` (JSON and `--out` files) and in the Python API, against real Redis.

A row's `_as_of` is the earliest of its views' as-of times (the time at which all its values are
exact at once), `_as_of_views` each view's. It is read with the values, never from the state a
reader caches for STATE_TTL: an incremental run rewrites the namespace that serves in place, so
a cached as-of would be older than the values served beside it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.check import load_text
from fsdsl.cli import app
from fsdsl.online.server import stop_embedded

runner = CliRunner(env={"COLUMNS": "120"})
T1 = "2024-05-01T00:00:00"
T2 = "2024-05-03T12:30:00"
USERS = ["u000001", "u000002", "u000003", "nobody"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("as_of")
    example_project(root, users=200, orders=3000, page_views=3000, labels=10, seed=11)
    yield root
    stop_embedded(root)


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result


def fsc_run(project: Path, url: str, at: str, *args: str) -> None:
    run("run", str(project / "definitions"), "--online", url, "--at", at, *args)


def get(project: Path, url: str, service: str, *keys: str) -> dict:
    d = str(project / "definitions")
    return json.loads(run("get", d, "-s", service, "--online", url, "-f", "json", *keys).output)


def test_get_shows_the_as_of_of_each_run(project, redis_urls):
    for name, url in redis_urls.items():
        flush(url)
        fsc_run(project, url, T1)
        got = get(project, url, "fraud_model", "user_id=u000001")
        assert got["_as_of"] == T1, name
        assert got["_as_of_views"] == {"user_orders": T1}, name
        fsc_run(project, url, T2)  # incremental: the same namespace, rewritten in place
        got = get(project, url, "fraud_model", "user_id=u000001")
        assert (got["_as_of"], got["_as_of_views"]) == (T2, {"user_orders": T2}), name


def test_a_row_from_several_views_is_as_of_the_earliest(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    fsc_run(project, url, T1)
    fsc_run(project, url, T2, "-v", "user_browsing")
    got = get(project, url, "recommender", "user_id=u000001", "category=books")
    assert got["_as_of_views"] == {
        "user_browsing": T2,
        "user_category_browsing": T1,
        "user_orders": T1,
    }
    assert got["_as_of"] == T1


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_keys_file_rows_and_out_files_carry_it(project, redis_urls, tmp_path, suffix):
    url = redis_urls["embedded"]
    flush(url)
    fsc_run(project, url, T1)
    fsc_run(project, url, T2, "-v", "user_orders")
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"user_id": USERS}), keys)
    d = str(project / "definitions")
    rows = json.loads(
        run("get", d, "-s", "churn_model", "--online", url, "--keys", str(keys)).output
    )
    assert [r["_as_of"] for r in rows] == [T2] * len(USERS)
    assert all(r["_as_of_views"] == {"user_orders": T2} for r in rows)
    out = tmp_path / f"served.{suffix}"
    run("get", d, "-s", "churn_model", "--online", url, "--keys", str(keys), "--out", str(out))
    table = pq.read_table(out) if suffix == "parquet" else pacsv.read_csv(out)
    assert {"_as_of", "_as_of_views.user_orders"} <= set(table.column_names)
    if suffix == "parquet":  # CSV readers infer their own unit
        assert table["_as_of"].type == pa.timestamp("us")
    want = dt.datetime.fromisoformat(T2)
    assert table["_as_of"].to_pylist() == [want] * len(USERS)
    assert table["_as_of_views.user_orders"].to_pylist() == [want] * len(USERS)


def test_python_api(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    fsc_run(project, url, T1)
    keys = [{"user_id": u} for u in USERS]
    want = dt.datetime.fromisoformat(T1)
    with FeatureStore(project / "definitions", online=url) as store:
        plain = store.online_features("fraud_model", keys)
        assert all("_as_of" not in r for r in plain)  # existing callers see what they saw
        rows = store.online_features("fraud_model", keys, with_as_of=True)
        assert [{k: r[k] for k in plain[0]} for r in rows] == plain
        assert all(r["_as_of"] == want for r in rows)
        assert all(r["_as_of_views"] == {"user_orders": want} for r in rows)
        rows[0]["_as_of_views"]["mine"] = want  # each row's own dict: the others keep theirs
        assert all(r["_as_of_views"] == {"user_orders": want} for r in rows[1:])
        one = store.online_features("fraud_model", keys[0], with_as_of=True, with_status=True)
        assert one["_as_of"] == want and set(one["__status"]) == {"user_orders"}
        table = store.online_features("fraud_model", pa.table({"user_id": USERS}), with_as_of=True)
        assert table["_as_of"].to_pylist() == [want] * len(USERS)
        assert table["_as_of_views"].to_pylist() == [{"user_orders": want}] * len(USERS)


def test_the_as_of_is_the_one_the_values_were_read_with(project, redis_urls):
    """A reader caches the serving namespace for STATE_TTL: a run that lands within that time
    must show in `_as_of` at once, beside the values it wrote (in place for an incremental run,
    in a new namespace for a full one)."""
    url = redis_urls["embedded"]
    flush(url)
    d = project / "definitions"
    keys = [{"user_id": u} for u in USERS]
    with FeatureStore(d, online=url) as store:
        store.run(T1, views=["user_orders"])
        before = store.online_features("churn_model", keys, with_as_of=True)
        assert before[0]["_as_of"] == dt.datetime.fromisoformat(T1)
        for at, full in ((T2, False), ("2024-05-09T00:00:00", True)):
            (ran,) = store.run(at, views=["user_orders"], full=full)
            assert ran.mode == ("full" if full else "incremental")
            served = store.online_features("churn_model", keys, with_as_of=True)
            assert all(r["_as_of"] == dt.datetime.fromisoformat(at) for r in served), at
            with FeatureStore(d, online=url) as fresh:  # nothing cached
                assert fresh.online_features("churn_model", keys, with_as_of=True) == served
        assert served != before  # the runs changed values, not only the as-of time


def test_a_feature_named_like_the_as_of_columns_cannot_be_served():
    text = """
entity user { key user_id: string }
source orders {
  table "orders"
  timestamp ts
  columns { user_id: string  ts: timestamp }
}
features user_orders {
  entity user
  from orders
  _as_of = count(*)
}
service s { features user_orders._as_of }
"""
    repo, diags = load_text(text, "t.feat")
    assert repo is None
    (d,) = [d for d in diags if d.is_error]
    assert d.code == "E0212" and "`_as_of`" in d.message
    assert (d.span.line, d.span.col) == (13, 34)
