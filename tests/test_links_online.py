"""Links online (issue #12): a device-keyed service is served by resolving each device's user
through the link's view in Redis, then fetching every view for the resolved users — one round
trip, the lookup script resolving in Redis, whatever the number of views (checked in
tests/test_lookup_script.py) — and a pushed link row re-links (or unlinks) a device at once,
through the same refresh path as any event (issue #11's push)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import redis
from redis_servers import flush

from fsdsl import FeatureStore

T0 = dt.datetime(2024, 5, 1)

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

features spend {
  entity user
  from orders
  spend_7d = sum(amount) over 7d
}

features counts {
  entity user
  from orders
  orders_7d = count(*) over 7d
}

features recent {
  entity user
  from orders
  last_amount = last(amount)
}

link device_owner {
  from device_links
  device -> user
  ttl 30d
}

service by_device {
  key device
  features spend.spend_7d, counts.orders_7d, recent.last_amount
}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("links_online")
    (root / "defs").mkdir()
    (root / "defs" / "repo.feat").write_text(DEFS)
    (root / ".fsc").mkdir()
    con = duckdb.connect(str(root / ".fsc" / "warehouse.duckdb"))
    con.execute("CREATE TABLE orders (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)")
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    day = dt.timedelta(days=1)
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        [("ua", 10.0, T0 - 2 * day), ("ua", 5.0, T0 - day), ("ub", 7.0, T0 - 3 * day)],
    )
    con.executemany(
        "INSERT INTO device_links VALUES (?, ?, ?)",
        [
            ("d1", "ua", T0 - 10 * day),
            ("d2", "ub", T0 - 5 * day),
            ("d3", "ua", T0 - 9 * day),
            ("d3", None, T0 - 4 * day),  # unlinked since
            ("d4", "ub", T0 - 40 * day),  # older than the link's ttl
        ],
    )
    con.close()
    return root


def store(project: Path, url: str) -> FeatureStore:
    return FeatureStore(
        project / "defs", warehouse=f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}", online=url
    )


def values(rows: list[dict]) -> dict:
    return {
        r["device_id"]: (r["user_id"], r["spend_7d"], r["orders_7d"], r["last_amount"])
        for r in rows
    }


def test_devices_resolve_in_one_round_trip_and_pushes_relink(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)

    def calls() -> dict[str, int]:
        stats = client.info("commandstats")
        return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "exec")}

    with store(project, url) as fs:
        fs.run(at=T0)
        keys = [{"device_id": d} for d in ("d1", "d2", "d3", "d4", "never")]
        fs.online_features("by_device", keys, with_as_of=True)  # definitions read and cached
        before = calls()
        rows = fs.online_features("by_device", keys, with_as_of=True)
        # one script: the link's hashes, the keys they name and all three views' hashes
        after = calls()
        assert (after["evalsha"] - before["evalsha"], after["exec"] - before["exec"]) == (1, 0)
        assert values(rows) == {
            "d1": ("ua", 15.0, 2, 5.0),
            "d2": ("ub", 7.0, 1, 7.0),
            "d3": (None, None, 0, None),  # unlinked: an unseen user's values
            "d4": (None, None, 0, None),  # its link is older than the ttl
            "never": (None, None, 0, None),
        }
        assert rows[0]["_as_of_views"].keys() == {"device_owner", "spend", "counts", "recent"}
        # the training query for the same devices at the served time agrees
        at = rows[0]["_as_of"]
        labels = pa.table(
            {"device_id": [k["device_id"] for k in keys], "event_timestamp": [at] * 5}
        )
        trained = fs.training_set(labels, "by_device").to_pylist()
        assert values(trained) == values(rows)
        # keys as a table: the same rows, built by column (statuses and as-of times included)
        full = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
        table = fs.online_features(
            "by_device",
            pa.table({"device_id": [k["device_id"] for k in keys]}),
            with_as_of=True,
            with_status=True,
        )
        assert table.to_pylist() == full
        assert full[2]["__status"] == {
            "device_owner": "ok",
            "spend": "missing",
            "counts": "missing",
            "recent": "missing",
        }

        # a push re-links d2 to ua and unlinks d1: served at once, by the push's refresh
        now = rows[0]["_as_of"] + dt.timedelta(minutes=1)
        result = fs.push(
            "device_links",
            [
                {"device_id": "d2", "user_id": "ua", "linked_at": now},
                {"device_id": "d1", "user_id": None, "linked_at": now},
            ],
            at=now + dt.timedelta(seconds=1),
        )
        assert result.to_dict()["rows"] == 2
        rows = fs.online_features("by_device", keys[:2], with_as_of=True)
        assert values(rows) == {"d1": (None, None, 0, None), "d2": ("ua", 15.0, 2, 5.0)}


# ---- a target of two key columns: one row per tie ------------------------------------------------
TWO_KEYS = """
entity device {
  key device_id: string
}

