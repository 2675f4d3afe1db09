"""Benchmark `fsc training-set` against two hand-written DuckDB baselines on the same data.

    python bench/training_set.py --scale S          # also M; L runs fsc only unless --baselines

Each contender runs in its own process (bench/measure.py) so wall time and peak memory are its
own; all read the labels from Parquet and write the result to Parquet. The outputs are compared
cell by cell, so a fast baseline that computes something else is caught.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import ensure  # noqa: E402
from scales import DATA  # noqa: E402

SERVICE = "churn_core"
BASELINES = {
    "a_textbook": HERE / "baselines" / "a_textbook.sql",
    "b_fastest": HERE / "baselines" / "b_fastest.sql",
}


def measure(cmd: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "measure.py"), "--", *cmd],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["returncode"] != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{result['stderr']}")
    return result


def mismatches(a: Path, b: Path) -> int:
    bad = 0
    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.num_rows != tb.num_rows:
        return -1
    for name in ta.column_names:
        for x, y in zip(ta[name].to_pylist(), tb[name].to_pylist(), strict=True):
            same = x == y or (
                isinstance(x, float)
                and isinstance(y, float)
                and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            )
            bad += not same
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="S", choices=["XS", "S", "M", "L"])
    p.add_argument(
        "--baselines", action="store_true", help="run the baselines at scale L too (slow)"
    )
    p.add_argument("--memory-limit", default="4GB")
    p.add_argument("--no-check", action="store_true", help="skip the cell-by-cell comparison")
    args = p.parse_args()

    db, labels = ensure(args.scale)
    tmp = DATA / "tmp"
    tmp.mkdir(exist_ok=True)
    runs = {}
    out = DATA / f"{args.scale.lower()}_fsc.parquet"
    runs["fsc"] = (
        measure(
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
                f"duckdb:///{db}?memory_limit={args.memory_limit}",
            ]
        ),
        out,
    )
    if args.scale != "L" or args.baselines:
        for name, sql in BASELINES.items():
            path = DATA / f"{args.scale.lower()}_{name}.parquet"
            runs[name] = (
                measure(
                    [
                        sys.executable,
                        str(HERE / "baseline.py"),
                        str(sql),
                        str(db),
                        str(labels),
                        str(path),
                        "--memory-limit",
                        args.memory_limit,
                        "--temp-directory",
                        str(tmp),
                    ]
                ),
                path,
            )

    ref = runs.get("b_fastest", runs["fsc"])[0]["seconds"]
    print(f"scale {args.scale}: service {SERVICE} ({pq.read_metadata(labels).num_rows:,} labels)")
    print(f"{'contender':<12} {'seconds':>9} {'peak MiB':>9} {'vs (b)':>7} {'mismatches':>11}")
    results = {}
    for name, (r, path) in runs.items():
        bad = "-" if args.no_check or name == "fsc" else mismatches(runs["fsc"][1], path)
        print(
            f"{name:<12} {r['seconds']:>9.2f} {r['peak_mib']:>9.0f} "
            f"{r['seconds'] / ref:>7.2f} {bad!s:>11}"
        )
        results[name] = {
            "seconds": round(r["seconds"], 3),
            "peak_mib": round(r["peak_mib"]),
            "ratio_to_b": round(r["seconds"] / ref, 3),
            "mismatches": bad,
        }
    (DATA / f"results_training_{args.scale.lower()}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
