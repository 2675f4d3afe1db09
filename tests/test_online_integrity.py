"""A stored online value that changed after it was written (a bit flipped on disk, a bad AOF
replay) is never served: each entity's values carry a checksum written with them and verified
on every read; a mismatch is logged, counted, served as missing with the status `corrupt`, and
rewritten by the next run, incremental runs included."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pytest
import redis
from projects import example_project
from redis_servers import Server, flush
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.online.codec import stored_names
from fsdsl.online.resp import set_rows, signed
from fsdsl.online.store import OnlineStore

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "120"})
AT = "2024-05-01T00:00:00"
LATER = "2024-05-01T00:00:01"  # an incremental run that rewrites (almost) no entity by itself


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    example_project(
        root,
        users=300,
        orders=6000,
        page_views=10,
        labels=10,
        seed=5,
    )
    return root


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result


def flip_digit(aof: Path, key: bytes, item: int) -> None:
    """Change one digit of the `item`-th value in the (only) SET of `key` in an AOF: the file
    still loads, and the entity comes back with a wrong value of the same length."""
    data = aof.read_bytes()
    assert data.count(key) == 1, "the entity was written once, by the full refresh"
    head = data.index(key) + len(key) + 2  # the value's `$<length>`
    assert data[head : head + 1] == b"$"
    start = data.index(b"\r\n", head) + 2
    start = data.index(b":[", start) + 2  # past the checksum: the values
    for _ in range(item):
        start = data.index(b",", start) + 1
    at = next(i for i in range(start, data.index(b"\r\n", start)) if chr(data[i]).isdigit())
    digit = b"%d" % ((data[at] - ord("0") + 1) % 10)
    aof.write_bytes(data[:at] + digit + data[at + 1 :])


def test_a_value_flipped_in_the_aof_is_served_as_corrupt_then_rewritten(project, tmp_path, caplog):
    server = Server(tmp_path / "redis").start()
    d = str(project / "definitions")
    url = server.url
    try:
        run("run", d, "--online", url, "--at", AT, "-v", "user_orders")
        client = redis.Redis(unix_socket_path=str(server.sock))
        ns = client.hget("fsdsl:state:user_orders", "ns").decode()
        with FeatureStore(d) as store:
            names = stored_names(store.repo.views["user_orders"].features)
        item = names.index("spend_30d")

        def spend(i: int):
            stored = client.get(f'fsdsl:v:{ns}:["u{i:06d}"]')
            return json.loads(stored.split(b":", 1)[1])[item] if stored else None

        user = next(f"u{i:06d}" for i in range(1, 300) if spend(i) is not None)
        get = ("get", d, "-s", "fraud_model", "--online", url)
        served = json.loads(run(*get, f"user_id={user}").stdout)
        unseen = json.loads(run(*get, "user_id=nobody").stdout)
        assert served["spend_30d"] != unseen["spend_30d"]
        server.stop()
        flip_digit(tmp_path / "redis" / "appendonly.aof", f'["{user}"]'.encode(), item)
        server.start()
        caplog.set_level(logging.WARNING, logger="fsdsl")

        got = json.loads(run(*get, f"user_id={user}").stdout)
        assert {k: got[k] for k in ("spend_30d", "orders_7d")} == {
            k: unseen[k] for k in ("spend_30d", "orders_7d")
        }
        assert got["__status"] == {"user_orders": "corrupt"}
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and user in warned[0].getMessage()
        assert "user_orders" in warned[0].getMessage()
        assert str(served["spend_30d"])[:4] not in warned[0].getMessage()  # no values logged
        with FeatureStore(d, online=url) as store:
            rows = store.online_features("fraud_model", [{"user_id": user}], with_status=True)
            assert rows[0]["__status"] == {"user_orders": "corrupt"}
            assert store.online().corrupt_reads == 1

        r = run("run", d, "--online", url, "--at", LATER, "-v", "user_orders", "-f", "json")
        assert json.loads(r.stdout)["views"][0]["mode"] == "incremental"
        again = json.loads(run(*get, f"user_id={user}").stdout)
        as_of = {"_as_of": LATER, "_as_of_views": {"user_orders": LATER}}
        assert again == {**served, "__status": {"user_orders": "ok"}, **as_of}
        run("verify", d, "--online", url, "-v", "user_orders", "--sample", "300")
    finally:
        server.stop()


def test_every_single_byte_change_of_stored_values_is_detected(redis_urls):
    """Written by the batch writer into a real Redis and checked as a lookup checks them: any
    byte of the key, the values or the checksum itself changed is a mismatch, served as
    damaged, never as other values; the values as stored are decoded as they were written."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    ns = "v:fp:1"
    texts = ['["a"]', '["b"]']
    values = ['[1.5,null,7,"é"]', "[" + ",".join(["1.25"] * 30) + ',"t",0,[1,2]]']
    keys = pa.array([OnlineStore.entity_key(ns, t) for t in texts])
    online = OnlineStore(url)
    online.send_commands(*set_rows(keys, signed(keys, pa.array(values))), False)
    total = 0
    for text, value in zip(texts, values, strict=True):
        stored = client.get(OnlineStore.entity_key(ns, text))
        assert online._checked("v", ns, [text], [stored]) == ([json.loads(value)], [])
        variants = [(text, changed) for changed in _changes(stored)]
        for changed in _changes(text.encode()):
            try:
                variants.append((changed.decode(), stored))
            except UnicodeDecodeError:
                continue  # a key text is text
        assert len(variants) >= 30 * 255
        rows, damaged = online._checked("v", ns, *map(list, zip(*variants, strict=True)))
        assert damaged == list(range(len(variants)))
        assert rows == [None] * len(variants)
        total += len(variants)
    assert online.corrupt_reads == total  # each one counted (and logged, queued)


