"""Benchmark `fsc training-set` against hand-written DuckDB baselines, shape by shape (issue #10).

    python bench/training_set.py --scale S                      # the mixed churn_core service
    python bench/training_set.py --scale M --shape last_ttl     # one shape of bench/shapes/
    python bench/training_set.py --scale M --shape all --repeat 2
    python bench/training_set.py --scale L --shape all          # fsc only, unless --baselines
    python bench/training_set.py --scale M --shape fraud_by_device  # issue #12: device vs user

Each shape is a service of bench/shapes/shapes.feat (churn_core: of definitions/) with the
baselines an expert would write for it (bench/baselines/<shape>*.sql; a shape with two credible
formulations keeps both as contenders). Each contender runs in its own process
(bench/measure.py) so wall time and peak memory are its own; all read the labels from Parquet
and write the result to Parquet. Contenders alternate within each repetition (the order rotates),
and the outputs are compared with fsc's cell by cell (floats to 1e-9 relative), so a fast
baseline that computes something else is caught.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import ensure, ensure_links, late_path  # noqa: E402
from scales import DATA  # noqa: E402

SERVICE = "churn_core"
BASE = HERE / "baselines"
SPECS = HERE / "shapes"
BASELINES = {
    "a_textbook": BASE / "a_textbook.sql",
    "b_fastest": BASE / "b_fastest.sql",
}


@dataclass(frozen=True)
class Shape:
    """A service and the hand-written baselines that compute the same columns."""

    definitions: Path
    baselines: dict[str, Path] = field(default_factory=dict)
    late: bool = False
    """Reads `orders_late`, which lives in the scale's `*_late.duckdb` (bench/generate.py)."""
    by_user: str | None = None
    """Entity resolution (issue #12): the shape is a device-keyed service, measured against
    fsc itself serving the same features keyed by user (this service) on the same labels with
    the user each device resolves to at T, by plain SQL (`generate.ensure_links`). Both outputs
    have the same columns (labels, `user_id`, features), compared cell by cell."""


SHAPES = {
    "last_ttl": Shape(SPECS, {"asof": BASE / "last_ttl.sql"}),
    "windowed_sums": Shape(
        SPECS,
        {
            "prefix_asof": BASE / "windowed_sums.sql",
            "prefix_union": BASE / "windowed_sums_union.sql",
            "range_join": BASE / "windowed_sums_rangejoin.sql",
        },
    ),
    "late_sums": Shape(
        SPECS,
        {
            "prefix_asof": BASE / "late_sums.sql",
            "prefix_union": BASE / "late_sums_union.sql",
            "range_join": BASE / "late_sums_rangejoin.sql",
        },
        late=True,
    ),
    "minmax_windowed": Shape(
        SPECS,
        {
            "range_frames": BASE / "minmax_windowed_frames.sql",
            "range_join": BASE / "minmax_windowed_rangejoin.sql",
        },
    ),
    "lastk_distinct": Shape(
        SPECS,
        {
            "range_frames": BASE / "lastk_distinct_frames.sql",
            "range_join": BASE / "lastk_distinct_rangejoin.sql",
        },
    ),
    SERVICE: Shape(ROOT / "definitions", BASELINES),
    "fraud_by_device": Shape(HERE / "resolution", by_user="fraud_by_user"),
}
BY_USER = "fsc_by_user"


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


