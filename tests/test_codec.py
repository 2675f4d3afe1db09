"""Encoding of values and keys for Redis: Arrow's vectorised text must decode to exactly the
value (floats bit for bit, lists, text needing JSON escapes), and entity keys must be the same
text a lookup builds with `key_text`."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.online.codec import decode, decoder, encode_array, key_array, key_text, plain_key_text

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
    t = ir.list_of(element) if as_list else element
    item = st.one_of(st.none(), ELEMENTS[element])
    value = st.lists(item, max_size=4) if as_list else ELEMENTS[element]
    values = data.draw(st.lists(st.one_of(st.none(), value), max_size=6))
    offset = data.draw(st.integers(0, len(values)))
    column = pa.array(values, arrow_type(t)).slice(offset)
    encoded = encode_array(column, t).to_pylist()
    for original, text in zip(values[offset:], encoded, strict=True):
        assert same(decode(text, t), original), (original, text)


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


@settings(max_examples=300, deadline=None)
@given(data=st.data(), t=st.sampled_from([ir.FLOAT, ir.INT, ir.STRING, ir.BOOL, ir.TIMESTAMP]))
def test_the_typed_decoders_are_decode(data, t):
    value = data.draw(ELEMENTS[t])
    stored = encode_array(pa.array([value], arrow_type(t)), t).to_pylist()[0].encode()
    assert same(decoder(t)(stored), decode(stored, t))
    assert same(decoder(t)(stored), value)
