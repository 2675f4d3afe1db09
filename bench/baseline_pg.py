"""Run one hand-written Postgres baseline the way `fsc training-set -w postgresql+...` runs:
labels uploaded by COPY into a temporary table, the result (in label order) written to Parquet.

    python bench/baseline_pg.py baselines/last_ttl_pg_lateral.sql URL LABELS OUT

The upload and the fetch go through fsdsl's own Postgres warehouse, so both sides pay the same
for moving the labels in and the rows out; the query itself is the hand-written one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fsdsl.backends import connect


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sql", type=Path)
    p.add_argument("url")
    p.add_argument("labels")
    p.add_argument("out")
    args = p.parse_args()
    labels = pq.read_table(args.labels)
    labels = labels.append_column("__row", pa.array(range(labels.num_rows), pa.int64()))
    with connect(args.url, {}) as wh:
        wh.register_arrow("labels", labels)
        body = args.sql.read_text()
        result = wh.execute_sql(f"SELECT * FROM ({body}) AS q ORDER BY __row")
    pq.write_table(result.drop_columns(["__row"]), args.out)


if __name__ == "__main__":
    main()
