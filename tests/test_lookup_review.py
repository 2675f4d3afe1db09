"""A review of the online read path (`OnlineStore.lookup`, the lookup script, `lookup.py`):
the connection each path borrows from the pool is never given back with replies unread, the
script survives a server that forgot it, RESP2 and RESP3 URLs serve the same rows, a read-only
replica serves, and the edge cases of links (no rows, int keys, a link not served, damaged link
strings in a chain) serve what the training query gives."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import redis
from redis_servers import Server, flush, misdirect_link

from fsdsl import FeatureStore
from fsdsl.diagnostics import UsageError
from fsdsl.online import lookup as lookup_module
from fsdsl.online.server import redis_binary

T0 = dt.datetime(2024, 5, 1)
DAY = dt.timedelta(days=1)

DEFS = """
entity user {
  key user_id: string
}

entity device {
  key device_id: string
}

entity account {
  key account_id: int
}

source orders {
  table "orders"
  timestamp ts
  columns {
    user_id: string
    amount: float
    ts: timestamp
  }
}

source device_links {
  table "device_links"
  timestamp linked_at
  columns {
    device_id: string
    user_id: string
    linked_at: timestamp
  }
}

source user_accounts {
  table "user_accounts"
  timestamp joined_at
  columns {
    user_id: string
    account_id: int
    joined_at: timestamp
  }
}

source payments {
  table "payments"
  timestamp ts
  columns {
    account_id: int
    paid: float
    ts: timestamp
  }
}

features spend {
  entity user
  from orders
  spend_7d = sum(amount) over 7d
  orders_7d = count(*) over 7d
}

features paid {
  entity account
  from payments
  paid_total = sum(paid)
  payments = count(*)
}

link device_owner {
  from device_links
  device -> user
}

link user_account {
  from user_accounts
  user -> account
}

service by_device {
  key device
  features spend.spend_7d, spend.orders_7d, paid.paid_total, paid.payments
}

