"""`fsc training-set` and `FeatureStore.training_set` on a small generated warehouse."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from projects import example_project
from reference import view_values
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "100"})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the example project with a small seeded warehouse and labels."""
    root = tmp_path_factory.mktemp("project")
    example_project(
        root,
        users=150,
        orders=4000,
        page_views=6000,
        labels=400,
        labels_path=root / "labels.parquet",
        seed=11,
    )
    return root


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def events(project: Path, table: str) -> list[dict]:
    con = duckdb.connect(str(project / ".fsc" / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(f"SELECT * FROM {table}").to_arrow_table().to_pylist()
    finally:
        con.close()


def test_cli_output_keeps_labels_and_order(project, tmp_path):
    out = tmp_path / "train.parquet"
    r = run(
        "training-set",
        str(project / "definitions"),
        "-s",
        "churn_model",
        "-l",
        str(project / "labels.parquet"),
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    labels = pq.read_table(project / "labels.parquet")
    got = pq.read_table(out)
    service = FeatureStore(project / "definitions").repo.services["churn_model"]
    assert got.column_names == labels.column_names + [f for _, f in service.features]
    for c in labels.column_names:  # same rows, same order, original values
        assert got[c].to_pylist() == labels[c].to_pylist()


def test_values_equal_the_reference(project, tmp_path):
    out = tmp_path / "train.parquet"
    r = run(
        "training-set",
        str(project / "definitions"),
        "-s",
        "churn_model",
        "-l",
        str(project / "labels.parquet"),
        "-o",
        str(out),
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    view = FeatureStore(project / "definitions").repo.views["user_orders"]
    by_user: dict[str, list] = {}
    for e in events(project, "orders"):
        by_user.setdefault(e["user_id"], []).append(e)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == pq.read_metadata(project / "labels.parquet").num_rows == 400
    for row in rows:
        want = view_values(
            view, by_user.get(row["user_id"], []), (row["user_id"],), row["event_timestamp"]
        )
        for name, value in want.items():
            assert same(row[name], value), (row["user_id"], row["event_timestamp"], name)


def test_multi_entity_service_with_composite_keys(project):
    """`recommender` mixes user, (user, category) and order views: labels carry every key."""
    base = pq.read_table(project / "labels.parquet").slice(0, 120).to_pylist()
    cats = ["shoes", "books", None, "toys"]
    labels = [{**r, "category": cats[i % len(cats)]} for i, r in enumerate(base)]
    table = pa.Table.from_pylist(labels)
    with FeatureStore(project / "definitions") as store:
        got = store.training_set(table, service="recommender").to_pylist()
    assert len(got) == len(labels) == 120
    views = store.repo.views
    pv = events(project, "web.page_views")
    orders = events(project, "orders")
    for row in got:
        t = row["event_timestamp"]
        want = {
            **view_values(views["user_browsing"], pv, (row["user_id"],), t),
            **view_values(
                views["user_category_browsing"], pv, (row["user_id"], row["category"]), t
            ),
            "last_amount": view_values(views["user_orders"], orders, (row["user_id"],), t)[
                "last_amount"
            ],
        }
        for name, value in want.items():
            assert same(row[name], value), (row["user_id"], t, name)


def test_pandas_in_pandas_out(project):
    df = pq.read_table(project / "labels.parquet").slice(0, 50).to_pandas()
    df["label_id"] = range(len(df))
    with FeatureStore(project / "definitions") as store:
        out = store.training_set(df, service="fraud_model")
    assert type(out) is type(df)
    assert list(out.columns) == [*df.columns, "spend_30d", "orders_7d"]
    assert out["label_id"].tolist() == list(range(len(df)))


def test_csv_labels_csv_output_and_other_timestamp_column(project, tmp_path):
    labels = pq.read_table(project / "labels.parquet").slice(0, 40)
    labels = labels.rename_columns(["user_id", "label_time", "churned"])
    src = tmp_path / "labels.csv"
    pacsv.write_csv(labels, src)
    out = tmp_path / "train.csv"
    r = run(
        "training-set",
        str(project / "definitions"),
        "-s",
        "churn_model",
        "-l",
        str(src),
        "-o",
        str(out),
        "--timestamp-column",
        "label_time",
    )
    assert r.exit_code == 0, r.output
    got = pacsv.read_csv(out)
    assert got.num_rows == 40
    assert got["recent_amounts"].type == pa.string()  # lists are JSON in CSV
    with FeatureStore(project / "definitions") as store:
        parquet = store.training_set(
            pq.read_table(project / "labels.parquet").slice(0, 40), service="churn_model"
        )
    assert got["orders_30d"].to_pylist() == parquet["orders_30d"].to_pylist()


def test_labels_from_a_warehouse_table(project, tmp_path):
    out = tmp_path / "t.parquet"
    r = run(
        "training-set",
        str(project / "definitions"),
        "-s",
        "fraud_model",
        "--labels-table",
        "labels",
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert pq.read_table(out).num_rows == 400


def test_timezone_aware_labels_are_read_as_utc(project):
    naive = pq.read_table(project / "labels.parquet").slice(0, 30)
    ts = naive["event_timestamp"].to_pylist()
    zone = dt.timezone(dt.timedelta(hours=2))
    aware = naive.set_column(
        1,
        "event_timestamp",
        pa.array(
            [t.replace(tzinfo=dt.UTC).astimezone(zone) for t in ts], pa.timestamp("us", tz="+02:00")
        ),
    )
    with FeatureStore(project / "definitions") as store:
        a = store.training_set(naive, service="fraud_model")
        b = store.training_set(aware, service="fraud_model")
    # the same times, so the same values (floats to the contract's 1e-9: DuckDB's parallel
    # SUM adds in no fixed order, 1681.86 vs 1681.8599999999997 seen)
    assert _same_cells(a.select(["spend_30d"]), b.select(["spend_30d"])) == []
    assert b["event_timestamp"].type.tz == "+02:00"  # the labels' own column is kept as given


# ---- errors: one located line, exit 2, no traceback ---------------------------------------------
def error_of(r) -> str:
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


def test_missing_label_column(project, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pq.read_table(project / "labels.parquet").drop_columns(["user_id"]), bad)
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "-l",
            str(bad),
            "-o",
            str(tmp_path / "o.parquet"),
        )
    )
    assert line.startswith(f"{bad}: error[E0402]: missing column(s) `user_id`")
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("values, kind", [([1, 2], pa.int64()), (["yesterday", "x"], pa.string())])
def test_wrong_timestamp_type(project, tmp_path, values, kind):
    bad = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table({"user_id": ["u000001", "u000002"], "event_timestamp": pa.array(values, kind)}),
        bad,
    )
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "-l",
            str(bad),
            "-o",
            str(tmp_path / "o.parquet"),
        )
    )
    assert "error[E0404]: timestamp column `event_timestamp`" in line


