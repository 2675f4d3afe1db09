"""IR types as Arrow types: what a feature column holds outside the warehouse.

Neutral ground: the training set, the online store and the tests all hand Arrow tables
around, and none of them should have to import another to agree on a column's type.
"""

from __future__ import annotations

import pyarrow as pa

from fsdsl import ir

_SCALAR = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def arrow_type(t: ir.Type) -> pa.DataType:
    if t.name == "list":
        return pa.list_(arrow_type(t.element))
    return _SCALAR[t.name]


def conform(column, t: ir.Type):
    """A result column as the Arrow type of its feature, whatever the backend returned:
    Postgres `numeric`, Spark's zone-aware timestamps (cast to naive UTC), lists of either."""
    want = arrow_type(t)
    return column if column.type == want else column.cast(want)


def in_row_order(table: pa.Table, row: str) -> pa.Table:
    """`table` with its rows in the order of their numbers in column `row` (0, 1, ...: the
    order of a query's input), whatever order the engine returned them in: a query's ORDER BY
    is not trusted alone (DuckDB's DB-API export has lost it)."""
    if _numbered_in_order(table[row]):
        return table
    import pyarrow.compute as pc

    return table.take(pc.sort_indices(table[row]))


def _numbered_in_order(rows) -> bool:
    """The row numbers 0, 1, ... as they were given to the query (read from the buffer:
    `to_numpy` of a chunked array imports pandas, which a refresh never needs)."""
    import numpy as np

    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    rows = rows.cast(pa.int64())
    n = len(rows)
    if n == 0 or rows.null_count:
        return rows.null_count == 0
    numbers = np.frombuffer(rows.buffers()[1], dtype=np.int64, count=n, offset=rows.offset * 8)
    return bool(np.array_equal(numbers, np.arange(n)))