service by_user {
  features spend.spend_7d, spend.orders_7d
}
"""

USERS = ['u"q', "u\\b", "u\nl", "plain", "é"]
DEVICES = [f"d{i}" for i in range(len(USERS))] + ["d_unlinked", "d_never"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lookup_review")
    (root / "defs").mkdir()
    (root / "defs" / "repo.feat").write_text(DEFS)
    (root / ".fsc").mkdir()
    con = duckdb.connect(str(root / ".fsc" / "warehouse.duckdb"))
    con.execute("CREATE TABLE orders (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)")
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE user_accounts (user_id VARCHAR, account_id BIGINT, joined_at TIMESTAMP)"
    )
    con.execute("CREATE TABLE payments (account_id BIGINT, paid DOUBLE, ts TIMESTAMP)")
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        [(u, float(i + 1), T0 - (i % 3 + 1) * DAY) for i, u in enumerate(USERS)],
    )
    links = [(f"d{i}", u, T0 - 10 * DAY) for i, u in enumerate(USERS)]
    links += [("d_unlinked", "plain", T0 - 9 * DAY), ("d_unlinked", None, T0 - 8 * DAY)]
    con.executemany("INSERT INTO device_links VALUES (?, ?, ?)", links)
    # every other user has an account (negative ids too)
    accounts = [(u, -(2**40) - i if i % 2 else i, T0 - 7 * DAY) for i, u in enumerate(USERS)]
    con.executemany("INSERT INTO user_accounts VALUES (?, ?, ?)", accounts[::2])
    con.executemany(
        "INSERT INTO payments VALUES (?, ?, ?)",
        [(a, 3.0 * (i + 1), T0 - DAY) for i, (_u, a, _t) in enumerate(accounts)],
    )
    con.close()
    return root


def store(project: Path, url: str) -> FeatureStore:
    warehouse = f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}"
    return FeatureStore(project / "defs", warehouse=warehouse, online=url)


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def everything(fs: FeatureStore, keys: list[dict]) -> dict:
    """Every way of reading: the script (as-of or not), the split, plain pipelines (as-of:
    MULTI/EXEC), each twice (the second from the cached serving state)."""
    out = {}
    user_keys = [{"user_id": u} for u in [*USERS, "nobody", None]]
    for name in ("first", "cached"):
        out[f"script-{name}"] = fs.online_features("by_device", keys, with_status=True)
        out[f"script-as-of-{name}"] = fs.online_features(
            "by_device", keys, with_status=True, with_as_of=True
        )
        out[f"plain-{name}"] = fs.online_features("by_user", user_keys, with_status=True)
        out[f"plain-as-of-{name}"] = fs.online_features(
            "by_user", user_keys, with_status=True, with_as_of=True
        )
        saved = lookup_module.SCRIPT_ROWS
        lookup_module.SCRIPT_ROWS = 0
        try:
            out[f"split-{name}"] = fs.online_features("by_device", keys, with_status=True)
            out[f"split-as-of-{name}"] = fs.online_features(
                "by_device", keys, with_status=True, with_as_of=True
            )
        finally:
            lookup_module.SCRIPT_ROWS = saved
    return out


def served(rows: list[dict]) -> list[tuple]:
    return [
        (r["device_id"], r["user_id"], r["account_id"], r["spend_7d"], r["paid_total"])
        for r in rows
    ]


@pytest.fixture(scope="module")
def expected(project, redis_urls) -> dict:
    """What the default URL (RESP3) serves, checked against the training query."""
    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": d} for d in DEVICES]
    with store(project, url) as fs:
        fs.run(at=T0)
        got = everything(fs, keys)
        at = got["script-as-of-first"][0]["_as_of"]
        labels = pa.table({"device_id": DEVICES, "event_timestamp": [at] * len(DEVICES)})
        trained = fs.training_set(labels, "by_device").to_pylist()
    assert served(got["script-first"]) == served(trained)
    assert got["script-first"] == got["split-first"]
    return got


@pytest.mark.parametrize("protocol", ["2", "3"])
@pytest.mark.parametrize("server", ["embedded", "debian"])
def test_resp2_and_resp3_urls_serve_the_same_rows(project, redis_urls, expected, server, protocol):
    """`?protocol=2` (flat HGETALL replies) and `?protocol=3` (maps): the script, the split,
    plain pipelines and MULTI/EXEC all serve what the default protocol does, over TCP and a
    unix socket."""
    if server not in redis_urls:
        pytest.skip("no Debian redis-server here (CI starts one: FSDSL_REDIS_URL)")
    url = with_query(redis_urls[server], f"protocol={protocol}")
    flush(url)
    keys = [{"device_id": d} for d in DEVICES]
    with store(project, url) as fs:
        fs.run(at=T0)
        got = everything(fs, keys)
    assert got.keys() == expected.keys()
    for name, rows in got.items():
        assert [{k: v for k, v in r.items() if not k.startswith("_as_of")} for r in rows] == [
            {k: v for k, v in r.items() if not k.startswith("_as_of")} for r in expected[name]
        ], name


def test_the_script_is_loaded_again_after_script_flush(project, redis_urls, expected):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    keys = [{"device_id": d} for d in DEVICES]
    with store(project, url) as fs:
        fs.run(at=T0)
        for _ in range(2):
            client.script_flush()
            rows = fs.online_features("by_device", keys, with_status=True)
            assert rows == expected["script-first"]
            client.script_flush()
            rows = fs.online_features("by_device", keys, with_status=True, with_as_of=True)
            assert [{k: v for k, v in r.items() if not k.startswith("_as_of")} for r in rows] == [
                {k: v for k, v in r.items() if not k.startswith("_as_of")}
                for r in expected["script-as-of-first"]
            ]


def test_a_restarted_server_serves_at_once(project, tmp_path, expected):
    """The pooled connections die with the server and the restarted one knows no script: the
    first lookup after the restart is served all the same."""
    server = Server(tmp_path / "r").start()
    keys = [{"device_id": d} for d in DEVICES]
    try:
        with store(project, server.url) as fs:
            fs.run(at=T0)
            assert (
                fs.online_features("by_device", keys, with_status=True) == expected["script-first"]
            )
            server.stop()
            server.start()
            assert (
                fs.online_features("by_device", keys, with_status=True) == expected["script-first"]
            )
            user_keys = [{"user_id": u} for u in [*USERS, "nobody", None]]
            server.stop()
            server.start()
            assert (
                fs.online_features("by_user", user_keys, with_status=True)
                == expected["plain-first"]
            )
    finally:
        server.stop()


def test_zero_rows(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    with store(project, url) as fs:
        fs.run(at=T0)
        for with_as_of in (False, True):
            assert fs.online_features("by_device", [], with_as_of=with_as_of) == []
            assert fs.online_features("by_user", [], with_as_of=with_as_of) == []


def by_ways(fs: FeatureStore, keys: list[dict], **kwargs) -> list[list[dict]]:
    """The same lookup by the script and by the split (links, then the views)."""
    one = fs.online_features("by_device", keys, with_status=True, **kwargs)
    saved = lookup_module.SCRIPT_ROWS
    lookup_module.SCRIPT_ROWS = 0
    try:
        two = fs.online_features("by_device", keys, with_status=True, **kwargs)
    finally:
        lookup_module.SCRIPT_ROWS = saved
    return [one, two]


def test_damaged_links_along_a_chain_never_lead_to_another_entity(project, redis_urls):
    """d1's link (to u\\b, who has no account) is made to name u"q (account 0), and é's account
    link (account 4) to name account 0: both rows are served as the damaged links they are,
    never account 0's payments, by the script and by the split alike; other rows unchanged."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    keys = [{"device_id": d} for d in [*DEVICES, None]]
    with store(project, url) as fs:
        fs.run(at=T0)
        honest = by_ways(fs, keys)
        assert honest[0] == honest[1]
        misdirect_link(client, "device_owner", ["d1"], [USERS[0]])
        misdirect_link(client, "user_account", ["é"], [0])
        for rows in by_ways(fs, keys):
            got = {r["device_id"]: r for r in rows}
            d1, d4 = got["d1"], got["d4"]
            assert served([d1]) == [("d1", None, None, None, None)]
            assert (d1["orders_7d"], d1["payments"]) == (0, 0)
            assert d1["__status"] == {
                "device_owner": "corrupt",
                "user_account": "missing",
                "spend": "missing",
                "paid": "missing",
            }
            assert served([d4]) == [("d4", "é", None, 5.0, None)]
            assert d4["__status"] == {
                "device_owner": "ok",
                "user_account": "corrupt",
                "spend": "ok",
                "paid": "missing",
            }
            others = [r for r in rows if r["device_id"] not in ("d1", "d4")]
            assert others == [r for r in honest[0] if r["device_id"] not in ("d1", "d4")]