def _changes(data: bytes):
    """Every other value of every byte."""
    for i in range(len(data)):
        for b in range(256):
            if b != data[i]:
                yield data[:i] + bytes([b]) + data[i + 1 :]


def test_damaged_empty_values_degrade_their_view_only_then_are_rewritten(
    project, redis_urls, caplog
):
    """The values of an unseen entity are stored once per namespace and served for every
    missing entity. Damaged, they are never served: that view's entities without stored
    values get nulls with the status `corrupt` (logged, counted), entities with verified values
    and the service's other views are served as usual; the next run, incremental, writes them
    again."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    run("run", d, "--online", url, "--at", AT)
    client = redis.Redis.from_url(url)
    ns = client.hget("fsdsl:state:user_orders", "ns").decode()
    user = next(f"u{i:06d}" for i in range(1, 300) if client.exists(f'fsdsl:v:{ns}:["u{i:06d}"]'))
    keys = [{"user_id": "nobody", "category": "books"}, {"user_id": user, "category": "books"}]
    with FeatureStore(d, online=url) as store:
        before = store.online_features("recommender", keys, with_status=True)
    assert before[0]["__status"]["user_orders"] == "missing"
    assert before[1]["__status"]["user_orders"] == "ok"
    client.hset(f"fsdsl:empty:{ns}", "extra", "1.0")  # a field its checksum does not cover
    caplog.set_level(logging.WARNING, logger="fsdsl")
    with FeatureStore(d, online=url) as store:
        got = store.online_features("recommender", keys, with_status=True)
        assert store.online().corrupt_reads == 1
    assert got[0]["last_amount"] is None
    assert got[0]["__status"] == {**before[0]["__status"], "user_orders": "corrupt"}
    assert got[1] == before[1]  # its own values verified: served as stored
    for view in ("user_browsing", "user_category_browsing"):
        assert got[0]["__status"][view] == before[0]["__status"][view]
    assert {k: v for k, v in got[0].items() if k not in ("last_amount", "__status")} == {
        k: v for k, v in before[0].items() if k not in ("last_amount", "__status")
    }
    assert any("fail their checksum" in r.getMessage() for r in caplog.records)
    r = run("get", d, "-s", "fraud_model", "--online", url, "user_id=nobody")
    assert json.loads(r.stdout)["spend_30d"] is None  # exit 0, one view degraded
    r = run("run", d, "--online", url, "--at", LATER, "-v", "user_orders", "-f", "json")
    assert json.loads(r.stdout)["views"][0]["mode"] == "incremental"
    with FeatureStore(d, online=url) as store:
        assert store.online_features("recommender", keys, with_status=True) == before


def test_absent_empty_values_are_missing_not_corrupt(project, redis_urls, caplog):
    """Absent (e.g. a namespace just retired) is not damaged: after one more look at the
    state, the view's unseen entities are `missing`, with nulls, and nothing is counted or
    logged as failing a checksum."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    run("run", d, "--online", url, "--at", AT, "-v", "user_orders")
    client = redis.Redis.from_url(url)
    ns = client.hget("fsdsl:state:user_orders", "ns").decode()
    client.delete(f"fsdsl:empty:{ns}")
    caplog.set_level(logging.WARNING, logger="fsdsl")
    with FeatureStore(d, online=url) as store:
        (got,) = store.online_features("fraud_model", [{"user_id": "nobody"}], with_status=True)
        assert store.online().corrupt_reads == 0
    assert got == {
        "user_id": "nobody",
        "spend_30d": None,
        "orders_7d": None,
        "__status": {"user_orders": "missing"},
    }
    assert not any("checksum" in r.getMessage() for r in caplog.records)


