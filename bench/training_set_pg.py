"""The Postgres side of issue #10: `fsc training-set` on Postgres against hand-written Postgres
baselines of the same shapes (Postgres has no ASOF join).

    python bench/training_set_pg.py --scale S --shape all --repeat 2

The bench starts its own Postgres (the `pgserver` wheel, data under bench/data/pg_<scale>), copies
the generated `orders` into it once, and builds the index orders (user_id, event_timestamp) that
an expert's `LATERAL ... ORDER BY ts DESC LIMIT 1` relies on; fsc runs on the same database,
index included. Each contender runs in its own process; outputs are compared with fsc's cell
by cell, as in bench/training_set.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import ensure  # noqa: E402
from scales import DATA  # noqa: E402
from training_set import BASE, SPECS, fsc_command, measure, mismatches  # noqa: E402

PG_SHAPES = {
    "last_ttl": {"pg_lateral": BASE / "last_ttl_pg_lateral.sql"},
    "windowed_sums": {
        "pg_lateral": BASE / "windowed_sums_pg_lateral.sql",
        "pg_carry": BASE / "windowed_sums_pg_carry.sql",
    },
}


def prepare(db: Path, url: str) -> None:
    """Copy `orders` into Postgres unless it is there, and index it (in a child process, as
    bench/backends.py does, so the bench's own process holds no connection)."""
    code = f"""
import duckdb
from fsdsl.backends import connect
with connect({url!r}, {{}}) as wh:
    if wh.table_columns(("orders",)) is None:
        con = duckdb.connect({str(db)!r}, read_only=True)
        wh.create_table(("orders",), con.sql("SELECT * FROM orders").to_arrow_table())
    raw = wh._raw()
    raw.execute("CREATE INDEX IF NOT EXISTS orders_user_ts ON orders (user_id, event_timestamp)")
    raw.execute("ANALYZE orders")
    raw.commit()
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="S", choices=["XS", "S", "M"])
    p.add_argument("--shape", default="all", choices=[*PG_SHAPES, "all"])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--fsc-src", type=Path, default=None, help="as in bench/training_set.py")
    args = p.parse_args()
    db, labels = ensure(args.scale)
    import pgserver

    pg = pgserver.get_server(DATA / f"pg_{args.scale.lower()}", cleanup_mode="stop")
    url = pg.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    prepare(db, url)
    path = DATA / f"results_training_pg_{args.scale.lower()}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    for shape in PG_SHAPES if args.shape == "all" else [args.shape]:
        baselines = PG_SHAPES[shape]
        contenders = ["fsc", *baselines]
        outputs = {c: DATA / f"{args.scale.lower()}_{shape}_{c}_pg.parquet" for c in contenders}
        runs: dict[str, list[float]] = {c: [] for c in contenders}
        peaks: dict[str, float] = dict.fromkeys(contenders, 0.0)
        for rep in range(args.repeat):
            k = rep % len(contenders)
            for c in contenders[k:] + contenders[:k]:
                if c == "fsc":
                    cmd = [*fsc_command(args.fsc_src), "training-set", str(SPECS), "-s", shape]
                    cmd += ["-l", str(labels)]
                    cmd += ["-o", str(outputs[c]), "-w", url]
                else:
                    cmd = [sys.executable, str(HERE / "baseline_pg.py"), str(baselines[c]), url]
                    cmd += [str(labels), str(outputs[c])]
                r = measure(cmd)
                runs[c].append(r["seconds"])
                peaks[c] = max(peaks[c], r["peak_mib"])
        med = {c: statistics.median(t) for c, t in runs.items()}
        best = min(baselines, key=med.__getitem__)
        n = pq.read_metadata(labels).num_rows
        print(
            f"\nPostgres, scale {args.scale}, shape {shape} ({n:,} labels), {args.repeat} run(s)"
            f" each; ratio = median / median of the best baseline ({best})"
        )
        print(
            f"{'contender':<12} {'median s':>9} {'min-max s':>13} {'peak MiB':>9} {'ratio':>6}"
            f" {'mismatches':>11}"
        )
        saved[shape] = {}
        for c, times in runs.items():
            columns: dict[str, int] = {}
            bad = "-" if c == "fsc" else mismatches(outputs["fsc"], outputs[c], columns)
            spread = f"{min(times):.2f}-{max(times):.2f}"
            print(
                f"{c:<12} {med[c]:>9.2f} {spread:>13} {peaks[c]:>9.0f} {med[c] / med[best]:>6.2f}"
                f" {bad!s:>11}" + (f"  {columns}" if columns else "")
            )
            saved[shape][c] = {
                "seconds": [round(t, 3) for t in times],
                "median": round(med[c], 3),
                "peak_mib": round(peaks[c]),
                "ratio_to_best": round(med[c] / med[best], 3),
                "mismatches": bad,
                "mismatched_columns": columns,
            }
        path.write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