def test_a_link_of_a_chain_not_served(project, redis_urls):
    """The second link of the chain never refreshed: E0508 naming it, by either way."""
    url = redis_urls["embedded"]
    flush(url)
    with store(project, url) as fs:
        fs.run(at=T0, views=["spend", "paid", "device_owner"])
        for rows in (1, 40):
            with pytest.raises(UsageError) as err:
                fs.online_features("by_device", [{"device_id": "d0"}] * rows)
            assert err.value.code == "E0508" and "`user_account`" in str(err.value)


@pytest.mark.parametrize("how", ["url", "env"])
def test_a_password_protected_server(project, tmp_path, expected, monkeypatch, how):
    """The script's and the pipelines' connections authenticate like any other of the pool,
    the script loaded under the same password when the server forgot it."""
    server = Server(tmp_path / "r", password="s3cr:et@").start()
    url = f"unix://default:{'s3cr%3Aet%40'}@{server.sock}"
    if how == "env":
        url = f"unix://{server.sock}"
        monkeypatch.setenv("FSC_REDIS_PASSWORD", "s3cr:et@")
    keys = [{"device_id": d} for d in DEVICES]
    user_keys = [{"user_id": u} for u in [*USERS, "nobody", None]]
    try:
        with store(project, url) as fs:
            fs.run(at=T0)
            redis.Redis(unix_socket_path=str(server.sock), password="s3cr:et@").script_flush()
            assert (
                fs.online_features("by_device", keys, with_status=True) == expected["script-first"]
            )
            assert (
                fs.online_features("by_user", user_keys, with_status=True)
                == expected["plain-first"]
            )
    finally:
        server.stop()


def test_a_view_served_after_a_failed_lookup(project, redis_urls, expected):
    """A lookup that found a view not served (E0508) caches the others; once the view is
    refreshed, the next lookup reads its state and serves it (no namespace cached for it
    when the script was sent)."""
    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": d} for d in DEVICES]
    for first, then in (
        (["spend", "device_owner", "user_account"], ["paid"]),
        (["spend", "paid", "user_account"], ["device_owner"]),
    ):
        flush(url)
        with store(project, url) as fs:
            fs.run(at=T0, views=first)
            for n in (1, 40):
                with pytest.raises(UsageError):
                    fs.online_features("by_device", keys * n)
            fs.run(at=T0, views=then)
            assert (
                fs.online_features("by_device", keys, with_status=True) == expected["script-first"]
            )
            assert by_ways(fs, keys)[1] == expected["split-first"]


