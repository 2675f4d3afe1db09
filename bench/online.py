"""Benchmark the online store at one scale (default M), each figure against raw redis-py in the
same run:

* full refresh of `user_orders`: total seconds, and write throughput (feature values/s) against
  a raw redis-py pipeline writing the same strings (each entity's values, signed);
* incremental refresh with no new events, 10, 20 and 30 minutes after the full one (windows and
  TTL still move: the entities that lost an event are rewritten): the whole `fsc run` process,
  start-up included — the fixed cost of a run;
* incremental refresh after appending 0.1%, then 1% new events (by ingestion time): the whole
  process, against the full refresh's;
* `online_features` of service `churn_model` for 1 and for 100 entities over 2,000 calls: p50
  and p99 against a raw MGET of the same keys.

    python bench/online.py --scale M

Each `fsc run` is `python -m fsdsl.cli run ...` in its own process, as the installed `fsc`
script runs it (without a version manager's shim in front, which is not fsc's cost).

With `--checksum`, what the per-entity checksums cost instead: the share of a full refresh's
write time spent computing them, and the same lookups with verification on and off,
alternating call by call on the same keys (`OnlineStore.verify_checksums`).

    python bench/online.py --scale M --checksum --calls 6000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import ensure  # noqa: E402
from scales import DATA  # noqa: E402

VIEW, SERVICE = "user_orders", "churn_model"
AT = dt.datetime(2024, 6, 1)  # inside the generated history (2024-01-01 + 180 days)


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    from fsdsl.online.server import redis_binary

    port = 6391
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    for _ in range(500):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return proc, f"redis://127.0.0.1:{port}/0"


def fsc_run(db: Path, url: str, at: dt.datetime, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fsdsl.cli",
            "run",
            str(ROOT / "definitions"),
            "-w",
            f"duckdb:///{db}",
            "--online",
            url,
            "--at",
            at.isoformat(),
            "-v",
            VIEW,
            "-f",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,  # `-m` finds this tree's fsdsl first, as the bench's own imports do
    )
    seconds = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(out.stderr)
    return seconds, json.loads(out.stdout)["views"][0]


def raw_write(url: str, db: Path) -> tuple[float, int]:
    """The same strings written by a plain redis-py pipeline of SETs (values already encoded
    and signed, outside the timed part: a plain client has nothing to encode)."""
    import pyarrow as pa
    import redis

    from fsdsl import FeatureStore
    from fsdsl.compile.refresh import refresh_query
    from fsdsl.online import aggstate
    from fsdsl.online.codec import key_array, values_array
    from fsdsl.online.refresh import _json_columns
    from fsdsl.online.resp import signed

    with FeatureStore(ROOT / "definitions", warehouse=f"duckdb:///{db}") as store:
        view = store.repo.views[VIEW]
        wh = store.warehouse()
        aggstate.register(wh, view, aggstate.empty(view))
        table = wh.query(refresh_query(view, "duckdb"), {"as_of": AT, "watermark": None})
    columns = _json_columns(view, table)
    texts = key_array([table["user_id"]], [view.entity.keys[0].type]).to_pylist()
    keys = pa.array([f"raw:{t}" for t in texts], pa.string())
    stored = signed(keys, values_array(columns)).to_pylist()
    rows = list(zip(keys.to_pylist(), stored, strict=True))
    values = sum(len(c) - c.null_count for c in columns)
    client = redis.Redis.from_url(url)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, (key, value) in enumerate(rows, 1):
        pipe.set(key, value)
        if i % 2000 == 0:
            pipe.execute()
    pipe.execute()
    seconds = time.perf_counter() - started
    for i in range(0, len(rows), 10000):
        client.delete(*[k for k, _ in rows[i : i + 10000]])
    return seconds, values


def append_events(db: Path, at: dt.datetime, later: dt.datetime, per_mille: int = 10) -> int:
    """`per_mille`/1000 new orders ingested between two refreshes, drawn from the existing ones
    so that they follow the same skewed activity; 1 in 50 is a late row with an old event time."""
    import duckdb

    con = duckdb.connect(str(db))
    n = con.execute("SELECT count(*) FROM orders").fetchone()[0] * per_mille // 1000
    span = int((later - at).total_seconds())
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""
        INSERT INTO orders
        WITH picked AS (
          SELECT user_id, amount, status, row_number() OVER () AS i
          FROM orders USING SAMPLE {n} ROWS (reservoir, 42))
        SELECT 'new{per_mille}-' || i, user_id, amount, status,
               TIMESTAMP '{at.isoformat()}' + to_seconds(1 + (i * 13) % {span - 1})
                 - CASE WHEN i % 50 = 0 THEN INTERVAL 3 DAY ELSE INTERVAL 0 DAY END,
               TIMESTAMP '{at.isoformat()}' + to_seconds(1 + (i * 13) % {span - 1})
        FROM picked""")
    con.close()
    return n


