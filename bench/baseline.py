"""Run one hand-written baseline SQL file the way `fsc training-set` runs: labels from Parquet,
the result (in label order) written to Parquet.

    python bench/baseline.py baselines/b_fastest.sql DB LABELS OUT [--memory-limit 3GB]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sql", type=Path)
    p.add_argument("db")
    p.add_argument("labels")
    p.add_argument("out")
    p.add_argument("--memory-limit", default=None)
    p.add_argument("--temp-directory", default=None)
    args = p.parse_args()
    config = {}
    if args.memory_limit:
        config["memory_limit"] = args.memory_limit
    if args.temp_directory:
        config["temp_directory"] = args.temp_directory
    con = duckdb.connect(args.db, read_only=True, config=config)
    con.execute("SET preserve_insertion_order = false")
    labels = pq.read_table(args.labels)
    labels = labels.append_column("__row", pa.array(range(labels.num_rows), pa.int64()))
    con.register("labels", labels)
    sql = f"SELECT * EXCLUDE (__row) FROM ({args.sql.read_text()}) ORDER BY __row"
    pq.write_table(con.sql(sql).to_arrow_table(), args.out)


if __name__ == "__main__":
    main()
