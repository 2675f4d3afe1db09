"""The values of entities whose stored hash failed its checksum, for the next run to rewrite.

An incremental run rewrites only the entities whose values may have changed; a damaged hash is
usually not one of them. Readers queue its key (`OnlineStore.repairs`), and the run recomputes
those entities with the training query as of the run's time — the values `fsc verify` holds
the refresh to — then writes them like its own rows.
"""

from __future__ import annotations

import datetime as dt
import json
import struct

import pyarrow as pa

from fsdsl import ir
from fsdsl.backends.base import Warehouse
from fsdsl.online.codec import normalise_key_value
from fsdsl.online.types import arrow_type

TIME = "__fsdsl_repair_t"


def recompute(
    repo: ir.Repository, view: ir.View, wh: Warehouse, at: dt.datetime, texts: list[str]
) -> pa.Table:
    """The view's key columns and features, as of `at`, for the entities of `texts` (key
    texts as stored)."""
    from fsdsl.training_set import compute

    keys = [json.loads(t) for t in texts]
    micros = (at - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    times = struct.pack(f"<{len(keys)}q", *[micros] * len(keys))
    labels = pa.table(
        {
            **{
                k.name: pa.array(
                    [normalise_key_value(values[j], k.type) for values in keys],
                    arrow_type(k.type),
                )
                for j, k in enumerate(view.entity.keys)
            },
            TIME: pa.Array.from_buffers(pa.timestamp("us"), len(keys), [None, pa.py_buffer(times)]),
        }
    )
    features = [(view.name, f.name) for f in view.features]
    return compute(repo, features, labels, wh, timestamp_column=TIME, where="repair")