def test_unknown_service(project, tmp_path):
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
        )
    )
    # (was `line == ... or line.startswith(...)`: the second accepted any suggestion, or none)
    assert line == "error[E0005]: unknown service `churn`; did you mean `churn_core`?"


def test_source_table_missing_in_warehouse(project, tmp_path):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
            "-w",
            f"duckdb:///{empty}",
        )
    )
    feat = project / "definitions" / "orders.feat"
    lineno = next(
        i
        for i, text in enumerate(feat.read_text().splitlines(), 1)
        if text.strip().startswith('table "orders"')
    )
    assert line.startswith(f"{feat}:{lineno}:9: error[E0401]: table `orders`")


@pytest.mark.parametrize(
    "args, code",
    [
        (["-w", "mysql://nowhere/db"], "E0003"),
        (["-w", "duckdb:///does/not/exist.duckdb"], "E0003"),
        (["--labels-table", "labels"], "E0004"),  # both a file and a table
    ],
)
def test_bad_flags(project, tmp_path, args, code):
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
            *args,
        )
    )
    assert f"error[{code}]" in line


def test_missing_labels_file(project, tmp_path):
    line = error_of(
        run(
            "training-set",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "-l",
            str(tmp_path / "nope.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
        )
    )
    assert "error[E0400]" in line


# ---- split by entity: the same training set in several queries --------------------------------
def _same_cells(a: pa.Table, b: pa.Table) -> list[str]:
    """Cells that differ (floats to 1e-9 relative: a share sums its rows in another order)."""
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    bad = []
    for name in a.column_names:
        for i, (x, y) in enumerate(zip(a[name].to_pylist(), b[name].to_pylist(), strict=True)):
            same = (
                math.isclose(x, y, rel_tol=1e-9)
                if isinstance(x, float) and isinstance(y, float)
                else x == y
            )
            if not same:
                bad.append(f"{name}[{i}]: {x!r} != {y!r}")
    return bad


@pytest.mark.parametrize("service", ["churn_model", "churn_core", "fraud_model", "recommender"])
def test_shares_give_the_training_set_of_one_query(project, service):
    """Split by user_id hash, each share reads only its users' labels and events (views keyed
    otherwise, user_category_browsing, read all theirs): the rows come back in label order,
    equal to the single query's."""
    labels = pq.read_table(project / "labels.parquet").slice(0, 3000)
    if service == "recommender":
        cats = ["books", "games", None] * labels.num_rows
        labels = labels.append_column("category", pa.array(cats[: labels.num_rows]))
    with FeatureStore(project / "definitions") as store:
        whole = store.training_set(labels, service=service, shares=1)
        for n in (2, 7):
            split = store.training_set(labels, service=service, shares=n)
            assert _same_cells(whole, split) == [], (n, _same_cells(whole, split)[:5])


def test_split_sql_filters_labels_and_events_by_one_hash():
    from fsdsl.check import load_repository
    from fsdsl.compile.render import sql_text
    from fsdsl.compile.training import training_query

    repo, _ = load_repository(Path(__file__).parents[1] / "definitions")
    features = [(v, f) for v, f in repo.services["recommender"].features]
    sql = sql_text(training_query(repo, features, "duckdb", share=(4, 3)), "duckdb")
    # the labels once, and the events of the two views keyed by the user alone (one of their
    # sources names the key visitor_id); not those of the (user, category) view
    assert sql.count('HASH(CAST("user_id" AS TEXT)) % 4 = 3') == 1, sql
    assert sql.count('HASH(CAST("src"."user_id" AS TEXT)) % 4 = 3') == 1, sql
    assert sql.count('HASH(CAST("src"."visitor_id" AS TEXT)) % 4 = 3') == 1, sql
    assert sql.count("HASH(") == 3, sql


def test_shares_are_refused_where_the_warehouse_cannot_split():
    from fsdsl.diagnostics import UsageError
    from fsdsl.training_set import share_count

    assert share_count(10, "postgres", None) == 1
    assert share_count(4_000_001, "duckdb", None) == 3
    with pytest.raises(UsageError, match="cannot split"):
        share_count(10, "postgres", 2)
    with pytest.raises(UsageError, match="at least 1"):
        share_count(10, "duckdb", 0)


def test_split_hashes_the_labels_as_the_split_events():
    """Two entities may name their key alike with other types: the labels are hashed as the
    first view's entity types its key, the type its events are hashed with."""
    from fsdsl.check import load_text
    from fsdsl.compile.render import sql_text
    from fsdsl.compile.training import training_query

    text = """
entity user { key user_id: int }
entity acct { key user_id: float }
source s { table "s" timestamp ts columns { user_id: int  ts: timestamp } }
source t { table "t" timestamp ts columns { user_id: float  ts: timestamp } }
features va { entity user from s  na = count(*) }
features vb { entity acct from t  nb = count(*) }
"""
    repo, diags = load_text(text)
    assert repo is not None, [d.message for d in diags]
    sql = sql_text(training_query(repo, [("va", "na"), ("vb", "nb")], share=(2, 0)), "duckdb")
    assert 'HASH(CAST("user_id" AS BIGINT)) % 2 = 0' in sql, sql
    assert 'HASH(CAST("src"."user_id" AS BIGINT)) % 2 = 0' in sql, sql