def latency(store, url: str, batch: int, calls: int, users: int) -> tuple[dict, dict]:
    import redis

    from fsdsl.online.store import PREFIX

    rnd = random.Random(batch)
    plan = store.plan(SERVICE)
    state = store.online().state(VIEW)
    raw = redis.Redis.from_url(url)
    ours, base = [], []
    for _ in range(calls):
        ids = [f"u{rnd.randint(1, users):06d}" for _ in range(batch)]
        keys = [{"user_id": i} for i in ids]
        t0 = time.perf_counter()
        store.online_features(SERVICE, keys)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw.mget([f'{PREFIX}:v:{state["ns"]}:["{i}"]' for i in ids])
        base.append(time.perf_counter() - t0)
    assert plan is not None
    return summary(ours), summary(base)


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {
        "p50_ms": round(statistics.median(xs) * 1000, 4),
        "p99_ms": round(xs[int(len(xs) * 0.99) - 1] * 1000, 4),
    }


def checksum_costs(copy: Path, url: str, scale: str, calls: int) -> dict:
    """Checksums on the write path (time inside `resp.checksums` during a full refresh) and
    on the read path (lookups verified or not, alternating, same keys in the same order)."""
    from fsdsl import FeatureStore
    from fsdsl.online import resp

    spent = [0.0]
    compute = resp.checksums

    def timed(*args):
        t0 = time.perf_counter()
        try:
            return compute(*args)
        finally:
            spent[0] += time.perf_counter() - t0

    users = {"XS": 1000, "S": 10_000, "M": 100_000, "L": 1_000_000}[scale]
    out: dict = {"scale": scale, "calls": calls}
    with FeatureStore(ROOT / "definitions", warehouse=f"duckdb:///{copy}", online=url) as store:
        resp.checksums = timed
        try:
            (run,) = store.run(AT, views=[VIEW], full=True)
        finally:
            resp.checksums = compute
        out["write"] = {
            "entities_written": run.entities_written,
            "write_seconds": round(run.write_seconds, 3),
            "checksum_seconds": round(spent[0], 3),
            "checksum_share": round(spent[0] / run.write_seconds, 3),
        }
        online = store.online()
        for n in (1, 100):
            rnd = random.Random(n)
            times: dict[bool, list[float]] = {True: [], False: []}
            for call in range(calls):
                keys = [{"user_id": f"u{rnd.randint(1, users):06d}"} for _ in range(n)]
                for verify in (True, False) if call % 2 else (False, True):
                    online.verify_checksums = verify
                    t0 = time.perf_counter()
                    store.online_features(SERVICE, keys)
                    times[verify].append(time.perf_counter() - t0)
            online.verify_checksums = True
            on, off = summary(times[True]), summary(times[False])
            out[f"lookup_{n}"] = {
                "verified": on,
                "unverified": off,
                "p50_cost": round(on["p50_ms"] / off["p50_ms"] - 1, 3),
                "p99_cost": round(on["p99_ms"] / off["p99_ms"] - 1, 3),
                # the time checking adds to a typical call, against the p99 it must stay under
                "added_p50_over_p99": round((on["p50_ms"] - off["p50_ms"]) / off["p99_ms"], 3),
            }
        assert online.corrupt_reads == 0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="M", choices=["XS", "S", "M", "L"])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--checksum", action="store_true", help="measure what checksums cost")
    args = p.parse_args()
    db, _ = ensure(args.scale)
    work = Path(tempfile.mkdtemp(prefix="fsdsl-bench-"))
    copy = work / "wh.duckdb"
    shutil.copy(db, copy)
    proc, url = start_redis(work)
    if args.checksum:
        try:
            results = checksum_costs(copy, url, args.scale, args.calls)
        finally:
            proc.terminate()
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(results, indent=2))
        name = f"results_online_checksum_{args.scale.lower()}.json"
        (DATA / name).write_text(json.dumps(results, indent=2))
        return
    results: dict = {"scale": args.scale}
    try:
        full_s, full = fsc_run(copy, url, AT, "--full")
        raw_s, raw_values = raw_write(url, copy)
        ours_vps = full["values_written"] / full["write_seconds"]
        raw_vps = raw_values / raw_s
        results["full"] = {
            "process_seconds": round(full_s, 2),
            **{
                k: full[k]
                for k in ("entities_written", "values_written", "query_seconds", "write_seconds")
            },
            "values_per_s": round(ours_vps),
            "raw_values_per_s": round(raw_vps),
            "ratio_to_raw": round(ours_vps / raw_vps, 3),
        }
        # no new events: only time moves (the first run also fills the compile caches)
        quiet = []
        for minutes in (10, 20, 30):
            s, run = fsc_run(copy, url, AT + dt.timedelta(minutes=minutes))
            quiet.append((s, run))
        results["no_new_events"] = {
            "process_seconds": [round(s, 2) for s, _ in quiet],
            "median_seconds": round(statistics.median(s for s, _ in quiet), 2),
            "query_seconds": [round(r["query_seconds"], 2) for _, r in quiet],
            "entities_written": [r["entities_written"] for _, r in quiet],
            "ratio_to_full": round(statistics.median(s for s, _ in quiet) / full_s, 3),
        }
        start = AT + dt.timedelta(minutes=30)
        for per_mille, hours in ((1, 6), (10, 12)):
            later = AT + dt.timedelta(hours=hours)
            appended = append_events(copy, start, later, per_mille)
            inc_s, inc = fsc_run(copy, url, later)
            results[f"incremental_{per_mille / 10:g}pct"] = {
                "appended_events": appended,
                "process_seconds": round(inc_s, 2),
                "query_seconds": round(inc["query_seconds"], 2),
                "write_seconds": round(inc["write_seconds"], 2),
                "entities_written": inc["entities_written"],
                "entities_removed": inc["entities_removed"],
                "ratio_to_full": round(inc_s / full_s, 3),
            }
            start = later
        from fsdsl import FeatureStore

        users = {"XS": 1000, "S": 10_000, "M": 100_000, "L": 1_000_000}[args.scale]
        with FeatureStore(ROOT / "definitions", warehouse=f"duckdb:///{copy}", online=url) as store:
            # the lookup is of the service's user_orders features: refresh is current
            for n in (1, 100):
                ours, base = latency(store, url, n, args.calls, users)
                results[f"lookup_{n}"] = {
                    "fsc": ours,
                    "raw": base,
                    "p50_ratio": round(ours["p50_ms"] / base["p50_ms"], 2),
                    "p99_ratio": round(ours["p99_ms"] / base["p99_ms"], 2),
                }
    finally:
        proc.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    (DATA / f"results_online_{args.scale.lower()}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
