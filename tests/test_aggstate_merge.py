"""The aggregate state a stream worker merges every batch: `aggstate.merge` must replace the rows
of exactly the changed entities. A key of several columns is matched column by column first and
by its key text only on the rows that pass (encoding the whole state's keys cost a batch more
than the rest of it): checked against entity-by-entity replacement over random key sets whose
parts recur across entities, so that every column alone matches rows whose key did not change.
The state also goes out in one record batch (`compact`) and comes back equal."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fsdsl.check import load_text
from fsdsl.online import aggstate
from fsdsl.online.memo import per_view

DEFS = """\
entity pair {
  key a: string, b: int
}
entity user {
  key user_id: string
}
source events {
  table "events"
  timestamp ts
  columns {
    a: string
    b: int
    user_id: string
    ts: timestamp
  }
}
features by_pair {
  entity pair
  from events
  n = count(*) over 1d
}
features by_user {
  entity user
  from events
  n = count(*) over 1d
}
"""

REPO, _ = load_text(DEFS, "events.feat")
# few values per column, JSON escapes and multi-byte text among them: parts recur everywhere
TEXTS = st.sampled_from(["x", "y", "", "é", 'q"', "a\\b", "[1,2]"])
INTS = st.integers(-2, 2)


def state(view, keys: list[tuple], tag: int) -> pa.Table:
    """A state whose rows are told apart by their count column (`tag` + position)."""
    s = aggstate.schema(view)
    names = [k.name for k in view.entity.keys]
    cols = {f.name: pa.nulls(len(keys), f.type) for f in s}
    for i, name in enumerate(names):
        cols[name] = pa.array([k[i] for k in keys], s.field(name).type)
    counter = next(f.name for f in s if f.name not in names and pa.types.is_int64(f.type))
    cols[counter] = pa.array(range(tag, tag + len(keys)), pa.int64())
    return pa.table(cols, schema=s)


def expected(view, old: pa.Table, changed: pa.Table) -> list[dict]:
    names = [k.name for k in view.entity.keys]
    new = {tuple(r[n] for n in names) for r in changed.to_pylist()}
    kept = [r for r in old.to_pylist() if tuple(r[n] for n in names) not in new]
    return kept + changed.to_pylist()


def check(view, old_keys: list[tuple], new_keys: list[tuple], chunks: int) -> None:
    old = state(view, old_keys, 0)
    if chunks > 1 and old.num_rows:  # as a refresh result or a loaded state comes
        step = -(-old.num_rows // chunks)
        old = pa.concat_tables([old.slice(i, step) for i in range(0, old.num_rows, step)])
    changed = state(view, new_keys, 1000)
    merged = aggstate.merge(view, old, changed)
    assert merged.to_pylist() == expected(view, old, changed)
    assert merged.schema.equals(aggstate.schema(view))
    back = aggstate.loads(aggstate.dumps(merged), view)
    assert back is not None and back.equals(merged)
    assert all(c.num_chunks <= 1 for c in merged.columns)


@settings(max_examples=300, deadline=None)
@given(
    old=st.lists(st.tuples(TEXTS, INTS), unique=True, max_size=25),
    new=st.lists(st.tuples(TEXTS, INTS), unique=True, min_size=1, max_size=8),
    chunks=st.integers(1, 3),
)
def test_a_two_key_merge_replaces_exactly_the_changed_entities(old, new, chunks):
    check(REPO.views["by_pair"], old, new, chunks)


@settings(max_examples=100, deadline=None)
@given(
    old=st.lists(st.tuples(TEXTS), unique=True, max_size=8),
    new=st.lists(st.tuples(TEXTS), unique=True, min_size=1, max_size=4),
    chunks=st.integers(1, 3),
)
def test_a_one_key_merge_replaces_exactly_the_changed_entities(old, new, chunks):
    check(REPO.views["by_user"], old, new, chunks)


def test_a_view_derived_value_is_kept_per_view_object():
    """`per_view` answers from its memo only for the very object it computed for."""
    calls = []

    @per_view
    def name(view):
        calls.append(view)
        return view.name

    a = REPO.views["by_pair"]
    again, _ = load_text(DEFS, "events.feat")
    b = again.views["by_pair"]
    assert a == b and a is not b
    assert [name(a), name(a), name(b), name(b)] == ["by_pair"] * 4
    assert calls == [a, b] and calls[1] is b
