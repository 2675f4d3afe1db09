"""The batch writer speaks RESP itself: what a real Redis stores must be exactly what redis-py's
own HSET would have stored, for any text (multi-byte, CR/LF, empty, `$` and `*` inside), plus
the checksum (`checksum.py`) that a reader verifies."""

from __future__ import annotations

from zlib import crc32

import pyarrow as pa
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import flush

from fsdsl.online.checksum import verified
from fsdsl.online.resp import command, command_pieces, del_rows, hset_rows
from fsdsl.online.store import OnlineStore

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@pytest.mark.parametrize("replace", [False, True])
@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(texts, st.lists(st.one_of(st.none(), texts), min_size=3, max_size=3)),
        min_size=1,
        max_size=30,
        unique_by=lambda r: r[0],
    )
)
def test_written_hashes_equal_redis_py(redis_urls, replace, rows):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    names = ["a", "bé", "c d"]
    if replace:  # stale fields that the rewrite must remove
        for key, _ in rows:
            client.hset(f"k:{key}", mapping={"stale": "x", "a": "old"})
    keys = pa.array([f"k:{key}" for key, _ in rows], pa.string())
    fields = {n: pa.array([vals[i] for _, vals in rows], pa.string()) for i, n in enumerate(names)}
    buffer, count = hset_rows(keys, fields, "__", replace=replace)
    OnlineStore(url).send_commands(buffer, count, transaction=replace)
    for key, vals in rows:
        want = {n: v for n, v in zip(names, vals, strict=True) if v is not None}
        stored = client.hgetall(f"k:{key}")
        got = verified(crc32(f"k:{key}".encode()), stored)  # and the checksum holds
        assert got is not None, stored
        assert {k.decode(): v.decode() for k, v in got.items()} == want


def test_deletes_and_errors(redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    client.hset("k:1", "a", "1")
    client.set("k:str", "not a hash")
    store = OnlineStore(url)
    store.send_commands(*del_rows(pa.array(["k:1"])), transaction=True)
    assert client.exists("k:1") == 0
    # HSET on a string is an error reply: it must surface, not pass silently
    buffer, count = hset_rows(pa.array(["k:str"]), {"a": pa.array(["1"])}, "__", replace=False)
    with pytest.raises(Exception, match="online store"):
        store.send_commands(buffer, count, transaction=False)
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
