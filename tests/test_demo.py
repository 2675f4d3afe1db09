"""The seeded example data: shape, determinism, and the awkward rows it promises."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from fsdsl import demo
from fsdsl.check import load_repository

DEFINITIONS = Path(__file__).resolve().parents[1] / "definitions"
SQL_TYPES = {
    "string": "VARCHAR",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}
SMALL = dict(users=300, orders=6000, page_views=8000, labels=1500)
DEVICES = SMALL["users"] * 3 // 2  # the default: ~1.5 devices per user
TABLES = ("orders", "web.page_views", "device_links", "labels", "device_labels")


def _checksum(path: Path, table: str) -> tuple[int, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), chr(10) "
            f"ORDER BY CAST(t AS VARCHAR))) FROM {table} AS t"
        ).fetchone()


def _checksums(path: Path) -> dict[str, tuple[int, str]]:
    return {t: _checksum(path, t) for t in TABLES}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "warehouse.duckdb"
    counts = demo.generate(path, **SMALL)
    links = counts.pop("device_links")
    assert counts == {"orders": 6000, "web.page_views": 8000, "labels": 1500, "device_labels": 1500}
    # one row per device linked, and now and then another: a re-link, an unlink, a sign-in
    assert DEVICES < links < 3 * DEVICES
    return path


@pytest.fixture
def con(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as c:
        yield c


def _one(con, sql: str):
    return con.execute(sql).fetchone()[0]


# ---- shape --------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["orders", "page_views", "device_links"])
def test_columns_match_the_source_declarations(con, source):
    repo, diags = load_repository(DEFINITIONS)
    assert repo is not None, diags
    src = repo.sources[source]
    table = ".".join(src.table)
    rows = con.execute(f"DESCRIBE {table}").fetchall()
    actual = [(name, typ) for name, typ, *_ in rows]
    expected = [(name, SQL_TYPES[str(t)]) for name, t in src.columns.items()]
    assert actual == expected


def test_labels_shape(con):
    rows = con.execute("DESCRIBE labels").fetchall()
    assert [(n, t) for n, t, *_ in rows] == [
        ("user_id", "VARCHAR"),
        ("event_timestamp", "TIMESTAMP"),
        ("churned", "BOOLEAN"),
    ]
    assert (
        _one(
            con,
            "SELECT count(*) FROM labels WHERE user_id IS NULL "
            "OR event_timestamp IS NULL OR churned IS NULL",
        )
        == 0
    )
    assert set(r[0] for r in con.execute("SELECT DISTINCT churned FROM labels").fetchall()) == {
        True,
        False,
    }


def test_ids_and_time_range(con):
    assert (
        _one(con, "SELECT count(*) FROM orders WHERE NOT regexp_full_match(user_id, 'u[0-9]{6}')")
        == 0
    )
    assert (
        _one(
            con,
            "SELECT count(*) FROM web.page_views WHERE NOT regexp_full_match("
            "visitor_id, 'u[0-9]{6}')",
        )
        == 0
    )
    assert _one(con, "SELECT count(DISTINCT order_id) FROM orders") == SMALL["orders"]
    assert _one(con, "SELECT count(DISTINCT view_id) FROM web.page_views") == SMALL["page_views"]
    lo, hi = con.execute("SELECT min(event_timestamp), max(event_timestamp) FROM orders").fetchone()
    assert datetime(2024, 1, 1) <= lo and hi < datetime(2024, 1, 1) + timedelta(days=180)
    lo, hi = con.execute("SELECT min(viewed_at), max(viewed_at) FROM web.page_views").fetchone()
    assert datetime(2024, 1, 1) <= lo and hi < datetime(2024, 1, 1) + timedelta(days=180)


# ---- the awkward rows ---------------------------------------------------------------------------
def test_orders_have_nulls_ties_and_late_rows(con):
    n = SMALL["orders"]
    nulls = _one(con, "SELECT count(*) FROM orders WHERE amount IS NULL")
    assert 0.01 * n <= nulls <= 0.035 * n
    # Never ingested before the event; usually within minutes, ~1% hours to days later.
    assert _one(con, "SELECT count(*) FROM orders WHERE created_at <= event_timestamp") == 0
    late = _one(
        con, "SELECT count(*) FROM orders WHERE created_at >= event_timestamp + INTERVAL 1 HOUR"
    )
    assert 0.004 * n <= late <= 0.02 * n
    assert _one(con, "SELECT max(created_at - event_timestamp) FROM orders") > timedelta(days=1)
    assert (
        _one(
            con,
            "SELECT count(*) FROM orders WHERE created_at < event_timestamp + INTERVAL 20 MINUTE",
        )
        >= 0.98 * n
    )
    # Two orders of one user at the very same microsecond.
    ties = _one(
        con,
        "SELECT count(*) FROM (SELECT user_id, event_timestamp FROM orders "
        "GROUP BY ALL HAVING count(*) > 1)",
    )
    assert ties >= 20
    statuses = dict(con.execute("SELECT status, count(*) FROM orders GROUP BY ALL").fetchall())
    assert set(statuses) == {"completed", "cancelled", "refunded"}
    assert statuses["completed"] > 0.8 * n
    # Microsecond timestamps, not rounded to seconds or milliseconds.
    assert (
        _one(con, "SELECT count(*) FROM orders WHERE microsecond(event_timestamp) % 1000 != 0")
        > 0.9 * n
    )


def test_activity_is_skewed_and_some_users_never_order(con):
    users = _one(con, "SELECT count(DISTINCT user_id) FROM orders")
    assert users < SMALL["users"]
    top, median = con.execute(
        "SELECT max(n), median(n) FROM (SELECT count(*) n FROM orders GROUP BY user_id)"
    ).fetchone()
    assert top > 5 * median


def test_page_views_have_nulls(con):
    n = SMALL["page_views"]
    assert 0 < _one(con, "SELECT count(*) FROM web.page_views WHERE category IS NULL") < 0.05 * n
    assert (
        0 < _one(con, "SELECT count(*) FROM web.page_views WHERE dwell_seconds IS NULL") < 0.05 * n
    )
    assert _one(con, "SELECT count(*) FROM web.page_views WHERE dwell_seconds < 2") > 0
    assert _one(con, "SELECT count(DISTINCT is_mobile) FROM web.page_views") == 2


def test_labels_include_unseen_users_and_order_moments(con):
    unseen = _one(
        con, "SELECT count(*) FROM labels WHERE user_id NOT IN (SELECT user_id FROM orders)"
    )
    assert unseen > 0
    assert (
        _one(
            con,
            "SELECT count(*) FROM labels l JOIN (SELECT DISTINCT user_id, "
            "event_timestamp FROM orders) o USING (user_id, event_timestamp)",
        )
        > 0
    )
    # The label is what happened after T: no completed order in (T, T + 30 days].
    wrong = _one(
        con,
        """
        SELECT count(*) FROM labels l
        WHERE churned <> NOT EXISTS (
            SELECT 1 FROM orders o WHERE o.user_id = l.user_id AND o.status = 'completed'
              AND o.event_timestamp > l.event_timestamp
              AND o.event_timestamp <= l.event_timestamp + INTERVAL 30 DAY)""",
    )
    assert wrong == 0


def test_device_links_relink_unlink_and_arrive_late(con):
    """The ID graph (definitions/identity.feat): every device linked at some time, to its owner
    first; some re-linked to another user, some unlinked (null user), ties, late rows."""
    n = _one(con, "SELECT count(*) FROM device_links")
    assert _one(con, "SELECT count(DISTINCT device_id) FROM device_links") == DEVICES
    assert (
        _one(
            con,
            "SELECT count(*) FROM device_links WHERE NOT regexp_full_match(device_id, 'd[0-9]{6}')",
        )
        == 0
    )
    assert (
        _one(
            con,
            "SELECT count(*) FROM device_links WHERE NOT regexp_full_match(user_id, 'u[0-9]{6}')",
        )
        == 0
    )
    # each device's first row links it (a device is linked before it can be unlinked)
    first_unlinked = _one(
        con,
        "SELECT count(*) FROM (SELECT device_id, "
        "arg_min(user_id IS NULL, (linked_at, user_id IS NULL)) u "
        "FROM device_links GROUP BY device_id) WHERE u",
    )
    assert first_unlinked == 0
    per_user = _one(
        con,
        "SELECT count(DISTINCT device_id) / count(DISTINCT user_id) FROM "
        "(SELECT device_id, arg_min(user_id, linked_at) user_id FROM device_links GROUP BY ALL)",
    )
    assert 1.2 < per_user < 2.0
    relinked = _one(
        con,
        "SELECT count(*) FROM (SELECT device_id FROM device_links GROUP BY ALL "
        "HAVING count(DISTINCT user_id) > 1)",
    )
    assert 0.1 * DEVICES < relinked < 0.6 * DEVICES
    unlinks = _one(con, "SELECT count(*) FROM device_links WHERE user_id IS NULL")
    assert 0.05 * n < unlinks < 0.4 * n
    # the latest row unlinks (ties: the unlink wins, as for last())
    unlinked_now = _one(
        con,
        "SELECT count(*) FROM (SELECT device_id, arg_max(user_id IS NULL, "
        "(linked_at, ingested_at, user_id IS NULL)) u FROM device_links GROUP BY ALL) WHERE u",
    )
    assert unlinked_now > 0.03 * DEVICES
    ties = _one(
        con,
        "SELECT count(*) FROM (SELECT device_id, linked_at FROM device_links "
        "GROUP BY ALL HAVING count(*) > 1)",
    )
    assert ties > 0
    assert _one(con, "SELECT count(*) FROM device_links WHERE ingested_at <= linked_at") == 0
    late = _one(
        con, "SELECT count(*) FROM device_links WHERE ingested_at >= linked_at + INTERVAL 1 HOUR"
    )
    assert 0 < late <= 0.03 * n
    lo, hi = con.execute("SELECT min(linked_at), max(linked_at) FROM device_links").fetchone()
    assert datetime(2024, 1, 1) <= lo and hi < datetime(2024, 1, 1) + timedelta(days=180)


def test_device_labels_include_never_linked_devices_and_link_moments(con):
    rows = con.execute("DESCRIBE device_labels").fetchall()
    assert [(n, t) for n, t, *_ in rows] == [
        ("device_id", "VARCHAR"),
        ("event_timestamp", "TIMESTAMP"),
    ]
    never = _one(
        con,
        "SELECT count(*) FROM device_labels "
        "WHERE device_id NOT IN (SELECT device_id FROM device_links)",
    )
    assert 0 < never < 0.1 * SMALL["labels"]
    # a label exactly at a device's first link: that link is not visible yet (T is exclusive)
    at_link = _one(
        con,
        "SELECT count(*) FROM device_labels l JOIN (SELECT device_id, min(linked_at) t "
        "FROM device_links GROUP BY ALL) f "
        "ON f.device_id = l.device_id AND f.t = l.event_timestamp",
    )
    assert at_link > 0
    assert (
        _one(
            con,
            "SELECT count(*) FROM device_labels WHERE device_id IS NULL OR event_timestamp IS NULL",
        )
        == 0
    )


# ---- determinism --------------------------------------------------------------------------------
def test_same_seed_same_tables(warehouse, tmp_path):
    again = tmp_path / "again.duckdb"
    demo.generate(again, **SMALL)
    assert _checksums(again) == _checksums(warehouse)


def test_other_seed_other_tables(warehouse, tmp_path):
    other = tmp_path / "other.duckdb"
    demo.generate(other, **SMALL, seed=8)
    a, b = _checksums(other), _checksums(warehouse)
    assert all(a[t] != b[t] for t in TABLES)


def test_replaces_existing_tables(warehouse, tmp_path):
    path = tmp_path / "w.duckdb"
    demo.generate(path, users=50, orders=100, page_views=100, labels=10)
    demo.generate(path, **SMALL)
    assert _checksums(path) == _checksums(warehouse)


def test_chunked_is_the_same_as_unchunked(tmp_path, monkeypatch):
    # Small blocks, so chunk edges fall inside blocks and blocks inside chunks.
    monkeypatch.setattr(demo, "BLOCK", 1024)
    one, many = tmp_path / "one.duckdb", tmp_path / "many.duckdb"
    demo.generate(one, **SMALL, chunk_size=10**9)
    calls = []
    demo.generate(many, **SMALL, chunk_size=777, progress=lambda *a: calls.append(a))
    assert _checksums(one) == _checksums(many)
    stages = (("orders", 6000), ("page_views", 8000), ("labels", 1500), ("device_labels", 1500))
    for stage, total in stages:
        done = [d for s, d, t in calls if s == stage and t == total]
        assert len(done) == -(-total // 777)
        assert done == sorted(done) and done[-1] == total


def test_chunk_size_does_not_change_default_blocks(tmp_path):
    one, many = tmp_path / "one.duckdb", tmp_path / "many.duckdb"
    sizes = dict(users=500, orders=70_000, page_views=1000, labels=100)
    demo.generate(one, **sizes)
    demo.generate(many, **sizes, chunk_size=30_001)
    assert _checksum(one, "orders") == _checksum(many, "orders")


# ---- labels file --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["labels.parquet", "labels.csv"])
def test_labels_file(tmp_path, name):
    path = tmp_path / "out" / name
    demo.generate(
        tmp_path / "w.duckdb", users=100, orders=1000, page_views=100, labels=200, labels_path=path
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        expected = con.execute("SELECT * FROM labels ORDER BY ALL").fetchall()
        reader = "read_parquet" if name.endswith(".parquet") else "read_csv"
        got = con.execute(
            f"SELECT user_id, event_timestamp, churned FROM {reader}('{path}') ORDER BY ALL"
        ).fetchall()
    assert got == expected
    if name.endswith(".parquet"):
        ts = pq.read_schema(path).field("event_timestamp").type
        assert str(ts) == "timestamp[us]"  # naive: no time zone


def test_timezone_aware_start_is_read_as_utc(tmp_path):
    naive, aware = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    sizes = dict(users=20, orders=200, page_views=200, labels=20, days=10)
    demo.generate(naive, **sizes, start=datetime(2024, 1, 1, 2))
    plus_two = timezone(timedelta(hours=2))
    demo.generate(aware, **sizes, start=datetime(2024, 1, 1, 4, tzinfo=plus_two))
    assert _checksums(naive) == _checksums(aware)
    # equal also if `start` were ignored altogether: another instant must give other data
    later = tmp_path / "c.duckdb"
    demo.generate(later, **sizes, start=datetime(2024, 1, 1, 4))
    c, n = _checksums(later), _checksums(naive)
    assert all(c[t] != n[t] for t in TABLES), f"`start` changed nothing: {c}"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "w.duckdb", users=0)
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "w.duckdb", orders=-1)
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "w.duckdb", devices=-1)
