"""The values of entities whose stored values failed their checksum, for the next run to rewrite;
and, by the same query, those of an entity never seen.

An incremental run rewrites only the entities whose values may have changed; a damaged entity is
usually not one of them. Readers queue its key (`OnlineStore.repairs`), and the run recomputes
those entities with the training query as of the run's time — the values `fsc verify` holds
the refresh to — then writes them like its own rows.

The keys come from the store, already typed as the entity says, so the training query runs
here directly: the training-set job's checks of user-supplied labels have nothing to catch, and
the online layer stays free of a dependency on that job (its peer, not its foundation).
"""

from __future__ import annotations

import datetime as dt
import json
import struct

import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type, conform, in_row_order
from fsdsl.backends.base import Warehouse
from fsdsl.compile.training import training_query
from fsdsl.online.codec import normalise_key_value

TIME = "__fsdsl_repair_t"
ROW = "__fsdsl_repair_row"
KEYS_RELATION = "__fsdsl_repair_keys"


def recompute(
    repo: ir.Repository, view: ir.View, wh: Warehouse, at: dt.datetime, texts: list[str]
) -> pa.Table:
    """The view's key columns and features, as of `at`, for the entities of `texts` (key
    texts as stored)."""
    keys = [json.loads(t) for t in texts]
    columns = {
        k.name: pa.array(
            [normalise_key_value(values[j], k.type) for values in keys], arrow_type(k.type)
        )
        for j, k in enumerate(view.entity.keys)
    }
    return values_as_of(repo, view, wh, at, pa.table(columns))


def values_as_of(
    repo: ir.Repository, view: ir.View, wh: Warehouse, at: dt.datetime, keys: pa.Table
) -> pa.Table:
    """`keys` (the entity's key columns, one row per entity) and the view's features as of
    `at`, computed by the training query itself, so that serving agrees with training by
    construction: the values of damaged entities, and those of an unseen entity (null keys)."""
    micros = (at - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    n = keys.num_rows
    times = struct.pack(f"<{n}q", *[micros] * n)
    labels = keys.append_column(
        TIME, pa.Array.from_buffers(pa.timestamp("us"), n, [None, pa.py_buffer(times)])
    )
    # the input's own columns come back as given, in input order (what a warehouse returns
    # for a key, e.g. a zone-aware timestamp, need not be the stored key's type)
    # (arrays from buffers, not Python values: pyarrow's first conversion imports pandas,
    # which a refresh never needs)
    rows = struct.pack(f"<{n}q", *range(n))
    numbered = labels.append_column(
        ROW, pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(rows)])
    )
    features = [(view.name, f.name) for f in view.features]
    wh.register_arrow(KEYS_RELATION, numbered)
    tree = training_query(
        repo, features, wh.dialect, timestamp_column=TIME, labels=KEYS_RELATION, order_by=ROW
    )
    result = in_row_order(wh.query(tree), ROW)
    values = [conform(result[f.name], f.type) for f in view.features]
    return pa.table(
        [*keys.columns, *values], names=[*keys.column_names, *[f.name for f in view.features]]
    )