def same(x: object, y: object) -> bool:
    """Cell equality of the benchmark: floats to 1e-9 relative, lists element by element."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
    return x == y


def mismatches(a: Path, b: Path, by_column: dict[str, int] | None = None) -> int:
    """Cells that differ between two outputs (-1: not the same rows or columns)."""
    bad = 0
    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.num_rows != tb.num_rows or ta.column_names != tb.column_names:
        return -1
    for name in ta.column_names:
        n = sum(
            not same(x, y) for x, y in zip(ta[name].to_pylist(), tb[name].to_pylist(), strict=True)
        )
        if n and by_column is not None:
            by_column[name] = n
        bad += n
    return bad


def fsc_command(src: Path | None) -> list[str]:
    """`fsc`, or the fsc of another source tree (e.g. `git archive HEAD` unpacked), so a compiler
    being changed in the work tree can be measured against its committed state."""
    if src is None:
        return ["fsc"]
    boot = f"import sys; sys.path.insert(0, {str(src)!r}); from fsdsl.cli import main; main()"
    return [sys.executable, "-c", boot]


def run_fsc(
    shape: str, spec: Shape, db: Path, labels: Path, out: Path, memory: str, src: Path | None
) -> dict:
    return measure(
        [
            *fsc_command(src),
            "training-set",
            str(spec.definitions),
            "-s",
            shape,
            "-l",
            str(labels),
            "-o",
            str(out),
            "-w",
            f"duckdb:///{db}?memory_limit={memory}",
        ]
    )


def run_baseline(sql: Path, db: Path, labels: Path, out: Path, memory: str) -> dict:
    tmp = DATA / "tmp"
    tmp.mkdir(exist_ok=True)
    return measure(
        [
            sys.executable,
            str(HERE / "baseline.py"),
            str(sql),
            str(db),
            str(labels),
            str(out),
            "--memory-limit",
            memory,
            "--temp-directory",
            str(tmp),
        ]
    )


def bench_shape(shape: str, args: argparse.Namespace) -> dict:
    """Run fsc and the shape's baselines `args.repeat` times, alternating; print one table."""
    spec = SHAPES[shape]
    db, labels = ensure(args.scale)
    if spec.late:
        db = late_path(db)
    resolved = None
    if spec.by_user:
        db, labels, resolved = ensure_links(args.scale)
    contenders = ["fsc"]
    if args.scale != "L" or args.baselines:
        contenders += list(spec.baselines)
    if spec.by_user:
        contenders.append(BY_USER)
    outputs = {c: DATA / f"{args.scale.lower()}_{shape}_{c}.parquet" for c in contenders}
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    for rep in range(args.repeat):
        k = rep % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            if c == "fsc":
                r = run_fsc(shape, spec, db, labels, outputs[c], args.memory_limit, args.fsc_src)
            elif c == BY_USER:
                assert spec.by_user is not None and resolved is not None
                r = run_fsc(
                    spec.by_user, spec, db, resolved, outputs[c], args.memory_limit, args.fsc_src
                )
            else:
                r = run_baseline(spec.baselines[c], db, labels, outputs[c], args.memory_limit)
            runs[c].append(r)
        if rep == 0 and spec.by_user and not args.no_check:
            # timings of two services that disagree would measure nothing: stop at once
            columns: dict[str, int] = {}
            bad = mismatches(outputs["fsc"], outputs[BY_USER], columns)
            if bad:
                raise SystemExit(f"{shape}: {bad} cell(s) differ from {BY_USER}: {columns}")

    secs = {c: statistics.median(r["seconds"] for r in rs) for c, rs in runs.items()}
    fastest = {c: min(r["seconds"] for r in rs) for c, rs in runs.items()}
    cpu = {c: statistics.median(r["cpu_seconds"] for r in rs) for c, rs in runs.items()}
    baselines = [c for c in contenders if c != "fsc"]
    best = min(baselines, key=secs.__getitem__) if baselines else "fsc"
    n_labels = pq.read_metadata(labels).num_rows
    print(
        f"\nscale {args.scale}, shape {shape} ({n_labels:,} labels), {args.repeat} run(s) each;"
        f" ratios to the best baseline ({best}) by median wall, by fastest wall, by median CPU"
    )
    print(
        f"{'contender':<18} {'median s':>9} {'min-max s':>13} {'cpu s':>7} {'peak MiB':>9}"
        f" {'ratio':>6} {'r(min)':>6} {'r(cpu)':>6} {'mismatches':>11}"
    )
    results = {}
    for c, rs in runs.items():
        times = [r["seconds"] for r in rs]
        peak = max(r["peak_mib"] for r in rs)
        columns: dict[str, int] = {}
        bad = (
            "-" if args.no_check or c == "fsc" else mismatches(outputs["fsc"], outputs[c], columns)
        )
        spread = f"{min(times):.2f}-{max(times):.2f}"
        print(
            f"{c:<18} {secs[c]:>9.2f} {spread:>13} {cpu[c]:>7.2f} {peak:>9.0f}"
            f" {secs[c] / secs[best]:>6.2f} {fastest[c] / fastest[best]:>6.2f}"
            f" {cpu[c] / cpu[best]:>6.2f} {bad!s:>11}" + (f"  {columns}" if columns else "")
        )
        results[c] = {
            "seconds": [round(t, 3) for t in times],
            "median": round(secs[c], 3),
            "peak_mib": round(peak),
            "cpu_seconds": [round(r["cpu_seconds"], 3) for r in rs],
            "ratio_to_best": round(secs[c] / secs[best], 3),
            "ratio_fastest": round(fastest[c] / fastest[best], 3),
            "ratio_cpu": round(cpu[c] / cpu[best], 3),
            "mismatches": bad,
            "mismatched_columns": columns,
        }
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="S", choices=["XS", "S", "M", "L"])
    p.add_argument("--shape", default=SERVICE, choices=[*SHAPES, "all"])
    p.add_argument("--repeat", type=int, default=1, help="runs of each contender (alternated)")
    p.add_argument(
        "--baselines", action="store_true", help="run the baselines at scale L too (slow)"
    )
    p.add_argument("--memory-limit", default="4GB")
    p.add_argument("--no-check", action="store_true", help="skip the cell-by-cell comparison")
    p.add_argument(
        "--fsc-src",
        type=Path,
        default=None,
        help="run the fsdsl package found in this folder instead of the installed `fsc`",
    )
    args = p.parse_args()

    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    path = DATA / f"results_training_{args.scale.lower()}.json"
    DATA.mkdir(parents=True, exist_ok=True)
    saved = json.loads(path.read_text()) if path.exists() else {}
    for shape in shapes:
        saved[shape] = bench_shape(shape, args)
        path.write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
