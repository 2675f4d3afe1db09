"""Lossless text encoding of feature values and entity keys for the online store.

An entity's stored values are one JSON array (`values_array`), every feature of its view in the
order of their names, so that a lookup reads each entity with one bulk string and decodes a
whole view with one JSON parse in C (`jsontext.loads`), rather than a Redis hash field and a
Python call per value. Floats are written in their shortest round-trip form (Arrow's cast, or
`repr`), always with a point or an exponent so that JSON reads them back as the same double,
never as an int; non-finite ones as `NaN`/`Infinity`, which Python's json reads; timestamps and
dates as ISO 8601 strings; lists as JSON; nulls as `null`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import struct
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from fsdsl import ir


@functools.lru_cache(maxsize=1024, typed=True)
def lit(value: str | bool | int) -> pa.Scalar:
    """An Arrow scalar made from bytes, for compute kernels. Passing a Python value instead
    makes pyarrow check whether it is a pandas object, which imports pandas when installed:
    0.3-0.4 s of every short `fsc run`. Kept (scalars are immutable): a stream batch writes
    its rows with a hundred or two of the same few, at 6 µs each."""
    if isinstance(value, bool):
        return pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(bytes([value]))])[0]
    if isinstance(value, int):
        return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(struct.pack("<q", value))])[
            0
        ]
    data = value.encode("utf-8")
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data))[0]


def string_array(texts: list[str | None]) -> pa.Array:
    """An Arrow string array of Python texts, built from its buffers: `pa.array` of a list would
    import pandas first (see `lit`), in the encoders' value-by-value paths."""
    data = [b"" if t is None else t.encode("utf-8") for t in texts]
    offsets = [0]
    for d in data:
        offsets.append(offsets[-1] + len(d))
    valid = None
    if None in texts:
        bits = bytearray((len(texts) + 7) // 8)
        for i, t in enumerate(texts):
            if t is not None:
                bits[i // 8] |= 1 << (i % 8)
        valid = pa.py_buffer(bytes(bits))
    packed = pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets))
    return pa.StringArray.from_buffers(
        len(texts), packed, pa.py_buffer(b"".join(data)), valid, texts.count(None)
    )