def _flips(data: bytes):
    """Every single-bit change of `data`."""
    for i in range(len(data)):
        for bit in range(8):
            yield data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def test_every_bit_flip_of_the_stored_aggregate_state_is_detected(redis_urls, monkeypatch):
    """The state an incremental run merges into: any bit of a part, a part's name, a part
    dropped or the whole state moved to another namespace is read as absent (the run then
    refreshes in full), never as different values."""
    from fsdsl.online import store as online_store

    url = redis_urls["embedded"]
    flush(url)
    monkeypatch.setattr(online_store, "AGG_PART", 48)  # several parts, in a real Redis
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    blob = bytes(range(120))
    state = {"ns": "v:fp:1", "fp": "fp", "as_of": AT, "watermark": AT, "refreshed_at": AT}
    store.set_state("v", state, aggregates=blob)
    assert store.read_aggregates("v:fp:1") == blob
    key = b"fsdsl:agg:v:fp:1"
    stored = client.hgetall(key)
    assert len(stored) >= 3
    seen = 0
    for name, value in stored.items():
        for changed in _flips(value):
            client.hset(key, name, changed)
            assert store.read_aggregates("v:fp:1") is None, (name, changed)
            seen += 1
        client.hset(key, name, value)
        for changed in _flips(name):
            if changed in stored:
                continue  # another part's name: covered by the part's own flips
            client.hdel(key, name)
            client.hset(key, changed, value)
            assert store.read_aggregates("v:fp:1") is None, (name, changed)
            client.hdel(key, changed)
            client.hset(key, name, value)
        client.hdel(key, name)
        assert store.read_aggregates("v:fp:1") is None, name
        client.hset(key, name, value)
    assert seen >= 120 * 8
    assert store.read_aggregates("v:fp:1") == blob
    client.copy(key, b"fsdsl:agg:v:fp:2")
    assert store.read_aggregates("v:fp:2") is None  # another namespace's state


