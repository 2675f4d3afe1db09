"""Seeded example data for the feature repository in `definitions/`.

`generate()` writes five tables into a DuckDB file:

- `orders`          the source `orders` (definitions/orders.feat)
- `web.page_views`  the source `page_views` (definitions/web.feat)
- `device_links`    the source `device_links` (definitions/identity.feat): which user a device
                    belongs to, from when
- `labels`          a training spine: (user_id, event_timestamp, churned)
- `device_labels`   a training spine for a service keyed by device: (device_id, event_timestamp)

The data is meant to exercise the point-in-time rules, not just to fill tables: user activity
is skewed and some users never order, ~2% of amounts are null, most rows are ingested seconds to
minutes after their event time but ~1% arrive hours to days late, some orders of one user share
the exact same timestamp, and a few labels sit exactly on the timestamp of an order. Devices
(~1.5 per user) are linked to their owner at some time in the period, then now and then
re-linked to another user, unlinked (a null `user_id`) or signed in to again, with exact ties
and late rows too; a few device labels name devices never linked, and a few sit exactly on a
device's first link (not visible yet: T is exclusive).

Determinism: the output depends only on the arguments, never on `chunk_size`. Rows are generated
in fixed blocks of `BLOCK` rows, each block from its own `numpy.random.default_rng((seed, table,
block))`, so a chunk of any size is the same slice of the same rows. Everything is vectorised
numpy, turned into Arrow arrays and handed to DuckDB one chunk at a time; memory stays bounded by
the chunk size (plus a few arrays per user), so the same code writes 50M rows.

All timestamps are naive UTC with microsecond precision.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

__all__ = ["BLOCK", "CHURN_HORIZON", "TABLES", "DemoData", "fill", "generate"]

TABLES = ("orders", "web.page_views", "device_links", "labels", "device_labels")
"""The tables `generate()` writes, in the order it writes them."""

BLOCK = 1 << 16
"""Rows per random block. Part of the determinism contract: changing it changes the data."""

CHURN_HORIZON = timedelta(days=30)
"""A label is `churned` when the user places no completed order in (T, T + CHURN_HORIZON]."""

Progress = Callable[[str, int, int], None]

_US = 1_000_000
_DAY_US = 86_400 * _US
_EPOCH = datetime(1970, 1, 1)

# Table ids in the random streams; user-level attributes use 0, device-level ones 5.
_USERS, _ORDERS, _VIEWS, _LABELS, _PRODUCTS = 0, 1, 2, 3, 4
_DEVICES, _LINKS, _DEVICE_LABELS = 5, 6, 7

_STATUSES = ["completed", "cancelled", "refunded"]
_STATUS_P = [0.90, 0.07, 0.03]
_CATEGORIES = [
    "electronics",
    "books",
    "home",
    "garden",
    "toys",
    "fashion",
    "sports",
    "beauty",
    "grocery",
    "automotive",
]
_N_PRODUCTS = 2000
# Relative activity per hour of day (UTC): quiet at night, peaks around lunch and evening.
_HOURLY = np.array(
    [2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 11, 12, 11, 10, 10, 11, 12, 14, 16, 16, 13, 8, 4],
    dtype=float,
)
_SESSION = 8  # page views come in blocks of up to 8 rows of one visitor's session
_SESSION_LEN_P = [0.25, 0.20, 0.15, 0.12, 0.10, 0.08, 0.06, 0.04]

_ORDERS_SQL = """
CREATE OR REPLACE TABLE orders (
    order_id VARCHAR,
    user_id VARCHAR,
    amount DOUBLE,
    status VARCHAR,
    event_timestamp TIMESTAMP,
    created_at TIMESTAMP
)"""
_LINKS_SQL = """
CREATE OR REPLACE TABLE device_links (
    device_id VARCHAR,
    user_id VARCHAR,
    linked_at TIMESTAMP,
    ingested_at TIMESTAMP
)"""
_DEVICE_LABELS_SQL = """
CREATE OR REPLACE TABLE device_labels (
    device_id VARCHAR,
    event_timestamp TIMESTAMP
)"""
_VIEWS_SQL = """
CREATE OR REPLACE TABLE web.page_views (
    view_id VARCHAR,
    visitor_id VARCHAR,
    product_id VARCHAR,
    category VARCHAR,
    dwell_seconds DOUBLE,
    is_mobile BOOLEAN,
    viewed_at TIMESTAMP
)"""
# The labels with their `churned` value, from the spine and the orders (? = CHURN_HORIZON).
_LABELS_SQL = """
CREATE OR REPLACE TABLE labels AS
WITH s AS (
    SELECT sp.i,
           coalesce(o.user_id, sp.user_id) AS user_id,
           coalesce(o.event_timestamp, sp.event_timestamp) AS event_timestamp
    FROM _label_spine sp LEFT JOIN orders o ON o.order_id = sp.order_ref
), active AS (
    SELECT DISTINCT s.i
    FROM s JOIN orders o
      ON o.user_id = s.user_id
     AND o.status = 'completed'
     AND o.event_timestamp > s.event_timestamp
     AND o.event_timestamp <= s.event_timestamp + CAST(? AS INTERVAL)
)
SELECT s.user_id, s.event_timestamp, a.i IS NULL AS churned
FROM s LEFT JOIN active a ON a.i = s.i
ORDER BY s.i"""


def generate(
    warehouse: str | Path,
    *,
    users: int = 2000,
    orders: int = 40000,
    page_views: int = 80000,
    labels: int = 5000,
    seed: int = 7,
    start: datetime = datetime(2024, 1, 1),
    days: int = 180,
    labels_path: Path | str | None = None,
    progress: Progress | None = None,
    chunk_size: int = 1 << 20,
    devices: int | None = None,
) -> dict[str, int]:
    """Create (or replace) `orders`, `web.page_views`, `device_links`, `labels` and
    `device_labels` in the DuckDB file `warehouse`.

    Events fall in [start, start + days). `devices` (default `users * 3 // 2`) devices get link
    rows (one each, plus ~2/3 of a re-link, unlink or sign-in on average); `labels` is the row
    count of each label table. `labels_path`, when given, also receives the (user) labels as
    CSV when its name ends in `.csv`, else as Parquet. `progress(stage, done, total)` is called
    after every chunk written, with stage one of "orders", "page_views", "device_links",
    "labels", "device_labels". Returns the number of rows of each table, by table name.
    """
    if devices is None:
        devices = users * 3 // 2
    sizes = (("orders", orders), ("page_views", page_views), ("labels", labels))
    for name, value in (*sizes, ("devices", devices)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    world = _World(users, seed, _to_naive_utc_us(start), days)
    # our own progress callback reports; DuckDB's bar would write over it
    con = duckdb.connect(str(warehouse))
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS web")
        con.execute(_ORDERS_SQL)
        con.execute(_VIEWS_SQL)
        con.execute(_LINKS_SQL)
        con.execute(_DEVICE_LABELS_SQL)
        _write(con, "orders", "orders", _Orders(world, orders), chunk_size, progress)
        _write(
            con, "web.page_views", "page_views", _PageViews(world, page_views), chunk_size, progress
        )
        owners = _Devices(world, devices)
        _write(con, "device_links", "device_links", _Links(world, owners), chunk_size, progress)
        spine = _Labels(world, labels, orders)
        _write_labels(con, spine, chunk_size, progress)
        device_labels = _DeviceLabels(world, labels, owners, spine.lo, spine.hi)
        _write(con, "device_labels", "device_labels", device_labels, chunk_size, progress)
        if labels_path is not None:
            _export(con, "labels", Path(labels_path))
        return {t: con.table(t).shape[0] for t in TABLES}
    finally:
        con.close()


@dataclass(frozen=True)
class DemoData:
    """What `fill()` wrote: the row count of each table (by name, in `TABLES` order), and where
    (a DuckDB file by its path, any other warehouse by its URL)."""

    counts: dict[str, int]
    warehouse: str


def fill(url: str, settings: dict | None = None, **options) -> DemoData:
    """`generate()` into the warehouse at `url`, any backend: a DuckDB file directly, any other
    warehouse through a scratch DuckDB file whose tables are then copied over (the generator
    writes with DuckDB's bulk inserts, which only DuckDB has). `options` are `generate()`'s."""
    import tempfile

    from fsdsl.backends import connect
    from fsdsl.backends.base import table_expression
    from fsdsl.project import duckdb_path

    if url.startswith("duckdb:"):
        target = Path(duckdb_path(url))
        target.parent.mkdir(parents=True, exist_ok=True)
        return DemoData(generate(target, **options), str(target))
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "demo.duckdb"
        counts = generate(local, **options)
        # read in insertion order (the warehouse backend reads order-insensitively): a
        # labels table keeps the order of the labels file
        source = duckdb.connect(str(local), read_only=True)
        try:
            with connect(url, settings or {}) as wh:
                for table in counts:
                    parts = tuple(table.split("."))
                    everything = exp.select(exp.Star()).from_(table_expression(parts))
                    data = source.sql(everything.sql("duckdb", identify=True)).to_arrow_table()
                    wh.create_table(parts, data)
        finally:
            source.close()
    return DemoData(counts, url)


# ---- the population -----------------------------------------------------------------------------
def _to_naive_utc_us(t: datetime) -> int:
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return (t - _EPOCH) // timedelta(microseconds=1)


class _Sampler:
    """Draws index i with probability weights[i] / sum(weights), by inverse CDF.

    The answer is exactly `searchsorted(cdf, u, side="right")`; a guide table (the first
    candidate for each of n equal slices of [0, 1)) makes it a couple of lookups per draw
    instead of a binary search over millions of users.
    """

    def __init__(self, weights: np.ndarray):
        weights = np.asarray(weights, dtype=float)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        cdf = np.cumsum(weights / weights.sum())
        cdf[-1] = 1.0
        self.cdf, self.n = cdf, len(cdf)
        self.guide = np.searchsorted(cdf, np.arange(self.n) / self.n, side="right")

    def __call__(self, u: np.ndarray) -> np.ndarray:
        j = self.guide[np.minimum((u * self.n).astype(np.int64), self.n - 1)]
        todo = np.flatnonzero(self.cdf[j] <= u)
        while todo.size:
            j[todo] += 1
            todo = todo[self.cdf[j[todo]] <= u[todo]]
        return j


class _World:
    """Per-user attributes shared by every table (small: a few arrays of `users` entries)."""

    def __init__(self, users: int, seed: int, start_us: int, days: int):
        self.users, self.seed, self.days = users, seed, days
        self.start_us = start_us
        self.end_us = start_us + days * _DAY_US
        rng = np.random.default_rng((seed, _USERS))
        n = users
        buyer = rng.random(n) >= 0.15  # ~15% of users never order
        rate = rng.lognormal(0.0, 1.3, n)  # orders per active day: heavy-tailed
        # Activity window: half the users are there from the start, ~45% stop before the end.
        begin = np.where(rng.random(n) < 0.5, 0.0, rng.random(n) * 0.8)
        stop = np.where(rng.random(n) < 0.55, 1.0, begin + (1.0 - begin) * rng.random(n))
        stop = np.maximum(stop, np.minimum(begin + 1.0 / days, 1.0))
        self.win_start = start_us + np.floor(begin * days).astype(np.int64) * _DAY_US
        self.win_days = np.maximum(1.0, np.ceil(stop * days) - np.floor(begin * days))
        span = self.win_days / days
        self.pick_orderer = _Sampler(np.where(buyer, rate * span, 0.0))
        browses = buyer | (rng.random(n) < 0.6)
        browse_rate = (0.3 + rate) ** 0.7 * rng.lognormal(0.0, 0.8, n)
        self.pick_browser = _Sampler(np.where(browses, browse_rate * span, 0.0))
        self.p_mobile = rng.beta(2.0, 2.0, n)
        self.pick_hour = _Sampler(_HOURLY)
        prng = np.random.default_rng((seed, _PRODUCTS))
        self.pick_product = _Sampler(1.0 / np.arange(1, _N_PRODUCTS + 1) ** 1.1)
        self.product_category = prng.integers(0, len(_CATEGORIES), _N_PRODUCTS)
        # Labels may name users the orders never saw: ids after the last generated user.
        self.unseen_pool = max(10, users // 20)
        self.id_width = max(6, len(str(users + self.unseen_pool)))

    def event_times(self, rng: np.random.Generator, user: np.ndarray) -> np.ndarray:
        """A time in the user's activity window (microseconds), shaped by hour of day."""
        m = len(user)
        day = np.floor(rng.random(m) * self.win_days[user]).astype(np.int64)
        hour = self.pick_hour(rng.random(m)).astype(np.int64)
        within = rng.integers(0, 3600 * _US, m, dtype=np.int64)
        t = self.win_start[user] + day * _DAY_US + hour * 3600 * _US + within
        return np.clip(t, self.start_us, self.end_us - 1)

    def user_ids(self, index: np.ndarray) -> pa.Array:
        return _ids("u", index + 1, self.id_width)


class _Devices:
    """Per-device attributes (a few arrays of `devices` entries): the owner it is first linked
    to, when, and how many link rows it has; the rows of device d are rows
    [end[d] - rows[d], end[d]) of `device_links`."""

    def __init__(self, world: _World, devices: int):
        rng = np.random.default_rng((world.seed, _DEVICES))
        self.n = devices
        self.owner = rng.integers(0, world.users, devices)  # ~1.5 devices per user on average
        # while the owner is active, most early on (a customer signs in from the devices they
        # have soon after arriving), so that most labels find a device linked
        t = world.event_times(rng, self.owner)
        since = world.win_start[self.owner]
        self.first = since + ((t - since) * rng.random(devices) ** 2).astype(np.int64)
        # the first link, and a geometric number more (mean 2/3): re-links, unlinks, sign-ins
        self.rows = rng.geometric(0.6, devices).astype(np.int64)
        self.end = np.cumsum(self.rows)
        # Device labels may name devices never linked: ids after the last generated device.
        self.never_pool = max(5, devices // 50)
        self.id_width = max(6, len(str(devices + self.never_pool)))

    def ids(self, index: np.ndarray) -> pa.Array:
        return _ids("d", index + 1, self.id_width)


def _ingestion_delay(rng: np.random.Generator, m: int) -> np.ndarray:
    """Microseconds from event to ingestion: 1 s + a few tens of seconds, at most 20 minutes;
    ~1% are late rows ingested 1 hour to 4 days after the event."""
    delay = np.minimum(1.0 + rng.exponential(40.0, m), 1200.0)
    late = rng.random(m) < 0.01
    late_delay = np.exp(rng.uniform(np.log(3600.0), np.log(4 * 86400.0), m))
    delay = np.where(late, late_delay, delay)
    return np.round(delay * _US).astype(np.int64)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.timestamp("us"))


# ---- tables generated in fixed blocks -----------------------------------------------------------
class _Blocked:
    """Rows [0, n) made in blocks of BLOCK rows, each from its own seeded generator."""

    table_id = -1

    def __init__(self, world: _World, n: int):
        self.world, self.n = world, n
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    def make(self, rng: np.random.Generator, first: int, m: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def to_arrow(self, first: int, cols: dict[str, np.ndarray]) -> pa.Table:
        raise NotImplementedError

    def block(self, b: int) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != b:
            first = b * BLOCK
            m = min(BLOCK, self.n - first)
            rng = np.random.default_rng((self.world.seed, self.table_id, b))
            self._cached = (b, self.make(rng, first, m))
        return self._cached[1]

    def rows(self, lo: int, hi: int) -> pa.Table:
        parts = []
        for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
            cols = self.block(b)
            a, z = max(lo, b * BLOCK) - b * BLOCK, min(hi, (b + 1) * BLOCK) - b * BLOCK
            parts.append({k: v[a:z] for k, v in cols.items()})
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self.to_arrow(lo, cols)


class _Orders(_Blocked):
    table_id = _ORDERS

    def make(self, rng, first, m):
        w = self.world
        user = w.pick_orderer(rng.random(m))
        ts = w.event_times(rng, user)
        # Exact ties: an odd row may repeat the user and timestamp of the even row before it
        # (blocks start at even rows, so the pair never straddles a block).
        idx = np.arange(m)
        tie = (idx % 2 == 1) & (rng.random(m) < 0.03)
        user[tie] = user[idx[tie] - 1]
        ts[tie] = ts[idx[tie] - 1]
        status = rng.choice(len(_STATUSES), m, p=_STATUS_P).astype(np.int8)
        amount = np.round(rng.lognormal(3.3, 0.9, m), 2)
        amount_null = rng.random(m) < 0.02
        created = ts + _ingestion_delay(rng, m)
        return {
            "user": user,
            "ts": ts,
            "status": status,
            "amount": amount,
            "amount_null": amount_null,
            "created": created,
        }

    def to_arrow(self, first, c):
        n = len(c["ts"])
        return pa.table(
            {
                "order_id": _ids("o", np.arange(first + 1, first + n + 1), 9),
                "user_id": self.world.user_ids(c["user"]),
                "amount": pa.array(c["amount"], pa.float64(), mask=c["amount_null"]),
                "status": pa.array(_STATUSES).take(pa.array(c["status"])),
                "event_timestamp": _timestamps(c["ts"]),
                "created_at": _timestamps(c["created"]),
            }
        )


class _PageViews(_Blocked):
    table_id = _VIEWS

    def make(self, rng, first, m):
        w = self.world
        sessions = -(-m // _SESSION)
        s_user = w.pick_browser(rng.random(sessions))
        s_start = w.event_times(rng, s_user)
        s_len = rng.choice(np.arange(1, _SESSION + 1), sessions, p=_SESSION_LEN_P)
        gaps = np.round(rng.exponential(45.0, (sessions, _SESSION)) * _US).astype(np.int64)
        gaps[:, 0] = 0
        offset = np.cumsum(gaps, axis=1).reshape(-1)[:m]
        idx = np.arange(m)
        s, j = idx // _SESSION, idx % _SESSION
        # Rows past a session's length are single views of some other visitor.
        lone_user = w.pick_browser(rng.random(m))
        lone_ts = w.event_times(rng, lone_user)
        in_session = j < s_len[s]
        user = np.where(in_session, s_user[s], lone_user)
        ts = np.where(in_session, s_start[s] + offset, lone_ts)
        ts = np.minimum(ts, w.end_us - 1)
        product = w.pick_product(rng.random(m))
        category = w.product_category[product].astype(np.int16)
        # A few categories written in another case (for `lower(category)`), a few missing.
        category = np.where(rng.random(m) < 0.01, category + len(_CATEGORIES), category)
        category_null = rng.random(m) < 0.015
        dwell = np.round(rng.lognormal(np.log(15.0), 1.1, m), 1)
        dwell_null = rng.random(m) < 0.02
        mobile = rng.random(m) < w.p_mobile[user]
        return {
            "user": user,
            "ts": ts,
            "product": product,
            "category": category,
            "category_null": category_null,
            "dwell": dwell,
            "dwell_null": dwell_null,
            "mobile": mobile,
        }

    def to_arrow(self, first, c):
        n = len(c["ts"])
        names = pa.array(_CATEGORIES + [x.capitalize() for x in _CATEGORIES])
        category = names.take(pa.array(c["category"], pa.int16(), mask=c["category_null"]))
        return pa.table(
            {
                "view_id": _ids("v", np.arange(first + 1, first + n + 1), 10),
                "visitor_id": self.world.user_ids(c["user"]),
                "product_id": _ids("p", c["product"] + 1, 5),
                "category": category,
                "dwell_seconds": pa.array(c["dwell"], pa.float64(), mask=c["dwell_null"]),
                "is_mobile": pa.array(c["mobile"], pa.bool_()),
                "viewed_at": _timestamps(c["ts"]),
            }
        )


class _Links(_Blocked):
    """`device_links`: each device's rows in turn, the first linking it to its owner."""

    table_id = _LINKS

    def __init__(self, world: _World, devices: _Devices):
        super().__init__(world, int(devices.end[-1]) if devices.n else 0)
        self.devices = devices

    def make(self, rng, first, m):
        w, dv = self.world, self.devices
        row = np.arange(first, first + m)
        device = np.searchsorted(dv.end, row, side="right")
        later = row > dv.end[device] - dv.rows[device]  # not the device's first row
        start = dv.first[device]
        # the other rows fall anywhere after the first link; the latest visible one decides
        ts = np.where(later, start + (rng.random(m) * (w.end_us - start)).astype(np.int64), start)
        kind = rng.random(m)
        user = np.where(later & (kind < 0.45), rng.integers(0, w.users, m), dv.owner[device])
        unlinked = later & (kind >= 0.45) & (kind < 0.75)  # the rest: the owner signs in again
        # Exact ties: an odd row may repeat the time of the even row before it, of the same
        # device (`later`); blocks start at even rows, so the pair never straddles a block.
        idx = np.arange(m)
        tie = (idx % 2 == 1) & later & (rng.random(m) < 0.05)
        ts[tie] = ts[idx[tie] - 1]
        return {
            "device": device,
            "user": user,
            "unlinked": unlinked,
            "ts": ts,
            "created": ts + _ingestion_delay(rng, m),
        }

    def to_arrow(self, first, c):
        no_user = pa.scalar(None, pa.string())
        return pa.table(
            {
                "device_id": self.devices.ids(c["device"]),
                "user_id": pc.if_else(
                    pa.array(c["unlinked"]), no_user, self.world.user_ids(c["user"])
                ),
                "linked_at": _timestamps(c["ts"]),
                "ingested_at": _timestamps(c["created"]),
            }
        )


class _DeviceLabels(_Blocked):
    """`device_labels`: devices at times in [lo, hi), ~4% never linked, ~3% at the very time
    of the device's first link."""

    table_id = _DEVICE_LABELS

    def __init__(self, world: _World, n: int, devices: _Devices, lo: int, hi: int):
        super().__init__(world, n)
        self.devices, self.lo, self.hi = devices, lo, hi

    def make(self, rng, first, m):
        dv = self.devices
        kind = rng.random(m)
        device = rng.integers(0, max(dv.n, 1), m)
        never = dv.n + rng.integers(0, dv.never_pool, m)
        device = np.where((kind < 0.04) | (dv.n == 0), never, device)
        ts = rng.integers(self.lo, self.hi, m, dtype=np.int64)
        if dv.n:
            at_link = (kind >= 0.04) & (kind < 0.07)
            ts = np.where(at_link, dv.first[np.minimum(device, dv.n - 1)], ts)
        return {"device": device, "ts": ts}

    def to_arrow(self, first, c):
        return pa.table(
            {"device_id": self.devices.ids(c["device"]), "event_timestamp": _timestamps(c["ts"])}
        )


class _Labels(_Blocked):
    """The label spine before its `churned` value is computed from the orders."""

    table_id = _LABELS

    def __init__(self, world: _World, n: int, orders: int):
        super().__init__(world, n)
        self.orders = orders
        horizon = CHURN_HORIZON // timedelta(microseconds=1)
        period = world.end_us - world.start_us
        if period > 2 * horizon:  # leave room to observe the horizon after T
            self.lo, self.hi = world.start_us + period // 10, world.end_us - horizon
        else:
            self.lo, self.hi = world.start_us, world.end_us

    def make(self, rng, first, m):
        w = self.world
        kind = rng.random(m)
        user = rng.integers(0, w.users, m)  # any user, including those who never order
        unseen = w.users + rng.integers(0, w.unseen_pool, m)
        user = np.where(kind < 0.04, unseen, user)
        ts = rng.integers(self.lo, self.hi, m, dtype=np.int64)
        order_ref = rng.integers(0, max(self.orders, 1), m)
        at_order = (kind >= 0.04) & (kind < 0.07) & (self.orders > 0)
        return {"user": user, "ts": ts, "order_ref": np.where(at_order, order_ref, -1)}

    def to_arrow(self, first, c):
        n = len(c["ts"])
        ref = c["order_ref"]
        return pa.table(
            {
                "i": pa.array(np.arange(first, first + n), pa.int64()),
                "user_id": self.world.user_ids(c["user"]),
                "event_timestamp": _timestamps(c["ts"]),
                "order_ref": pc.if_else(
                    pa.array(ref >= 0), _ids("o", ref + 1, 9), pa.scalar(None, pa.string())
                ),
            }
        )


# ---- writing ------------------------------------------------------------------------------------
def _write(con, table: str, stage: str, rows: _Blocked, chunk_size: int, progress: Progress | None):
    """Insert rows [0, n) chunk by chunk; the next chunk is generated while DuckDB inserts."""
    bounds = [(lo, min(rows.n, lo + chunk_size)) for lo in range(0, rows.n, chunk_size)]
    if not bounds:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: blocks are made in order
        pending = pool.submit(rows.rows, *bounds[0])
        for i, (_, hi) in enumerate(bounds):
            chunk = pending.result()
            if i + 1 < len(bounds):
                pending = pool.submit(rows.rows, *bounds[i + 1])
            con.from_arrow(chunk).insert_into(table)
            del chunk
            if progress is not None:
                progress(stage, hi, rows.n)


def _write_labels(con, spine: _Labels, chunk_size: int, progress: Progress | None):
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _label_spine (i BIGINT, user_id VARCHAR, "
        "event_timestamp TIMESTAMP, order_ref VARCHAR)"
    )
    _write(con, "_label_spine", "labels", spine, chunk_size, progress)
    # A few labels sit exactly on one of the user's orders (the order itself is not visible to
    # the label: T is exclusive). churned = no completed order in (T, T + horizon].
    con.execute(_LABELS_SQL, [CHURN_HORIZON])
    con.execute("DROP TABLE _label_spine")


def _export(con, table: str, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".csv"):
        con.table(table).write_csv(str(path), header=True)
    else:
        con.table(table).write_parquet(str(path))
