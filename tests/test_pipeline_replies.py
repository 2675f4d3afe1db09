"""The replies of a pipeline encoded by the online store (`store._pipeline`), read from
hiredis's reader in bulk (`store._replies`): the same replies redis-py's own pipeline gives,
however many and however large (several socket reads), an error reply raised (as a one-line
E0505), and the connection never reused with replies left on it."""

from __future__ import annotations

import pytest

from fsdsl.diagnostics import UsageError
from fsdsl.online import store as online_store
from fsdsl.online.resp import command
from fsdsl.online.store import OnlineStore


@pytest.fixture(params=["embedded", "debian"])
def store(request, redis_urls):
    url = redis_urls.get(request.param)
    if url is None:
        pytest.skip(f"no {request.param} Redis here (CI provides it)")
    s = OnlineStore(url)
    s.client.flushdb()
    pipe = s.client.pipeline(transaction=False)
    for i in range(3000):  # ~1 MB of replies: many socket reads of 64 kB
        pipe.hset(f"h{i}", mapping={f"f{j}": f"{i}-{j}-" + "x" * 20 for j in range(12)})
    pipe.set("plain", "a string, not a hash")
    pipe.execute()
    yield s
    s.client.flushdb()
    s.close()


def _expected(s: OnlineStore, keys: list[str]) -> list:
    pipe = s.client.pipeline(transaction=False)
    for k in keys:
        pipe.hgetall(k)
    return pipe.execute()


@pytest.mark.parametrize("atomic", [False, True])
def test_many_replies_read_in_bulk_are_redis_py_s(store, atomic):
    assert online_store._NOT_ENOUGH_DATA is not None  # hiredis is a declared dependency
    keys = [f"h{i}" for i in range(3000)] + ["absent"]
    got = store._pipeline([command(b"HGETALL", k) for k in keys], atomic)
    want = _expected(store, keys)
    assert [online_store._as_dict(r) for r in got] == want
    assert want[0] and want[-1] == {}


@pytest.mark.parametrize("atomic", [False, True])
def test_an_error_reply_is_raised_and_its_connection_not_reused(store, atomic):
    keys = [f"h{i}" for i in range(1500)] + ["plain"] + [f"h{i}" for i in range(1500, 3000)]
    with pytest.raises(UsageError, match="WRONGTYPE"):
        store._pipeline([command(b"HGETALL", k) for k in keys], atomic)
    # the next pipeline gets its own replies, not those left behind the error
    again = [f"h{i}" for i in range(2990, 3000)]
    got = store._pipeline([command(b"HGETALL", k) for k in again], False)
    assert [online_store._as_dict(r) for r in got] == _expected(store, again)
