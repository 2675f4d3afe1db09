"""Encoding of values and keys for Redis: Arrow's vectorised JSON must decode to exactly the
value (floats bit for bit and as floats, lists, text needing JSON escapes), and entity keys must
be the same text a lookup builds with `key_text`."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.online.codec import (
    converter,
    json_array,
    key_array,
    key_text,
    plain_key_text,
    values_array,
    values_text,
)
from fsdsl.online.jsontext import loads

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
ELEMENTS = {
    ir.FLOAT: st.floats(allow_nan=True, allow_infinity=True),
    ir.INT: st.integers(-(2**63), 2**63 - 1),
    ir.STRING: texts,
    ir.BOOL: st.booleans(),
    ir.TIMESTAMP: st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)),
}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    # the type too: `1 == 1.0 == True` in Python, and a served value of the wrong type (an int
    # for a float, from JSON `1`) is a wrong value for the client that reads it
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(data=st.data(), element=st.sampled_from(list(ELEMENTS)), as_list=st.booleans())
def test_values_decode_to_themselves(data, element, as_list):
    """Stored as a lookup reads them: a view's rows (here the column and a row number) joined
    into one JSON text and parsed at once, then finished by the type's converter."""
    t = ir.list_of(element) if as_list else element
    item = st.one_of(st.none(), ELEMENTS[element])
    value = st.lists(item, max_size=4) if as_list else ELEMENTS[element]
    values = data.draw(st.lists(st.one_of(st.none(), value), max_size=6))
    offset = data.draw(st.integers(0, len(values)))
    column = pa.array(values, arrow_type(t)).slice(offset)
    number = pa.array(range(len(column)), pa.int64())
    rows = values_array([json_array(column, t), json_array(number, ir.INT)]).to_pylist()
    decoded = loads(("[" + ",".join(rows) + "]").encode())
    convert = converter(t)
    for i, (original, row) in enumerate(zip(values[offset:], decoded, strict=True)):
        got = row[0] if row[0] is None or convert is None else convert(row[0])
        assert same(got, original), (original, rows[i])
        assert row[1] == i
        # a few entities' writer (`values_text`) stores what decodes to the same value
        (alone,) = loads(values_text([original], [t]).encode())
        assert same(alone if alone is None or convert is None else convert(alone), original)
        if not as_list:  # a scalar's text is its own, whatever else its column holds
            (own,) = values_array([json_array(column.slice(i, 1), t)]).to_pylist()
            assert own == rows[i][: rows[i].rindex(",")] + "]"


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(texts, st.integers(-(2**63), 2**63 - 1)), max_size=6))
def test_keys_are_the_lookup_text(rows):
    columns = [pa.array([r[0] for r in rows], pa.string()), pa.array([r[1] for r in rows])]
    got = key_array(columns, [ir.STRING, ir.INT]).to_pylist()
    assert got == [key_text(list(r)) for r in rows]


@settings(max_examples=300, deadline=None)
@given(value=texts)
def test_the_lookup_fast_path_is_key_text(value):
    text = plain_key_text(value)
    assert text is None or text == key_text([value])


def test_the_lookup_fast_path_is_taken_for_a_plain_key():
    """The property above also holds if the fast path is never taken."""
    assert plain_key_text("u000042") == key_text(["u000042"]) == '["u000042"]'


def test_a_float_is_read_back_as_a_float():
    """JSON reads `1` as an int: a float with no fraction is written `1.0` (Arrow prints `1`),
    and a non-finite one as json's `NaN`/`Infinity`, which orjson refuses and json reads."""
    column = pa.array([1.0, -0.0, 1e20, float("nan"), float("inf"), -float("inf"), None])
    texts = json_array(column, ir.FLOAT).to_pylist()
    assert texts == ["1.0", "-0.0", "1e+20", "NaN", "Infinity", "-Infinity", None]
    got = loads(values_array([json_array(column, ir.FLOAT)]).to_pylist()[0].encode())
    assert all(isinstance(v, float) for v in got[:-1])


def test_the_encoder_does_not_import_pandas(tmp_path):
    """pyarrow imports pandas (0.3-0.4 s of a short `fsc run`) the first time a kernel is given
    a Python value: the encoder gives Arrow scalars only, non-finite floats included. The
    columns reach the child process as Arrow IPC, so that nothing but the encoder converts."""
    table = pa.table(
        {
            "f": pa.array([1.0, float("inf"), -float("inf"), float("nan"), None]),
            "s": pa.array(["a", 'q"', None, "x", "y"]),
            "i": pa.array([1, 2, None, 4, 5]),
            "t": pa.array([dt.datetime(2024, 1, 1)] * 5, pa.timestamp("us")),
            "l": pa.array([[1.5, float("nan")], None, [], [2.0], [None]]),
        }
    )
    with pa.ipc.new_file(tmp_path / "t.arrow", table.schema) as out:
        out.write_table(table)
    script = f"""
import sys
import pyarrow as pa
from fsdsl import ir
from fsdsl.online.codec import json_array, values_array
table = pa.ipc.open_file({str(tmp_path / "t.arrow")!r}).read_all()
types = {{"f": ir.FLOAT, "s": ir.STRING, "i": ir.INT, "t": ir.TIMESTAMP, "l": ir.list_of(ir.FLOAT)}}
text = values_array([json_array(table.column(n), t) for n, t in types.items()])
assert "pandas" not in sys.modules  # not by reading the file either
print(text.to_pylist()[1])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[Infinity,"q\\"",2,"2024-01-01 00:00:00.000000",null]'


def test_the_store_module_imports_no_pyarrow():
    """`fsc plan` and `fsc lint` reach the store's module through the fingerprint: reading the
    stored JSON (`jsontext`) must not bring the Arrow encoders (pyarrow: ~0.1 s) with it."""
    script = "import sys, fsdsl.online.plan; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
