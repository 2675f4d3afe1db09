"""The batch writer speaks RESP itself: what a real Redis stores must be exactly what redis-py's
own SET would have stored, for any text (multi-byte, CR/LF, empty, `$` and `*` inside), signed
with the checksum a reader verifies (`store.entity_value`)."""

from __future__ import annotations

from zlib import crc32

import pyarrow as pa
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import flush

from fsdsl.online.resp import command, command_pieces, del_rows, set_rows, signed
from fsdsl.online.store import OnlineStore, entity_value

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@pytest.mark.parametrize("replace", [False, True])
@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(texts, texts), min_size=1, max_size=30, unique_by=lambda r: r[0]))
def test_written_strings_equal_redis_py(redis_urls, replace, rows):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    ns = "n s:é"
    if replace:  # what a rewrite replaces whole: an older value, or a hash of an older layout
        for i, (key, _) in enumerate(rows):
            name = OnlineStore.entity_key(ns, key)
            if i % 2:
                client.hset(name, mapping={"stale": "x", "a": "old"})
            else:
                client.set(name, "old")
    keys = pa.array([OnlineStore.entity_key(ns, key) for key, _ in rows], pa.string())
    values = pa.array([value for _, value in rows], pa.string())
    buffer, count = set_rows(keys, signed(keys, values))
    OnlineStore(url).send_commands(buffer, count, transaction=replace)
    for key, value in rows:
        stored = client.get(OnlineStore.entity_key(ns, key))
        assert stored == entity_value(ns, key, value)  # Arrow's text is the Python one
        crc, _, text = stored.partition(b":")
        assert text == value.encode()
        assert int(crc) == crc32(OnlineStore.entity_key(ns, key).encode() + text)


def test_deletes_and_errors(redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    client.hset("k:1", "a", "1")
    client.set("k:str", "not a number")
    store = OnlineStore(url)
    store.send_commands(*del_rows(pa.array(["k:1"])), transaction=True)
    assert client.exists("k:1") == 0
    # an error reply must surface, not pass silently
    with pytest.raises(Exception, match="online store"):
        store.send_commands(command("INCR", "k:str"), 1, transaction=False)
    assert client.ping()


@settings(max_examples=60, deadline=None)
@given(
    args=st.lists(
        st.one_of(texts, st.binary(max_size=40), st.binary(min_size=7000, max_size=7001)),
        max_size=5,
    )
)
def test_commands_are_encoded_as_redis_py_packs_them(args):
    """`command` (and its pieces, which leave a large value uncopied) against redis-py (which
    splits its first argument, the command's name, at spaces)."""
    args = ["HSET", *args]
    packed = b"".join(redis.connection.Connection().pack_command(*args))
    assert command(*args) == packed == b"".join(command_pieces(*args))
