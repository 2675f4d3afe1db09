"""Training sets keep the labels' order however many rows they have.

DuckDB 2.0.1 exports a DB-API result to Arrow in parallel and, with `preserve_insertion_order`
off (as fsc opens every warehouse), ignores the query's ORDER BY past the first 2,048 rows: a
training set of more labels got each label's key columns back in order and its features from
other rows. The small label sets of the other tests never reach 2,048 rows; these do, with every
row's values checked against a count done here, by device (through a link) and by user.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlglot import exp

from fsdsl import FeatureStore
from fsdsl.backends.base import connect
from fsdsl.backends.duckdb import DuckDBWarehouse

T0 = dt.datetime(2024, 5, 1)
USERS = [f"u{i:03d}" for i in range(300)]
DEVICES = [f"d{i:03d}" for i in range(300)]
LABELS = 12_000

DEFS = """
entity user {
  key user_id: string
}

entity device {
  key device_id: string
}

source orders {
  table "orders"
  timestamp ts
  columns {
    user_id: string
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

features activity {
  entity user
  from orders
  orders_30d = count(*) over 30d
}

link device_owner {
  from device_links
  device -> user
}

service by_user {
  features activity.orders_30d
}

service by_device {
  key device
  features activity.orders_30d
}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Orders at random times in the 90 days before T0, each device linked to one user."""
    rnd = random.Random(11)
    root = tmp_path_factory.mktemp("training_order")
    (root / "defs").mkdir()
    (root / "defs" / "repo.feat").write_text(DEFS)
    times: dict[str, list[dt.datetime]] = {u: [] for u in USERS}
    for _ in range(20_000):
        u = rnd.choice(USERS)
        times[u].append(T0 - dt.timedelta(seconds=rnd.randrange(90 * 86400)))
    for ts in times.values():
        ts.sort()
    owner = {d: USERS[(i * 7) % len(USERS)] for i, d in enumerate(DEVICES)}
    con = duckdb.connect(str(root / "wh.duckdb"))
    rows = [(u, t) for u, ts in times.items() for t in ts]
    orders = pa.table({"user_id": [u for u, _ in rows], "ts": [t for _, t in rows]})
    links = pa.table(
        {
            "device_id": list(owner),
            "user_id": list(owner.values()),
            "linked_at": [T0 - dt.timedelta(days=200)] * len(owner),
        }
    )
    con.register("o", orders)
    con.register("k", links)
    con.execute("CREATE TABLE orders AS SELECT * FROM o")
    con.execute("CREATE TABLE device_links AS SELECT * FROM k")
    con.close()
    return root, times, owner


def orders_30d(times: list[dt.datetime], at: dt.datetime) -> int:
    """Orders in [at - 30d, at), counted here."""
    return bisect.bisect_left(times, at) - bisect.bisect_left(times, at - dt.timedelta(days=30))


def label_times(n: int) -> list[dt.datetime]:
    rnd = random.Random(5)
    return [T0 - dt.timedelta(seconds=rnd.randrange(60 * 86400)) for _ in range(n)]


@pytest.mark.parametrize("engine_order", ["kept", "lost"])
@pytest.mark.parametrize("service", ["by_user", "by_device"])
def test_every_label_gets_its_own_values_past_2048_rows(
    project, service, engine_order, monkeypatch
):
    """`lost`: the ordered query run by DuckDB's DB-API export, which loses the order (as
    every query did before the fix): the rows are put back in label order by their numbers."""
    root, times, owner = project
    if engine_order == "lost":
        monkeypatch.setattr(DuckDBWarehouse, "execute_ordered", DuckDBWarehouse.execute_sql)
    rnd = random.Random(3)
    at = label_times(LABELS)
    if service == "by_user":
        keys = [rnd.choice(USERS) for _ in range(LABELS)]
        users = keys
        labels = pa.table({"user_id": keys, "event_timestamp": at, "i": range(LABELS)})
    else:
        keys = [rnd.choice(DEVICES) for _ in range(LABELS)]
        users = [owner[d] for d in keys]
        labels = pa.table({"device_id": keys, "event_timestamp": at, "i": range(LABELS)})
    with FeatureStore(root / "defs", warehouse=f"duckdb:///{root / 'wh.duckdb'}") as fs:
        got = fs.training_set(labels, service)
    assert got["i"].to_pylist() == list(range(LABELS))
    if service == "by_device":
        assert got["user_id"].to_pylist() == users
    want = [orders_30d(times[u], t) for u, t in zip(users, at, strict=True)]
    assert got["orders_30d"].to_pylist() == want


def test_an_ordered_query_keeps_its_order_on_duckdb(project):
    """The warehouse's own `query`: an ORDER BY over many rows comes back in that order."""
    root, _, _ = project
    wh = connect(f"duckdb:///{root / 'wh.duckdb'}")
    try:
        numbers = pa.table({"n": list(range(50_000))[::-1]})
        wh.register_arrow("numbers", numbers)
        tree = exp.select("n").from_("numbers").order_by(exp.Ordered(this=exp.column("n")))
        got = wh.query(tree)["n"].to_pylist()
    finally:
        wh.close()
    assert got == list(range(50_000))