def test_every_bit_flip_of_the_state_hash_is_detected(redis_urls):
    """A damaged `state` is never a wrong watermark or namespace: the view reads as never
    refreshed (its next run is a full one)."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    state = {"ns": "v:fp:1", "fp": "fp", "as_of": AT, "watermark": AT, "refreshed_at": AT}
    store.set_state("v", state)
    assert store.state("v") == state
    key = b"fsdsl:state:v"
    for name, value in client.hgetall(key).items():
        for changed in _flips(value):
            client.hset(key, name, changed)
            assert store.state("v") == {}, (name, changed)
        client.hset(key, name, value)
        client.hdel(key, name)
        assert store.state("v") == {}, name
        client.hset(key, name, value)
    assert store.state("v") == state


def test_every_bit_flip_of_the_serving_string_is_detected(redis_urls):
    """What a lookup reads of the state (`fsdsl:serving:{view}`, written with it): damaged, the
    view is not served (a lookup finds no complete refresh, E0508), counted and logged, never
    read under a wrong namespace or as of a wrong time; intact, it says what the state says."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    state = {"ns": "v:fp:1", "fp": "fp", "as_of": AT, "watermark": AT, "refreshed_at": AT}
    store.write_empty("v:fp:1", "[1.5]")
    store.set_state("v", state)
    read = [("v", "fp", ["x"], ["k"])]
    assert OnlineStore(url).lookup(read, as_of=True) == [([1.5], [None], [], AT)]
    key = b"fsdsl:serving:v"
    value = client.get(key)
    assert value.endswith(b":fp\nv:fp:1\n" + AT.encode())
    flips = 0
    for changed in _flips(value):
        client.set(key, changed)
        reader = OnlineStore(url)
        assert reader.lookup(read) == [None], changed
        assert reader.lookup(read, as_of=True) == [None], changed
        assert reader.corrupt_reads >= 1
        flips += 1
    client.delete(key)  # absent: not served either (the next run writes it)
    assert OnlineStore(url).lookup(read) == [None]
    client.set(key, value)
    assert OnlineStore(url).lookup(read, as_of=True) == [([1.5], [None], [], AT)]
    assert flips == len(value) * 8


def test_damaged_run_state_or_aggregates_mean_a_full_refresh(project, redis_urls, caplog):
    """End to end: a bit flipped in the stored watermark, or in the aggregate state where
    Arrow still reads it, makes the next run a full one (with a warning) and the values served
    are right."""
    from fsdsl.check import load_repository
    from fsdsl.online import aggstate

    url = redis_urls["embedded"]
    d = str(project / "definitions")
    client = redis.Redis.from_url(url)
    view = load_repository(project / "definitions")[0].views["user_orders"]
    caplog.set_level(logging.WARNING, logger="fsdsl")
    for damage in ("watermark", "aggregates"):
        flush(url)
        run("run", d, "--online", url, "--at", AT, "-v", "user_orders")
        ns = client.hget("fsdsl:state:user_orders", "ns").decode()
        if damage == "watermark":  # "2024-05-01" -> "2024-04-01": one bit
            stamp = client.hget("fsdsl:state:user_orders", "watermark")
            client.hset("fsdsl:state:user_orders", "watermark", stamp.replace(b"-05-", b"-04-"))
        else:
            key = f"fsdsl:agg:{ns}"
            (name, blob), *_ = [(k, v) for k, v in client.hgetall(key).items() if k != b"__"]
            good = aggstate.loads(blob, view)
            for changed in _flips(blob[len(blob) // 2 :]):
                changed = blob[: len(blob) // 2] + changed
                loaded = aggstate.loads(changed, view)
                if loaded is not None and not loaded.equals(good):
                    break
            client.hset(key, name, changed)
        caplog.clear()
        r = run("run", d, "--online", url, "--at", LATER, "-v", "user_orders", "-f", "json")
        assert json.loads(r.stdout)["views"][0]["mode"] == "full", damage
        assert any(r.levelno == logging.WARNING for r in caplog.records), damage
        run("verify", d, "--online", url, "-v", "user_orders", "--sample", "300")


def test_unchecked_values_that_are_not_an_array_are_damaged(redis_urls):
    """With checks off (a benchmark's switch, never serving), a stored string is not verified;
    one that is not a JSON array is still damaged (reported, served as missing), never a failed
    lookup, whatever its neighbours hold."""
    url = redis_urls["embedded"]
    flush(url)
    online = OnlineStore(url)
    online.verify_checksums = False
    texts = ['["a"]', '["b"]', '["c"]', '["d"]', '["e"]']
    # the first two joined would parse as one array: the count tells
    stored = [b"1:[1,2", b"2:3]", b"3:5", None, b"4:[7]"]
    rows, damaged = online._checked("v", "ns", texts, stored)
    assert damaged == [0, 1, 2]
    assert rows == [None, None, None, None, [7]]
    assert online.corrupt_reads == 3
