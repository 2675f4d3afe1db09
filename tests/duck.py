"""Run compiled queries on an in-memory DuckDB with rows given as Python dicts (test helper)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.compile.render import sql_text
from fsdsl.compile.training import training_query


def load_source(con, source: ir.Source, rows: list[dict]) -> None:
    schema = pa.schema([(c, arrow_type(t)) for c, t in source.columns.items()])
    table = pa.Table.from_pylist(
        [{c: r.get(c) for c in source.columns} for r in rows], schema=schema
    )
    if len(source.table) > 1:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{source.table[0]}"')
    name = ".".join(f'"{p}"' for p in source.table)
    con.register("_load", table)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _load")
    con.unregister("_load")


def training(
    repo: ir.Repository,
    features,
    events: dict[str, list[dict]],
    labels: list[dict],
    label_types: dict[str, ir.Type],
    timestamp_column="event_timestamp",
):
    con = duckdb.connect()
    for name, rows in events.items():
        load_source(con, repo.sources[name], rows)
    schema = pa.schema(
        [(c, arrow_type(t)) for c, t in label_types.items()] + [("__row", pa.int64())]
    )
    table = pa.Table.from_pylist([{**r, "__row": i} for i, r in enumerate(labels)], schema=schema)
    con.register("labels", table)
    q = training_query(
        repo, features, "duckdb", timestamp_column=timestamp_column, order_by="__row"
    )
    result = con.sql(sql_text(q, "duckdb")).to_arrow_table()
    rows = result.to_pylist()
    for r in rows:
        r.pop("__row")
    return rows
