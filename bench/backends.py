"""Scale S on every warehouse: the same `fsc training-set` on DuckDB, Postgres and Spark.

    python bench/backends.py --scale S

The bench copies the generated DuckDB tables into a Postgres server of its own (the `pgserver`
wheel) and into a local Spark metastore, then times each run in its own process. No target:
the figures show the trade-off between an embedded engine, a database server and a
distributed engine on one 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import ensure  # noqa: E402
from scales import DATA  # noqa: E402
from training_set import SERVICE, measure, mismatches  # noqa: E402


def copy_tables(db: Path, url: str) -> None:
    """Copy the benchmark tables from DuckDB into another warehouse (in a child process, so
    a local Spark's metastore lock is released before fsc opens it)."""
    code = f"""
import duckdb
from fsdsl.backends import connect
con = duckdb.connect({str(db)!r}, read_only=True)
with connect({url!r}, {{}}) as wh:
    wh.create_table(("orders",), con.sql("SELECT * FROM orders").to_arrow_table())
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="S", choices=["XS", "S", "M"])
    args = p.parse_args()
    db, labels = ensure(args.scale)
    work = Path(tempfile.mkdtemp(prefix="fsdsl-backends-"))
    import pgserver

    pg = pgserver.get_server(work / "pg", cleanup_mode="stop")
    urls = {
        "duckdb": f"duckdb:///{db}",
        "postgres": pg.get_uri().replace("postgresql://", "postgresql+psycopg://", 1),
        "spark": f"spark://local[2]?warehouse_dir={work / 'spark'}",
    }
    copy_tables(db, urls["postgres"])
    copy_tables(db, urls["spark"])
    results, outputs = {}, {}
    for name, url in urls.items():
        out = DATA / f"{args.scale.lower()}_{name}_backend.parquet"
        r = measure(
            [
                "fsc",
                "training-set",
                str(ROOT / "definitions"),
                "-s",
                SERVICE,
                "-l",
                str(labels),
                "-o",
                str(out),
                "-w",
                url,
            ]
        )
        outputs[name] = out
        results[name] = {"seconds": round(r["seconds"], 2), "peak_mib": round(r["peak_mib"])}
    for name in ("postgres", "spark"):
        results[name]["mismatches_vs_duckdb"] = mismatches(outputs["duckdb"], outputs[name])
    print(f"scale {args.scale}: service {SERVICE}, one process per run")
    print(f"{'backend':<10} {'seconds':>8} {'peak MiB':>9} {'mismatches':>11}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['seconds']:>8.2f} {r['peak_mib']:>9} "
            f"{r.get('mismatches_vs_duckdb', '-')!s:>11}"
        )
    (DATA / f"results_backends_{args.scale.lower()}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
