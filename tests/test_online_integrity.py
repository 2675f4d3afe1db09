"""A stored online value that changed after it was written (a bit flipped on disk, a bad AOF
replay) is never served: each entity's hash carries a checksum written with it and verified
on every read; a mismatch is logged, counted, served as missing with the status `corrupt`, and
rewritten by the next run, incremental runs included."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from zlib import crc32

import pyarrow as pa
import pytest
import redis
from projects import example_project
from redis_servers import Server, flush
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.online import checksum
from fsdsl.online.resp import hset_rows
from fsdsl.online.store import MARKER, OnlineStore

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


def flip_digit(aof: Path, key: bytes, field: bytes) -> None:
    """Change one digit of `field`'s value in the (only) HSET of `key` in an AOF: the file
    still loads, and the hash comes back with a wrong value of the same length."""
    data = aof.read_bytes()
    assert data.count(key) == 1, "the entity was written once, by the full refresh"
    name = data.index(b"\r\n" + field + b"\r\n", data.index(key))
    head = name + len(field) + 4  # the value's `$<length>`
    assert data[head : head + 1] == b"$"
    start = data.index(b"\r\n", head) + 2
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
        user = next(
            f"u{i:06d}"
            for i in range(1, 300)
            if client.hexists(f'fsdsl:v:{ns}:["u{i:06d}"]', "spend_30d")
        )
        get = ("get", d, "-s", "fraud_model", "--online", url)
        served = json.loads(run(*get, f"user_id={user}").stdout)
        unseen = json.loads(run(*get, "user_id=nobody").stdout)
        assert served["spend_30d"] != unseen["spend_30d"]
        server.stop()
        flip_digit(tmp_path / "redis" / "appendonly.aof", f'["{user}"]'.encode(), b"spend_30d")
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
        assert again == {**served, "__status": {"user_orders": "ok"}}
        run("verify", d, "--online", url, "-v", "user_orders", "--sample", "300")
    finally:
        server.stop()


def test_every_single_byte_change_of_a_stored_hash_is_detected(redis_urls):
    """Written by the batch writer into a real Redis and read back as a lookup reads it: any
    byte of the key, a field name, a value or the checksum itself changed is a mismatch; the
    hash as stored, in any field order, is not."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    long = "[" + ",".join(["1.25"] * 30) + "]"  # over 64 bytes: Redis reorders such a hash
    keys = pa.array(['fsdsl:v:ns:["a"]', 'fsdsl:v:ns:["b"]'])
    fields = {"x": pa.array(["1.5", long]), "é": pa.array([None, "t"]), "n": pa.array(["7", "0"])}
    OnlineStore(url).send_commands(*hset_rows(keys, fields, MARKER, replace=False), False)
    for key in keys.to_pylist():
        stored = client.hgetall(key)
        if key.endswith('["a"]'):  # a small hash comes back in written order, checksum last
            assert list(stored) == [b"n", b"x", b"__"]
        assert intact(key.encode(), stored)
        assert intact(key.encode(), dict(reversed(stored.items())))
        assert not intact(key.encode(), {k: v for k, v in stored.items() if k != b"__"})
        variants = [(changed, stored) for changed in _changes(key.encode())]
        for name, value in stored.items():
            for changed in _changes(name):
                renamed = {(changed if k == name else k): v for k, v in stored.items()}
                variants.append((key.encode(), renamed))
            for changed in _changes(value):
                variants.append((key.encode(), {**stored, name: changed}))
        assert len(variants) >= 30 * 255
        for k, row in variants:
            assert not intact(k, row), (k, row)


def intact(key: bytes, stored: dict) -> bool:
    return checksum.verified(crc32(key), dict(stored)) is not None


def _changes(data: bytes):
    """Every other value of every byte."""
    for i in range(len(data)):
        for b in range(256):
            if b != data[i]:
                yield data[:i] + bytes([b]) + data[i + 1 :]


def test_damaged_empty_values_are_refused_then_rewritten(project, redis_urls):
    """The values of an unseen entity are stored once per namespace and served for every
    missing entity: damaged, they are never served (one line, exit 2) and the next run,
    incremental, writes them again."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    run("run", d, "--online", url, "--at", AT, "-v", "user_orders")
    get = ("get", d, "-s", "fraud_model", "--online", url, "user_id=nobody")
    unseen = json.loads(run(*get).stdout)
    client = redis.Redis.from_url(url)
    (key,) = client.keys("fsdsl:empty:*")
    client.hset(key, "spend_30d", "1.0")  # an unseen entity has none within the TTL
    r = runner.invoke(app, list(get))
    assert r.exit_code == 2, r.output
    assert "error[E0509]" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = run("run", d, "--online", url, "--at", LATER, "-v", "user_orders", "-f", "json")
    assert json.loads(r.stdout)["views"][0]["mode"] == "incremental"
    assert json.loads(run(*get).stdout) == unseen