def flat(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array (`combine_chunks` of no chunks converts a Python list: see `lit`)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.combine_chunks() if column.num_chunks else pa.nulls(0, column.type)


def _json_default(v):
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    raise TypeError(type(v))


def _dumps(value) -> str:
    """A Python value as compact JSON (times as ISO texts): a key's text, and what the Arrow
    encoders fall back to value by value."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def _dumps_column(column: pa.Array) -> pa.Array:
    """`_dumps` of every value of a column (null for null)."""
    return string_array([None if v is None else _dumps(v) for v in column.to_pylist()])


def _plain_text(column: pa.Array | pa.ChunkedArray, t: ir.Type) -> pa.Array:
    """Every value of a column as plain text (null for null), as an Arrow string array: the ISO
    text of a timestamp or date, a string as itself (`json_array` quotes them), a list as JSON."""
    column = flat(column)
    if t.name == "list":
        return _encode_lists(column, t)
    if t.name == "timestamp":
        column = column.cast(pa.timestamp("us"))
    return pc.cast(column, pa.string())


_JSON_ESCAPED = r'[\x00-\x1f"\\]'  # what json.dumps would escape in a string


def _json_items(values: pa.Array, t: ir.Type) -> pa.Array | None:
    """List items as JSON text, or None when Arrow's text could differ from valid JSON."""
    if t.name in ("int", "bool"):
        text = pc.cast(values, pa.string())
    elif t.name == "float":
        finite = pc.is_finite(values)
        if pc.any(pc.invert(pc.fill_null(finite, lit(True)))).as_py():
            return None  # NaN and infinities are not JSON numbers
        text = pc.cast(values, pa.string())
    elif t.name == "string":
        if pc.any(pc.match_substring_regex(values, _JSON_ESCAPED)).as_py():
            return None
        text = pc.binary_join_element_wise(lit('"'), values, lit('"'), lit(""))
    else:
        return None
    return pc.fill_null(text, lit("null"))


def _encode_lists(column: pa.Array, t: ir.Type) -> pa.Array:
    items = _json_items(column.values, t.element) if len(column.values) else None
    if items is None and len(column.values):
        return _dumps_column(column)
    if items is None:
        items = pa.nulls(0, pa.string())
    lists = pa.ListArray.from_arrays(column.offsets, items)
    text = pc.binary_join_element_wise(lit("["), pc.binary_join(lists, lit(",")), lit("]"), lit(""))
    return pc.if_else(pc.is_null(column), pa.nulls(len(column), pa.string()), text)


def json_array(column: pa.Array | pa.ChunkedArray, t: ir.Type) -> pa.Array:
    """Every value of a column as JSON text (null for null), by Arrow's kernels where the text is
    certain to be what `jsontext.loads` reads back as the same value, else value by value
    (strings that need escaping). A scalar always gets the same text, whichever path made it,
    as the run compares an entity's text with the empty values' to leave it out (a list's may
    differ with the rest of its column and decode to the same value: that entity is stored)."""
    column = flat(column)
    name = t.name
    if name == "list":
        return _encode_lists(column, t)
    if name in ("int", "bool"):
        return pc.cast(column, pa.string())
    if name == "float":
        text = pc.cast(column, pa.string())
        # Arrow prints 1.0 as "1": JSON would read an int back
        integral = pc.match_substring_regex(text, r"^-?[0-9]+$")
        text = pc.if_else(integral, pc.binary_join_element_wise(text, lit(".0"), lit("")), text)
        finite = pc.fill_null(pc.is_finite(column), lit(True))
        if not pc.all(finite).as_py():
            # Arrow's text of an infinity is "inf" or "-inf" (a Python float here would make
            # pyarrow import pandas: see `lit`)
            infinite = pc.if_else(pc.equal(text, lit("-inf")), lit("-Infinity"), lit("Infinity"))
            text = pc.if_else(pc.is_inf(column), infinite, text)
            text = pc.if_else(pc.is_nan(column), lit("NaN"), text)
        return text
    if name == "string" and pc.any(pc.match_substring_regex(column, _JSON_ESCAPED)).as_py():
        return _dumps_column(column)
    # strings needing no escape, and the ISO texts of timestamps and dates: quoted as they are
    return pc.binary_join_element_wise(lit('"'), _plain_text(column, t), lit('"'), lit(""))


def values_array(columns: list[pa.Array]) -> pa.Array:
    """Each row's stored values, one JSON array of the `json_array` columns (in the order of the
    features' names: `stored_names`)."""
    items = [pc.fill_null(c, lit("null")) for c in columns]
    joined = pc.binary_join_element_wise(*items, lit(","))
    return pc.binary_join_element_wise(lit("["), joined, lit("]"), lit(""))


def values_text(values: list, types: list[ir.Type]) -> str:
    """`values_array` of one row of Python values (tests, and writers of a few entities)."""
    items = []
    for v, t in zip(values, types, strict=True):
        if v is None:
            items.append("null")
        elif t.name == "float":
            items.append(json.dumps(float(v)))  # repr: "1.0", "NaN", "Infinity"
        else:
            items.append(_dumps(v))
    return "[" + ",".join(items) + "]"


def stored_names(features) -> tuple[str, ...]:
    """The order of a view's features in its stored values: by name (code points), the order
    the fingerprint lists them in, so that a stored array never changes meaning under one
    namespace (a definition reordering its features keeps its fingerprint)."""
    return tuple(sorted(f.name for f in features))


def converter(t: ir.Type) -> Callable | None:
    """What turns a value `jsontext.loads` gave into the feature's Python value (not null), or None
    when JSON gives it as it is (ints, floats, bools, strings)."""
    if t.name == "timestamp":
        return dt.datetime.fromisoformat
    if t.name == "date":
        return dt.date.fromisoformat
    if t.name == "list":
        element = t.element
        return lambda items: [_from_json(x, element) for x in items]
    return None


def key_array(columns: list[pa.Array], types: list[ir.Type]) -> pa.Array:
    """`key_text` of every row (keys are never null here), by Arrow for string and int keys."""
    parts = []
    for column, t in zip(columns, types, strict=True):
        column = flat(column)
        if (
            t.name == "string"
            and not pc.any(pc.match_substring_regex(column, _JSON_ESCAPED)).as_py()
        ):
            parts.append(pc.binary_join_element_wise(lit('"'), column, lit('"'), lit("")))
        elif t.name == "int":
            parts.append(pc.cast(column, pa.string()))
        else:
            rows = zip(*[c.to_pylist() for c in columns], strict=True)
            return string_array([key_text(list(r)) for r in rows])
    if not columns or len(columns[0]) == 0:
        return pa.nulls(0, pa.string())
    joined = pc.binary_join_element_wise(*parts, lit(","))
    return pc.binary_join_element_wise(lit("["), joined, lit("]"), lit(""))


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
    return _dumps(list(values))


def key_values(text: str, types: list[ir.Type] | tuple[ir.Type, ...]) -> list:
    """The values `key_text` wrote `text` from, one per key column of those types."""
    if len(types) == 1 and types[0].name == "string" and "\\" not in text:
        return [text[2:-2]]  # `["..."]`, nothing escaped: the common key, without json
    return [_from_json(x, t) for x, t in zip(json.loads(text), types, strict=True)]


def plain_key_text(value) -> str | None:
    """`key_text([value])` without json for the common key, a string needing no escape;
    None for anything else (then use `key_text`)."""
    if isinstance(value, str) and value.isprintable() and '"' not in value and "\\" not in value:
        return f'["{value}"]'
    return None


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
