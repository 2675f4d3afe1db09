"""Generate the seeded benchmark data of one scale: users, orders (skewed activity), labels,
and `orders_late` (the orders with a few rows ingested more than a window late, for the
`late_sums` shape of bench/shapes/, in a file of its own: see `late_path`).

python bench/generate.py --scale S
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args()
    ensure(args.scale, args.force)


if __name__ == "__main__":
    main()
