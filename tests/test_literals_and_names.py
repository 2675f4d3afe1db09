"""Literals are data and names are quoted, on every warehouse (issue #9).

A `%`, `'`, `\\` or `:name` in a literal of a definition must reach the warehouse as the
literal's value, never as a driver placeholder; `%` the operator keeps the language's sign rule;
table names that need quoting (`my-db.t`, a `"` in a labels table) work or fail in one line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import warehouse_url
from redis_servers import flush
from typer.testing import CliRunner

from fsdsl.backends import connect
from fsdsl.cli import app

runner = CliRunner(env={"COLUMNS": "120"})
AT = "2024-05-01T00:00:00"
T0 = dt.datetime(2024, 4, 30)

# `it''s \\ :as_of` in the file is the value `it's \ :as_of`
LITERALS_FEAT = r"""
entity user { key user_id: string }
source orders {
  table "pct_orders"
  timestamp ts
  columns { user_id: string  status: string  qty: int  ts: timestamp }
}
features pct {
  entity user
  from orders
  where status != '100%'
  n = count(*)
  r = sum(qty % 3)
  z = max(qty % (qty - 5))
  odd = sum(case when status = 'it''s \\ :as_of' then 1 else 0 end)
  latest = last(status)
}
service s { features pct.* }
"""

ROWS = [  # (user, status, qty, hours after T0)
    ("a", "100%", 5, 1),
    ("a", "ok", -7, 2),
    ("a", "it's \\ :as_of", 5, 3),
    ("b", "100%", 1, 1),
    ("c", "%(as_of)s %s", -4, 1),
]
WANT = {
    # -7 % 3 is -1 (the dividend's sign); 5 % 0 is null; -7 % -12 is -7
    "a": {"n": 2, "r": 1, "z": -7, "odd": 1, "latest": "it's \\ :as_of"},
    "b": {"n": 0, "r": None, "z": None, "odd": None, "latest": None},
    "c": {"n": 1, "r": -1, "z": -4, "odd": 0, "latest": "%(as_of)s %s"},
}


def orders() -> pa.Table:
    return pa.table(
        {
            "user_id": [r[0] for r in ROWS],
            "status": [r[1] for r in ROWS],
            "qty": pa.array([r[2] for r in ROWS], pa.int64()),
            "ts": pa.array([T0 + dt.timedelta(hours=r[3]) for r in ROWS], pa.timestamp("us")),
        }
    )


def warehouse_with(backend: str, warehouse_urls, tmp: Path, table: tuple[str, ...], data) -> str:
    """A URL of `backend` whose warehouse holds `data` as `table`."""
    if backend == "duckdb":
        import duckdb

        db = tmp / "wh.duckdb"
        con = duckdb.connect(str(db))
        con.register("data", data)
        name = ".".join('"' + p.replace('"', '""') + '"' for p in table)
        if len(table) > 1:
            con.execute("CREATE SCHEMA IF NOT EXISTS " + name.rsplit(".", 1)[0])
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM data")
        con.close()
        return f"duckdb:///{db}"
    url = warehouse_url(warehouse_urls, backend)
    with connect(url, {}) as wh:
        wh.create_table(table, data)
    return url


@pytest.mark.parametrize("backend", ["duckdb", "postgres", "spark"])
def test_run_with_percent_quote_backslash_and_colon_in_literals(
    backend, warehouse_urls, redis_urls, tmp_path
):
    """`where status != '100%'` once made `fsc run` on Postgres exit 2 (E0410, psycopg read
    the `%` as a placeholder)."""
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "pct.feat").write_text(LITERALS_FEAT)
    url = warehouse_with(backend, warehouse_urls, tmp_path, ("pct_orders",), orders())
    online = redis_urls["embedded"]
    flush(online)
    r = runner.invoke(
        app, ["run", str(tmp_path / "defs"), "-w", url, "--online", online, "--at", AT]
    )
    assert r.exit_code == 0, r.output
    for user, want in WANT.items():
        r = runner.invoke(
            app, ["get", str(tmp_path / "defs"), "-s", "s", f"user_id={user}", "--online", online]
        )
        assert r.exit_code == 0, r.output
        got = json.loads(r.output)
        assert {k: got[k] for k in want} == want, (user, got)


# A schema and a table whose names need quoting in every dialect: `-`, space, backtick, `%`,
# both quotes. Spark's Hive catalog accepts such names only for (global) temporary views.
ODD = ("my-db", 'odd `t` 100% "q" it\'s')
ODD_SPARK = ("global_temp", ODD[1])
NAMES_FEAT = """
entity user {{ key user_id: string }}
source orders {{
  table '{table}'
  timestamp ts
  columns {{ user_id: string  status: string  qty: int  ts: timestamp }}
}}
features odd {{
  entity user
  from orders
  n = count(*)
  q = sum(qty)
}}
service s {{ features odd.* }}
"""


def labels() -> pa.Table:
    return pa.table(
        {
            "user_id": ["a", "b", "c", "zz"],
            "event_timestamp": pa.array([dt.datetime(2024, 5, 1)] * 4, pa.timestamp("us")),
        }
    )


@pytest.mark.parametrize("backend", ["duckdb", "postgres", "spark"])
def test_table_names_that_need_quoting(backend, warehouse_urls, redis_urls, tmp_path):
    """Spark joined the parts of a table name unquoted: `my-db.t` was reported missing."""
    table = ODD_SPARK if backend == "spark" else ODD
    if backend == "spark":
        url = warehouse_url(warehouse_urls, backend)
        with connect(url, {}) as wh:
            quoted = "`" + table[1].replace("`", "``") + "`"
            wh.spark.createDataFrame(orders()).createOrReplaceGlobalTempView(quoted)
    else:
        url = warehouse_with(backend, warehouse_urls, tmp_path, table, orders())
    (tmp_path / "defs").mkdir()
    text = NAMES_FEAT.format(table=".".join(table).replace("'", "''"))
    (tmp_path / "defs" / "odd.feat").write_text(text)
    pq_labels = tmp_path / "labels.parquet"
    import pyarrow.parquet as pq

    pq.write_table(labels(), pq_labels)
    out = tmp_path / "out.parquet"
    r = runner.invoke(
        app,
        ["training-set", str(tmp_path / "defs"), "-s", "s", "-l", str(pq_labels), "-o", str(out)]
        + ["-w", url],
    )
    assert r.exit_code == 0, r.output
    got = pq.read_table(out).to_pylist()
    assert [(g["user_id"], g["n"], g["q"]) for g in got] == [
        ("a", 3, 3),
        ("b", 1, 1),
        ("c", 1, -4),
        ("zz", 0, None),
    ]
    online = redis_urls["embedded"]
    flush(online)
    r = runner.invoke(
        app, ["run", str(tmp_path / "defs"), "-w", url, "--online", online, "--at", AT]
    )
    assert r.exit_code == 0, r.output


def test_spark_tables_whose_names_need_quoting(warehouse_urls):
    """A digit-only name is a valid Hive table name that Spark's parser reads as a number."""
    url = warehouse_url(warehouse_urls, "spark")
    with connect(url, {}) as wh:
        wh.create_table(("default", "2024"), orders())
        assert list(wh.table_columns(("default", "2024"))) == ["user_id", "status", "qty", "ts"]
        wh.register_arrow('lab"els 1', labels())
        assert wh.table_columns(('lab"els 1',)) is not None


