"""Generate the seeded benchmark data of one scale: users, orders (skewed activity), labels,
and `orders_late` (the orders with a few rows ingested more than a window late, for the
`late_sums` shape of bench/shapes/, in a file of its own: see `late_path`); with `--links`, the
entity-resolution data of issue #12 too (`ensure_links`: device links and device labels).

python bench/generate.py --scale S [--links]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa  # noqa: E402
from scales import DATA, SCALES, paths  # noqa: E402

from fsdsl.demo import generate  # noqa: E402

LATE_SHARE = 0.002
"""Share of `orders_late` rows ingested 7 to 60 days after their event: late by more than the
7d window, some by more than 30d. The generator's own late rows arrive within 4 days, so
`orders` alone never exercises the correction for rows late by more than a window."""


def late_path(db: Path) -> Path:
    """`orders_late` lives in a file of its own next to the scale's database, so adding it never
    needs a write lock on a database other runs may be reading."""
    return db.with_name(f"{db.stem}_late.duckdb")


def ensure_late(db: Path, seed: int = 7, force: bool = False) -> Path:
    """Derive `orders_late` from the scale's `orders` (once; `force` rebuilds it).

    Which rows are late, and by how much, is a hash of the order number and the seed, so the
    table depends only on `orders` and the seed."""
    import duckdb

    out = late_path(db)
    if out.exists() and not force:
        return out
    out.unlink(missing_ok=True)
    two32 = 1 << 32
    with duckdb.connect(str(out)) as con:
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        con.execute(f"""
            CREATE TABLE orders_late AS
            WITH o AS (
                SELECT *, CAST(substr(order_id, 2) AS BIGINT) AS n FROM src.orders
            ), h AS (
                SELECT *,
                       ((n * 2654435761 + {seed} * 97) % {two32}) / {two32}::DOUBLE AS u,
                       ((n * 1103515245 + 12345 + {seed}) % {two32}) / {two32}::DOUBLE AS v
                FROM o
            )
            SELECT order_id, user_id, amount, status, event_timestamp,
                   CASE WHEN u < {LATE_SHARE}
                        THEN event_timestamp + to_microseconds(
                            CAST((7 + 53 * v) * 86400e6 AS BIGINT))
                        ELSE created_at END AS created_at
            FROM h
        """)
    return out


DEVICES_PER_USER = 1.5
"""Devices of a scale, per user (150k at M, as issue #12 asks)."""
NEVER_LINKED = 0.02
"""Share of device labels whose device has no link row at all (never seen)."""


def links_path(db: Path) -> Path:
    """The entity-resolution data of a scale (issue #12): a DuckDB file of its own, holding
    copies of the scale's `orders` and `web.page_views` and the generated `device_links`, so
    that fsc reads one warehouse and the scale's own file is never written to."""
    return db.with_name(f"{db.stem}_links.duckdb")


def device_labels_path(db: Path) -> Path:
    """Labels carrying a device: `device_id`, `event_timestamp`, `is_fraud`."""
    return db.with_name(f"{db.stem}_device_labels.parquet")


def resolved_labels_path(db: Path) -> Path:
    """The device labels plus `user_id`, the user each device resolves to at the label's time
    by plain SQL (`RESOLVE_SQL`): the labels of the same training set keyed by user."""
    return db.with_name(f"{db.stem}_device_labels_resolved.parquet")


RESOLVE_SQL = """
SELECT l.*, r.user_id
FROM labels AS l
LEFT JOIN LATERAL (
  SELECT CASE WHEN k.user_id IS NOT NULL AND k.linked_at >= l.event_timestamp - INTERVAL 365 DAY
              THEN k.user_id END AS user_id
  FROM device_links AS k
  WHERE k.device_id = l.device_id
    AND k.linked_at < l.event_timestamp AND k.ingested_at < l.event_timestamp
  ORDER BY k.linked_at DESC, k.ingested_at DESC, k.user_id IS NULL DESC, k.user_id DESC
  LIMIT 1
) AS r ON true
ORDER BY l.__row
"""
"""Issue #12's semantics written out by hand, independently of the compiler: the latest visible
row (event and ingestion time before T; ties as `last()`, an unlink winning), null when it is an
unlink or older than the link's 365d TTL, or when there is none."""


def _device_links(scale: str, seed: int) -> tuple[pa.Table, pa.Table]:
    """Seeded link histories and device labels. Each device is first linked to a random user,
    before the history or during it; then now and then (every 60 days on average) re-linked to
    another user (80%) or unlinked (20%: a null user, until a later re-link). Rows are
    ingested seconds to minutes after `linked_at`, 2% hours to days later. The labels pick
    devices uniformly, 2% of them devices that no link row names."""
    import numpy as np

    users, _, n_labels = SCALES[scale]
    devices = int(users * DEVICES_PER_USER)
    rng = np.random.default_rng((seed, 12))
    day = 86_400 * 10**6
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    end = start + 180 * day
    # 80% of the devices exist before the history (a few so long before that the 365d TTL
    # ends their only link), 20% appear during it
    first = np.where(
        rng.random(devices) < 0.8,
        rng.integers(start - 240 * day, start, devices),
        rng.integers(start, end, devices),
    )
    changes = rng.poisson(1.0, devices)
    dev = np.repeat(np.arange(devices), changes + 1)
    n = len(dev)
    step = rng.exponential(60 * day, n).astype(np.int64)
    is_first = np.ones(n, bool)
    is_first[1:] = dev[1:] != dev[:-1]
    step[is_first] = 0
    offset = np.cumsum(step)
    base = np.maximum.accumulate(np.where(is_first, offset, 0))  # offset at each device's start
    linked = first[dev] + offset - base
    user = rng.integers(0, users, n)
    unlink = ~is_first & (rng.random(n) < 0.2)
    lag = rng.integers(1_000_000, 300_000_000, n)
    late = rng.random(n) < 0.02
    lag[late] = rng.integers(3_600 * 10**6, 3 * day, int(late.sum()))
    keep = linked < end
    width = max(6, len(str(users)))
    links = pa.table(
        {
            "device_id": pa.array([f"d{i + 1:07d}" for i in dev[keep]]),
            "user_id": pa.array([f"u{u + 1:0{width}d}" for u in user[keep]], mask=unlink[keep]),
            "linked_at": pa.array(linked[keep], pa.timestamp("us")),
            "ingested_at": pa.array(linked[keep] + lag[keep], pa.timestamp("us")),
        }
    )
    lrng = np.random.default_rng((seed, 12, 1))
    pick = lrng.integers(0, devices, n_labels)
    never = lrng.random(n_labels) < NEVER_LINKED
    pick[never] = devices + lrng.integers(0, max(1, devices // 50), int(never.sum()))
    labels = pa.table(
        {
            "device_id": pa.array([f"d{i + 1:07d}" for i in pick]),
            "event_timestamp": pa.array(lrng.integers(start, end, n_labels), pa.timestamp("us")),
            "is_fraud": pa.array(lrng.random(n_labels) < 0.05),
        }
    )
    return links, labels


def ensure_links(scale: str, seed: int = 7, force: bool = False) -> tuple[Path, Path, Path]:
    """The warehouse, device labels and resolved labels of the entity-resolution benchmark
    (built once per scale; `force` rebuilds). Returns (warehouse, device labels, resolved)."""
    import duckdb
    import pyarrow.parquet as pq

    db, _ = ensure(scale, seed=seed)
    out, labels_out, resolved_out = links_path(db), device_labels_path(db), resolved_labels_path(db)
    if out.exists() and labels_out.exists() and resolved_out.exists() and not force:
        return out, labels_out, resolved_out
    for f in (out, labels_out, resolved_out):
        f.unlink(missing_ok=True)
    links, labels = _device_links(scale, seed)
    with duckdb.connect(str(out)) as con:
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        con.execute("CREATE TABLE orders AS SELECT * FROM src.orders")
        con.execute("CREATE SCHEMA web")
        con.execute("CREATE TABLE web.page_views AS SELECT * FROM src.web.page_views")
        con.execute("DETACH src")
        con.register("links_arrow", links)
        con.execute("CREATE TABLE device_links AS SELECT * FROM links_arrow")
        con.register(
            "labels",
            labels.append_column("__row", pa.array(range(labels.num_rows), pa.int64())),
        )
        resolved = con.sql(RESOLVE_SQL).to_arrow_table().drop_columns(["__row"])
    pq.write_table(labels, labels_out)
    pq.write_table(resolved, resolved_out)
    return out, labels_out, resolved_out


def ensure(scale: str, force: bool = False, seed: int = 7) -> tuple[Path, Path]:
    db, labels = paths(scale)
    if db.exists() and labels.exists() and not force:
        ensure_late(db, seed)
        return db, labels
    DATA.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    users, events, n_labels = SCALES[scale]
    from rich.progress import Progress

    started = time.perf_counter()
    with Progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{scale}: {stage}", total=total)
            bar.update(tasks[stage], completed=done)

        counts = generate(
            db,
            users=users,
            orders=events,
            page_views=1000,
            labels=n_labels,
            seed=seed,
            labels_path=labels,
            progress=progress,
        )
    ensure_late(db, seed, force=True)
    print(f"generated scale {scale} in {time.perf_counter() - started:.1f}s: {counts}")
    return db, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=list(SCALES), default="S")
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if present (with --links: those)"
    )
    parser.add_argument("--links", action="store_true", help="the device links of issue #12 too")
    args = parser.parse_args()
    ensure(args.scale, args.force and not args.links)
    if args.links:
        ensure_links(args.scale, force=args.force)


if __name__ == "__main__":
    main()