entity user_category {
  key user_id: string, category: string
}

source device_interests {
  table "device_interests"
  timestamp seen_at
  columns {
    device_id: string
    uid: string
    cat: string
    seen_at: timestamp
  }
}

source interest_views {
  table "interest_views"
  timestamp viewed_at
  columns {
    user_id: string
    category: string
    viewed_at: timestamp
  }
}

features interest {
  entity user_category
  from interest_views
  views = count(*)
}

link device_interest {
  from device_interests
  device -> user_category by uid, cat
}

service by_interest {
  key device
  features interest.views
}
"""
# each pair its own count of views, so that the feature tells which pair was resolved
PAIR_VIEWS = {("u2", "a"): 1, ("u2", "b"): 2, ("u1", "b"): 3, ("u1", "a"): 4, ("u1", "z"): 5}


def test_a_tie_of_two_key_columns_is_served_from_one_row(tmp_path, redis_urls):
    """Tied link rows of a two-key target, after a full refresh, an incremental one and a push:
    each device is served the pair of the one row `last()` picks (the greatest, an unlink
    winning), never a pair mixed from two rows, and that pair's features."""
    url = redis_urls["embedded"]
    flush(url)
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "repo.feat").write_text(TWO_KEYS)
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE device_interests "
        "(device_id VARCHAR, uid VARCHAR, cat VARCHAR, seen_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE interest_views (user_id VARCHAR, category VARCHAR, viewed_at TIMESTAMP)"
    )
    hour = dt.timedelta(hours=1)
    views = [(u, c, T0 - 24 * hour) for (u, c), n in PAIR_VIEWS.items() for _ in range(n)]
    con.executemany("INSERT INTO interest_views VALUES (?, ?, ?)", views)
    interests = "INSERT INTO device_interests VALUES (?, ?, ?, ?)"
    con.executemany(
        interests,
        [
            ("d1", "u1", "b", T0 - hour),  # tied with the next: (u2, a), never (u2, b)
            ("d1", "u2", "a", T0 - hour),
            ("d2", "u1", "b", T0 - hour),  # the first column tied too: (u1, b)
            ("d2", "u1", "a", T0 - hour),
            ("d3", "u2", "a", T0 - hour),  # a null key column unlinks and wins its tie
            ("d3", "u1", None, T0 - hour),
        ],
    )
    con.close()

    def served(fs: FeatureStore, devices: list[str]) -> dict:
        rows = fs.online_features("by_interest", [{"device_id": d} for d in devices])
        return {r["device_id"]: (r["user_id"], r["category"], r["views"]) for r in rows}

    def store_() -> FeatureStore:
        return FeatureStore(tmp_path / "defs", warehouse=f"duckdb:///{db}", online=url)

    devices = ["d1", "d2", "d3", "never"]
    with store_() as fs:
        fs.run(at=T0, full=True)
        assert served(fs, devices) == {
            "d1": ("u2", "a", 1),
            "d2": ("u1", "b", 3),
            "d3": (None, None, 0),
            "never": (None, None, 0),
        }
    # new ties land: an incremental run serves one row of each
    con = duckdb.connect(str(db))
    con.executemany(
        interests,
        [
            ("d1", "u1", "z", T0 + hour),  # (u2, b) and (u1, z): (u2, b)
            ("d1", "u2", "b", T0 + hour),
            ("d3", "u1", "a", T0 + hour),  # relinked by a tie of two links: (u1, z)
            ("d3", "u1", "z", T0 + hour),
        ],
    )
    con.close()
    with store_() as fs:
        fs.run(at=T0 + 2 * hour)
        assert served(fs, devices[:3]) == {
            "d1": ("u2", "b", 2),
            "d2": ("u1", "b", 3),
            "d3": ("u1", "z", 5),
        }
        # a pushed tie: the same
        at = T0 + 3 * hour
        fs.push(
            "device_interests",
            [
                {"device_id": "d2", "uid": "u1", "cat": "a", "seen_at": at},
                {"device_id": "d2", "uid": "u2", "cat": "a", "seen_at": at},
            ],
            at=at + dt.timedelta(seconds=1),
        )
        assert served(fs, ["d2"]) == {"d2": ("u2", "a", 1)}
