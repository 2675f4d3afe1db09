"""Every warehouse the tests run the compiled SQL on, behind one small interface.

DuckDB always; Postgres from the `pgserver` wheel (a real server on a unix socket); Spark in
local mode when pyspark and a Java runtime are present. A backend that cannot start is skipped
with its reason, which CI (FSDSL_REQUIRE_SERVERS=1) turns into a failure.
"""

from __future__ import annotations

import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.backends import connect
from fsdsl.training_set import compute

BACKENDS = ("duckdb", "postgres", "spark")


def source_table(source: ir.Source, rows: list[dict]) -> pa.Table:
    schema = pa.schema([(c, arrow_type(t)) for c, t in source.columns.items()])
    return pa.Table.from_pylist(
        [{c: r.get(c) for c in source.columns} for r in rows], schema=schema
    )


def load_events(wh, repo: ir.Repository, events: dict[str, list[dict]]) -> None:
    for name, rows in events.items():
        source = repo.sources[name]
        data = source_table(source, rows)
        if wh.dialect == "spark" and len(source.table) == 1:
            wh.register_arrow(source.table[0], data)  # a session view: far faster than a table
        else:
            wh.create_table(source.table, data)


def training_on(url: str):
    """A runner for tests/test_property.py: the whole `compute` path on that warehouse."""

    def run(repo, features, events, labels, label_types, timestamp_column="event_timestamp"):
        schema = pa.schema([(c, arrow_type(t)) for c, t in label_types.items()])
        table = pa.Table.from_pylist(labels, schema=schema)
        with connect(url, {}) as wh:
            load_events(wh, repo, events)
            out = compute(repo, features, table, wh, timestamp_column=timestamp_column)
        return out.to_pylist()

    return run