# Spark's Hive catalog has no schema with a `"` in its name: only the one-part name there
@pytest.mark.parametrize(
    ("backend", "name"),
    [(b, n) for b in ("duckdb", "postgres") for n in ('lab"els', 'my"schema.lab"els')]
    + [("spark", 'lab"els')],
)
def test_labels_table_with_a_double_quote(backend, name, warehouse_urls, tmp_path):
    """A `"` in --labels-table was an internal error (E9999)."""
    parts = tuple(name.split("."))
    if backend == "spark":
        url = warehouse_url(warehouse_urls, backend)
        with connect(url, {}) as wh:
            wh.register_arrow(parts[0], labels())  # the session outlives the connection
        url_orders = url
        with connect(url, {}) as wh:
            wh.register_arrow("pct_orders", orders())
    else:
        url = warehouse_with(backend, warehouse_urls, tmp_path, parts, labels())
        url_orders = url
        if backend == "duckdb":
            import duckdb

            con = duckdb.connect(url.removeprefix("duckdb:///"))
            con.register("o", orders())
            con.execute('CREATE TABLE "pct_orders" AS SELECT * FROM o')
            con.close()
        else:
            with connect(url, {}) as wh:
                wh.create_table(("pct_orders",), orders())
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "pct.feat").write_text(LITERALS_FEAT)
    out = tmp_path / "out.parquet"
    r = runner.invoke(
        app,
        ["training-set", str(tmp_path / "defs"), "-s", "s", "--labels-table", name]
        + ["-o", str(out), "-w", url_orders],
    )
    assert r.exit_code == 0, r.output
    import pyarrow.parquet as pq

    got = pq.read_table(out).to_pylist()
    assert [(g["user_id"], g["n"], g["latest"]) for g in got] == [
        ("a", 2, "it's \\ :as_of"),
        ("b", 0, None),
        ("c", 1, "%(as_of)s %s"),
        ("zz", 0, None),
    ]


@pytest.mark.parametrize("name", ["a..b", "a.", "a.b.c.d"])
def test_labels_table_with_a_bad_name(name, tmp_path):
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "pct.feat").write_text(LITERALS_FEAT)
    r = runner.invoke(
        app,
        ["training-set", str(tmp_path / "defs"), "-s", "s", "--labels-table", name]
        + ["-o", str(tmp_path / "o.parquet"), "-w", "duckdb:///:memory:"],
    )
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "error[E0004]" in lines[0], r.output
    assert "bad table name" in lines[0]


@pytest.mark.parametrize("backend", ["duckdb", "postgres", "spark"])
def test_parameters_are_bound_by_name_and_text_is_data(backend, warehouse_urls):
    """Each backend binds `exp.Placeholder` nodes in its driver's style (Postgres by position,
    numbered by name); text that looks like a placeholder in any style stays a literal."""
    from sqlglot import exp

    lookalike = "%(a)s %s %% $1 $a :a ? \\ ' \" {a}"
    tree = exp.select(
        exp.alias_(exp.Placeholder(this="b"), "b"),
        exp.alias_(exp.Placeholder(this="a"), "a"),
        exp.alias_(exp.Literal.string(lookalike), "text"),
        exp.alias_(exp.Mod(this=exp.Literal.number(-7), expression=exp.Literal.number(3)), "m"),
    )
    with connect(warehouse_url(warehouse_urls, backend), {}) as wh:
        got = wh.query(tree, {"a": 1, "b": 2}).to_pylist()
        assert got == [{"b": 2, "a": 1, "text": lookalike, "m": -1}]
        with pytest.raises(ValueError, match="parameters"):
            wh.query(tree, {"a": 1, "b": 2, "aa": 3})