def test_a_long_lived_reader_follows_every_refresh(tmp_path, redis_urls, monkeypatch):
    """A reader that keeps its cached serving state (checked on every call: STATE_TTL 0) serves
    what a new reader serves after each full refresh of one view (a namespace switch, the link's
    included), each incremental run and each push, by the script, the split and as-of."""
    from fsdsl.online import store as store_module

    monkeypatch.setattr(store_module, "STATE_TTL", 0.0)
    import random

    rng = random.Random(12)
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "repo.feat").write_text(DEFS)
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE orders (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)")
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE user_accounts (user_id VARCHAR, account_id BIGINT, joined_at TIMESTAMP)"
    )
    con.execute("CREATE TABLE payments (account_id BIGINT, paid DOUBLE, ts TIMESTAMP)")
    con.close()
    users = ["ua", "ub", 'u"c', "ud"]
    devices = [f"d{i}" for i in range(6)]

    def add(at: dt.datetime) -> None:
        con = duckdb.connect(str(db))
        for _ in range(3):
            con.execute(
                "INSERT INTO orders VALUES (?, ?, ?)",
                [rng.choice(users), float(rng.randint(1, 9)), at - rng.randint(1, 50) * DAY / 10],
            )
        con.execute(
            "INSERT INTO device_links VALUES (?, ?, ?)",
            [rng.choice(devices), rng.choice([*users, None]), at - DAY / 100],
        )
        con.execute(
            "INSERT INTO user_accounts VALUES (?, ?, ?)",
            [rng.choice(users), rng.choice([1, -2, 3]), at - DAY / 100],
        )
        con.execute(
            "INSERT INTO payments VALUES (?, ?, ?)",
            [rng.choice([1, -2, 3]), float(rng.randint(1, 9)), at - DAY / 10],
        )
        con.close()

    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": d} for d in [*devices, "never"]]

    def fs_() -> FeatureStore:
        return FeatureStore(tmp_path / "defs", warehouse=f"duckdb:///{db}", online=url)

    at = T0
    add(at)
    with fs_() as reader:
        with fs_() as writer:
            writer.run(at=at, full=True)
        for step in range(8):
            with fs_() as fresh:
                assert by_ways(reader, keys, with_as_of=True) == by_ways(
                    fresh, keys, with_as_of=True
                )
                assert by_ways(reader, keys) == by_ways(fresh, keys), step
            at += DAY / 4
            add(at)
            with fs_() as writer:
                if step % 2:
                    view = rng.choice(["spend", "paid", "device_owner", "user_account"])
                    writer.run(at=at, views=[view], full=True)
                    writer.run(at=at)
                else:
                    writer.run(at=at)
        with fs_() as fresh:
            assert by_ways(reader, keys, with_as_of=True) == by_ways(fresh, keys, with_as_of=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_read_only_replica_serves(project, tmp_path, expected):
    """The script and MULTI/EXEC run on a read-only replica (the script writes nothing; it is
    loaded there when the replica does not know it); a damaged link found there is logged, its
    queueing for repair refused by the replica without failing the lookup."""
    procs = []
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            cmd = [redis_binary(), "--port", str(port), "--save", "", "--dir", str(tmp_path)]
            if i:
                cmd += ["--replicaof", "127.0.0.1", str(ports[0])]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        primary, replica = (f"redis://127.0.0.1:{p}/0" for p in ports)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(replica).ping()
                redis.Redis.from_url(primary).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        keys = [{"device_id": d} for d in DEVICES]
        user_keys = [{"user_id": u} for u in [*USERS, "nobody", None]]
        with store(project, primary) as fs:
            fs.run(at=T0)
        source = redis.Redis.from_url(primary)
        source.wait(1, 5000)
        with store(project, replica) as fs:
            assert (
                fs.online_features("by_device", keys, with_status=True) == expected["script-first"]
            )
            assert [
                {k: v for k, v in r.items() if not k.startswith("_as_of")}
                for r in fs.online_features("by_user", user_keys, with_status=True, with_as_of=True)
            ] == expected["plain-first"]
            misdirect_link(source, "device_owner", ["d0"], ["plain"])
            source.wait(1, 5000)
            row = fs.online_features("by_device", keys[:1], with_status=True)[0]
            assert row["user_id"] is None and row["__status"]["device_owner"] == "corrupt"
            assert fs.online().corrupt_reads == 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
