"""Lossless text encoding of feature values and entity keys for Redis hashes.

Floats are written in their shortest round-trip form (Arrow's cast, or `repr` inside JSON), so a
value read back is the same double the warehouse computed; lists are JSON; timestamps ISO 8601;
nulls are absent fields.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.compute as pc

from fsdsl import ir


def _json_default(v):
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    raise TypeError(type(v))


def encode_column(column: pa.Array | pa.ChunkedArray, t: ir.Type) -> list[str | None]:
    """Every value of a column as text (None for null), vectorised where Arrow can."""
    if t.name == "list":
        return [
            None if v is None else json.dumps(v, default=_json_default) for v in column.to_pylist()
        ]
    if t.name == "timestamp":
        column = column.cast(pa.timestamp("us"))
    return pc.cast(column, pa.string()).to_pylist()


def decode(value: bytes | str | None, t: ir.Type):
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    name = t.name
    if name == "float":
        return float(value)
    if name == "int":
        return int(value)
    if name == "bool":
        return value == "true"
    if name == "timestamp":
        return dt.datetime.fromisoformat(value)
    if name == "date":
        return dt.date.fromisoformat(value)
    if name == "list":
        items = json.loads(value)
        return [_from_json(x, t.element) for x in items]
    return value


def _from_json(x, t: ir.Type):
    if x is None:
        return None
    if t.name == "timestamp":
        return dt.datetime.fromisoformat(x)
    if t.name == "date":
        return dt.date.fromisoformat(x)
    if t.name == "float":
        return float(x)
    return x


def key_text(values: list | tuple) -> str:
    """The canonical text of an entity key (one value per key column)."""
    return json.dumps(
        list(values), default=_json_default, separators=(",", ":"), ensure_ascii=False
    )


def normalise_key_value(v, t: ir.Type):
    """A key value as the warehouse would return it for the entity's key type."""
    if v is None:
        return None
    if t.name == "string":
        return str(v)
    if t.name == "int":
        return int(v)
    if t.name == "float":
        return float(v)
    if t.name == "bool":
        return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "t", "yes")
    if t.name == "timestamp" and isinstance(v, str):
        return dt.datetime.fromisoformat(v)
    if t.name == "date" and isinstance(v, str):
        return dt.date.fromisoformat(v)
    return v
