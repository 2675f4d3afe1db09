"""Benchmark freshness (issue #11): streamed and pushed page views through views
`user_browsing` and `user_category_browsing` of the example, each figure against a raw Redis
baseline measured in the same run, on the same server:

* freshness: a generator XADDs page views to `fsc:stream:page_views` at a fixed rate (default
  1,000/s for 60 s) while ONE `fsc stream` process consumes; 1 event in `--probe-every` is a
  probe, a page view of a visitor never seen before, polled through
  `FeatureStore.online_features` (service `recommender`) until both views show it
  (`views_1h >= 1` and `category_views_7d >= 1`): XADD -> visible, p50/p95/p99, against a raw
  XADD -> XREAD(BLOCK) round trip. The worker's own figures (entry id time -> commit, from its
  `--format json` reports) are recorded beside them;
* throughput: a backlog (default 1M entries, pipelined XADDs) caught up by one worker, then a
  fresh backlog by two workers of one group: events/s until the group has read and
  acknowledged everything (XINFO), against a raw consumer of the same entries (XREADGROUP +
  XACK in batches of the worker's size, no effect);
* single-event push: `FeatureStore.push` of one page view, warehouse and Redis included,
  against a raw HSET round trip.

    python bench/stream.py                                      # the issue's sizes
    python bench/stream.py --seconds 10 --backlog 100000        # a quick check

The project is a copy of the example definitions with a generated warehouse (`--users`,
`--page-views` over the `--days` ending now, so windows and TTLs hold live entities), refreshed
once by `fsc run` before anything is streamed. Workers and `fsc run` are whole processes
(`python -m fsdsl.cli ...`), as the installed `fsc` script runs them. The online store is the
project's embedded Redis, or `--online URL` (an empty database: the benchmark writes streams and
namespaces there; `--flush` empties it first). Everything shares this machine's cores: the
generator and the probes (this process), the worker(s) and Redis. Results:
bench/data/results_stream.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from scales import DATA  # noqa: E402

from fsdsl.online.stream import BATCH  # noqa: E402 - the worker's reads, and the raw consumer's

SOURCE, SERVICE = "page_views", "recommender"
KEY = f"fsc:stream:{SOURCE}"
GROUP = "fsc"
RAW_KEY = "fsc:bench:raw"  # the raw baselines' own keys, removed afterwards
CATEGORIES = ["electronics", "books", "home", "garden", "toys", "fashion", "sports", "beauty"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# ---- the project ---------------------------------------------------------------------------
def make_project(root: Path, users: int, page_views: int, days: int) -> dict:
    """The example definitions and profiles under `root`, a warehouse whose history ends now."""
    from fsdsl.demo import generate

    shutil.copytree(ROOT / "definitions", root / "definitions")
    shutil.copytree(ROOT / "backends", root / "backends")
    (root / ".fsc").mkdir()
    end = utc_now().replace(microsecond=0)
    return generate(
        root / ".fsc" / "warehouse.duckdb",
        users=users,
        orders=max(1, page_views // 4),
        page_views=page_views,
        labels=0,
        seed=7,
        start=end - dt.timedelta(days=days),
        days=days,
    )


def fsc(root: Path, online: str | None, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fsdsl.cli", *args[:1], str(root / "definitions"), *args[1:]]
    if online:
        cmd += ["--online", online]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


class WorkerProcess:
    """`fsc stream --source page_views --format json` in a process of its own; its reports are
    collected as they come."""

    started_all: list[WorkerProcess] = []  # killed on the way out if the benchmark fails

    def __init__(self, root: Path, online: str | None, report_every: float = 1.0):
        cmd = [sys.executable, "-m", "fsdsl.cli", "stream", str(root / "definitions")]
        cmd += ["--source", SOURCE, "--format", "json", "--report-every", str(report_every)]
        if online:
            cmd += ["--online", online]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.reports: list[dict] = []
        self.stderr: list[str] = []
        WorkerProcess.started_all.append(self)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                self.stderr.append(line)
                continue
            report["_t"] = time.perf_counter()
            self.reports.append(report)

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the worker exited ({self.proc.returncode}): {self.output()}")

    def stop(self, timeout: float = 120) -> dict:
        """SIGTERM (the batch in hand is finished and acknowledged); the final report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise SystemExit(
                f"the worker did not stop within {timeout}s: {self.output()}"
            ) from None
        time.sleep(0.1)  # the reader threads take the last lines
        if rc != 0:
            raise SystemExit(f"the worker exited {rc} on SIGTERM: {self.output()}")
        return self.reports[-1] if self.reports else {}

    def output(self) -> str:
        return f"last reports {self.reports[-2:]}, stderr {''.join(self.stderr)[-3000:]}"

    def waits(self) -> list[str]:
        """What the worker said it waited for (a lock another worker holds, a store)."""
        return sorted({r["waiting"].split(":")[0] for r in self.reports if r.get("waiting")})

    def rates(self) -> list[float]:
        """Events/s of each report period, to see whether a long catch-up slows down."""
        return [r["events_per_second"] for r in self.reports]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- events --------------------------------------------------------------------------------
def page_view(view_id: str, visitor: str, rng: random.Random, now: dt.datetime) -> dict:
    """A stream entry as JSON lines would carry it: texts. Viewed in the last 10 minutes."""
    return {
        "view_id": view_id,
        "visitor_id": visitor,
        "product_id": f"p{rng.randrange(2000):05d}",
        "category": rng.choice(CATEGORIES),
        "dwell_seconds": f"{rng.uniform(0, 60):.1f}",
        "is_mobile": rng.choice(("true", "false")),
        "viewed_at": (now - dt.timedelta(seconds=rng.uniform(0, 600))).isoformat(),
    }


def user(rng: random.Random, users: int) -> str:
    return f"u{rng.randint(1, users):06d}"


def xadd_backlog(client, n: int, users: int, tag: str, seed: int) -> float:
    """`n` page views of known users, pipelined in chunks; returns the seconds it took."""
    rng, now = random.Random(seed), utc_now()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(KEY, page_view(f"{tag}{i:07d}", user(rng, users), rng, now))
        if len(pipe) >= BATCH:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - started


def summary(xs: list[float], unit: float = 1000.0) -> dict:
    """p50/p95/p99 in ms of seconds `xs` (nearest rank)."""
    if not xs:
        return {"n": 0}
    xs = sorted(xs)

    def rank(p: float) -> float:
        return round(xs[min(len(xs) - 1, max(0, int(len(xs) * p + 0.5) - 1))] * unit, 3)

    return {
        "n": len(xs),
        "p50_ms": round(statistics.median(xs) * unit, 3),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "max_ms": round(xs[-1] * unit, 3),
    }


# ---- raw baselines -------------------------------------------------------------------------
def raw_xread_round_trip(url: str, calls: int) -> dict:
    """One thread adds an entry, another, blocked in XREAD, receives it: the least a
    stream can add to freshness."""
    import redis

    adder, reader = redis.Redis.from_url(url), redis.Redis.from_url(url)
    adder.delete(RAW_KEY)
    got: queue.Queue[float] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        last = "0-0"
        while not stop.is_set():
            reply = reader.xread({RAW_KEY: last}, block=1000, count=1)
            for _, items in reply or []:
                for entry_id, _ in items:
                    last = entry_id
                    got.put(time.perf_counter())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    fields = page_view("raw", "u000001", random.Random(0), utc_now())
    times = []
    for i in range(calls + 20):
        time.sleep(0.001)  # the reader is back in XREAD
        t0 = time.perf_counter()
        adder.xadd(RAW_KEY, fields)
        t1 = got.get(timeout=10)
        if i >= 20:  # warm-up
            times.append(t1 - t0)
    stop.set()
    thread.join()
    adder.delete(RAW_KEY)
    return summary(times)


def raw_hset(url: str, calls: int) -> dict:
    """One HSET of a hash shaped like a stored `user_browsing` entity, one round trip."""
    import redis

    client = redis.Redis.from_url(url)
    fields = {f"f{i}": f"{i * 1.5:.3f}" for i in range(12)}
    times = []
    for i in range(calls + 20):
        t0 = time.perf_counter()
        client.hset(f"{RAW_KEY}:h:{i % 1000}", mapping=fields)
        if i >= 20:
            times.append(time.perf_counter() - t0)
    for i in range(0, 1000, 500):
        client.delete(*[f"{RAW_KEY}:h:{j}" for j in range(i, i + 500)])
    return summary(times)


def raw_consume(client, after: str) -> float:
    """A plain consumer group reading what follows `after` in batches and acknowledging them:
    events/s. Its own group, so the workers' group is untouched."""
    group = "fsc-bench-raw"
    client.xgroup_create(KEY, group, id=after)
    started, n = time.perf_counter(), 0
    while True:
        reply = client.xreadgroup(group, "raw", {KEY: ">"}, count=BATCH)
        items = reply[0][1] if reply else []
        if not items:
            break
        client.xack(KEY, group, *[i for i, _ in items])
        n += len(items)
    seconds = time.perf_counter() - started
    client.xgroup_destroy(KEY, group)
    return n / seconds


# ---- the group's progress ------------------------------------------------------------------
def group_info(client) -> dict | None:
    import redis

    try:
        groups = client.xinfo_groups(KEY)
    except redis.ResponseError:  # no stream yet
        return None
    for g in groups:
        if _text(g["name"]) == GROUP:
            return g
    return None


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def caught_up(client) -> bool:
    """Everything added so far read and acknowledged by the group (Redis 6 has no `lag`)."""
    g = group_info(client)
    if g is None:
        return False
    last = _text(client.xinfo_stream(KEY)["last-generated-id"])
    return _text(g["last-delivered-id"]) == last and int(g["pending"]) == 0


def wait_ready(client, workers: list[WorkerProcess], timeout: float = 120) -> None:
    """Until every worker has joined the group (its first XREADGROUP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            w.alive()
        g = group_info(client)
        if g is not None and int(g["consumers"]) >= len(workers):
            return
        time.sleep(0.02)
    raise SystemExit(f"the workers did not start within {timeout}s: {workers[0].output()}")


# ---- 1. freshness --------------------------------------------------------------------------
def freshness(
    root: Path,
    online: str | None,
    url: str,
    users: int,
    rate: float,
    seconds: float,
    warmup: float,
    probe_every: int,
) -> dict:
    """One worker under a paced load. A probe's latency runs from just before the pipeline
    holding its XADD is sent to the end of the first lookup showing it in both views: the
    lookups poll all outstanding probes in one call, back to back, so the figure is high by
    at most one lookup (a few ms), which the raw baseline does not pay."""
    import redis

    from fsdsl import FeatureStore

    client = redis.Redis.from_url(url)
    worker = WorkerProcess(root, online)
    wait_ready(client, [worker])
    time.sleep(0.5)  # past its first (empty) read and tick
    probes: queue.Queue[tuple[str, str, float, bool]] = queue.Queue()
    done = threading.Event()
    sent: dict = {"events": 0, "probes": 0, "behind_s": 0.0, "error": None}

    def generate() -> None:
        try:
            paced()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            sent["error"] = e
        finally:
            done.set()

    def paced() -> None:
        """Paced by the clock: every step sends the events due by now in one pipeline."""
        rng = random.Random(1)
        gen = redis.Redis.from_url(url)
        started = time.perf_counter()
        total = int(rate * (warmup + seconds))
        i = 0
        while i < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            if due <= i:
                ahead = (i / rate) - (time.perf_counter() - started) + 1e-4
                time.sleep(max(0.0, min(0.002, ahead)))  # the clock may pass i / rate meanwhile
                continue
            now = utc_now()
            pipe = gen.pipeline(transaction=False)
            batch_probes = []
            for j in range(i, due):
                if j % probe_every == probe_every - 1:
                    visitor = f"probe{j:08d}"
                    fields = page_view(f"q{j:08d}", visitor, rng, now)
                    fields.update(category="books", dwell_seconds="10.0", viewed_at=now.isoformat())
                    batch_probes.append((visitor, j / rate >= warmup))
                else:
                    fields = page_view(f"f{j:08d}", user(rng, users), rng, now)
                pipe.xadd(KEY, fields)
            t_add = time.perf_counter()
            pipe.execute()
            for visitor, measured in batch_probes:
                probes.put((visitor, "books", t_add, measured))
            sent["probes"] += len(batch_probes)
            sent["behind_s"] = max(sent["behind_s"], time.perf_counter() - started - i / rate)
            i = due
        sent["events"] = i
        sent["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=generate, daemon=True)
    started = time.perf_counter()
    thread.start()
    latencies: list[float] = []
    unseen: list[str] = []
    outstanding: dict[str, tuple[str, float, bool]] = {}
    polls = 0
    with FeatureStore(root / "definitions", online=url) as store:
        while not (done.is_set() and probes.empty() and not outstanding):
            while not probes.empty():
                visitor, category, t_add, measured = probes.get()
                outstanding[visitor] = (category, t_add, measured)
            if not outstanding:
                time.sleep(0.001)
                continue
            keys = [{"user_id": v, "category": c} for v, (c, _, _) in outstanding.items()]
            rows = store.online_features(SERVICE, keys)
            seen = time.perf_counter()
            polls += 1
            for row in rows:
                if (row["views_1h"] or 0) >= 1 and (row["category_views_7d"] or 0) >= 1:
                    _, t_add, measured = outstanding.pop(row["user_id"])
                    if measured:
                        latencies.append(seen - t_add)
            for visitor, (_, t_add, measured) in list(outstanding.items()):
                if seen - t_add > 30:  # never shown: counted, not waited for
                    del outstanding[visitor]
                    if measured:
                        unseen.append(visitor)
            if worker.proc.poll() is not None:
                worker.alive()
            time.sleep(0.001)
    thread.join()
    if sent["error"] is not None:
        raise sent["error"]
    # the worker finishes what the generator sent
    deadline = time.monotonic() + 120
    while not caught_up(client) and time.monotonic() < deadline:
        worker.alive()
        time.sleep(0.05)
    lag_end = time.perf_counter() - started - sent["seconds"]
    final = worker.stop()
    reports = [
        r
        for r in worker.reports
        if r["_t"] - started >= warmup and r["events_per_second"] > 0 and r["freshness_p99_ms"]
    ]
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "events_sent": sent["events"],
        "send_seconds": round(sent["seconds"], 2),
        "generator_max_behind_s": round(sent["behind_s"], 3),
        "probes_measured": len(latencies),
        "probes_never_seen": len(unseen),
        "polls": polls,
        "xadd_to_visible": summary(latencies),
        "drain_seconds_after_last_send": round(lag_end, 2),
        "worker": {
            "events": final.get("events"),
            "batches": final.get("batches"),
            "dead": final.get("dead"),
            # per report period (1 s): entry id time -> commit, as the worker measures it
            "period_p50_ms": [r["freshness_p50_ms"] for r in reports],
            "period_p99_ms": [r["freshness_p99_ms"] for r in reports],
            "median_p50_ms": _median([r["freshness_p50_ms"] for r in reports]),
            "worst_p99_ms": max((r["freshness_p99_ms"] for r in reports), default=None),
            "events_per_second": [r["events_per_second"] for r in reports],
            "waited_for": worker.waits(),
        },
    }


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


# ---- 2. throughput -------------------------------------------------------------------------
def throughput(
    root: Path, online: str | None, url: str, users: int, backlog: int, workers: int, tag: str
) -> dict:
    """A backlog added while no worker runs, then caught up by `workers` started together."""
    import redis

    client = redis.Redis.from_url(url)
    before = _text(client.xinfo_stream(KEY)["last-generated-id"])
    add_s = xadd_backlog(client, backlog, users, tag, seed=len(tag) + workers)
    raw_rate = raw_consume(client, before)
    procs = [WorkerProcess(root, online, report_every=5.0) for _ in range(workers)]
    launched = time.perf_counter()
    first = None
    deadline = time.monotonic() + max(600, backlog / 500)
    while time.monotonic() < deadline:
        for w in procs:
            w.alive()
        g = group_info(client)
        if first is None and g is not None:
            if int(g["pending"]) > 0 or _text(g["last-delivered-id"]) != before:
                first = time.perf_counter()
        if first is not None and caught_up(client):
            break
        time.sleep(0.02)
    else:
        raise SystemExit(f"backlog not caught up in time: {procs[0].output()}")
    finished = time.perf_counter()
    finals = [w.stop() for w in procs]
    rate = backlog / (finished - first)
    client.xtrim(KEY, maxlen=0)  # every entry acknowledged: free the server's memory
    return {
        "workers": workers,
        "backlog": backlog,
        "xadd_pipelined_per_s": round(backlog / add_s),
        "startup_seconds": round(first - launched, 2),
        "catch_up_seconds": round(finished - first, 2),
        "events_per_s": round(rate),
        "events_per_s_per_worker": round(rate / workers),
        "events_per_s_with_startup": round(backlog / (finished - launched)),
        "events_by_worker": [f.get("events") for f in finals],
        "batches_by_worker": [f.get("batches") for f in finals],
        "events_per_s_by_period": [w.rates() for w in procs],  # 5 s periods, per worker
        "waited_for": sorted({m for w in procs for m in w.waits()}),
        "raw_consume_per_s": round(raw_rate),
        "ratio_to_raw": round(rate / raw_rate, 4),
    }


# ---- 3. single-event push ------------------------------------------------------------------
def pushes(root: Path, url: str, users: int, calls: int) -> dict:
    from fsdsl import FeatureStore

    rng = random.Random(3)
    times = []
    with FeatureStore(root / "definitions", online=url) as store:
        for i in range(calls + 5):
            now = utc_now()
            row = {
                "view_id": f"p{i:07d}",
                "visitor_id": user(rng, users),
                "product_id": f"p{rng.randrange(2000):05d}",
                "category": rng.choice(CATEGORIES),
                "dwell_seconds": round(rng.uniform(0, 60), 1),
                "is_mobile": rng.random() < 0.5,
                "viewed_at": now,
            }
            t0 = time.perf_counter()
            store.push(SOURCE, [row])
            if i >= 5:  # warm-up: first connections, compiled texts read
                times.append(time.perf_counter() - t0)
    return summary(times)


# ---- checks --------------------------------------------------------------------------------
def warehouse_counts(root: Path) -> dict:
    """Each streamed or pushed event appended once: rows and distinct ids per id prefix."""
    import duckdb

    con = duckdb.connect(str(root / ".fsc" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT left(view_id, 1), count(*), count(DISTINCT view_id) FROM web.page_views "
            "WHERE view_id NOT LIKE 'v%' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    return {p: {"rows": n, "distinct": d} for p, n, d in rows}


# ---- report --------------------------------------------------------------------------------
def ratios(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(measure, fsc, raw, ratio, target) rows of the printed table."""
    out = []
    raw_x, raw_h = results["raw"]["xadd_xread"], results["raw"]["hset"]
    fr = results["freshness"]["xadd_to_visible"]
    for p, target in (("p50", "<= 50 ms"), ("p95", ""), ("p99", "<= 250 ms")):
        if f"{p}_ms" in fr:
            ours, base = fr[f"{p}_ms"], raw_x[f"{p}_ms"]
            out.append(
                (
                    f"freshness, XADD -> visible, {p}",
                    f"{ours:,.1f} ms",
                    f"{base:,.3f} ms",
                    f"{ours / base:,.0f}x",
                    target,
                )
            )
    w = results["freshness"]["worker"]
    if w["median_p50_ms"] is not None:
        for name, key in (("median p50", "median_p50_ms"), ("worst p99", "worst_p99_ms")):
            out.append((f"  the worker's own, {name} of 1 s", f"{w[key]:,.1f} ms", "", "", ""))
    for t in results["throughput"]:
        n = t["workers"]
        ours = f"{t['events_per_s']:,}/s"
        if n > 1:
            ours += f" ({t['events_per_s_per_worker']:,}/s each)"
        out.append(
            (
                f"catch-up of {t['backlog']:,}, {n} worker{'s' if n > 1 else ''}",
                ours,
                f"{t['raw_consume_per_s']:,}/s",
                f"{t['ratio_to_raw']:.3f}x",
                ">= 20,000/s per worker",
            )
        )
    ps = results["push"]
    for p, target in (("p50", ""), ("p99", "<= 20 ms")):
        ours, base = ps[f"{p}_ms"], raw_h[f"{p}_ms"]
        out.append(
            (
                f"push, 1 event, {p}",
                f"{ours:,.2f} ms",
                f"{base:,.3f} ms",
                f"{ours / base:,.0f}x",
                target,
            )
        )
    return out


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fsc stream / push ({results['setup']['label']})")
    for name in ("measure", "fsc", "raw baseline", "ratio", "target"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in ratios(results):
        table.add_row(*row)
    Console(width=120).print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--users", type=int, default=10_000, help="users in the warehouse")
    p.add_argument("--page-views", type=int, default=200_000, help="page views in the warehouse")
    p.add_argument("--days", type=int, default=7, help="days of history, ending now")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s for freshness")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of freshness load")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--probe-every", type=int, default=20, help="1 probe every N events")
    p.add_argument("--backlog", type=int, default=1_000_000, help="entries per catch-up")
    p.add_argument("--pushes", type=int, default=300, help="single-event push calls")
    p.add_argument("--calls", type=int, default=2000, help="raw baseline round trips")
    p.add_argument("--online", help="a Redis URL with an empty database (default: embedded)")
    p.add_argument("--flush", action="store_true", help="FLUSHDB the --online database first")
    p.add_argument("--keep", action="store_true", help="keep the project folder (printed)")
    p.add_argument("--out", type=Path, default=DATA / "results_stream.json")
    args = p.parse_args()

    import redis

    from fsdsl import FeatureStore

    work = Path(tempfile.mkdtemp(prefix="fsdsl-stream-"))
    embedded = None
    try:
        t0 = time.perf_counter()
        counts = make_project(work, args.users, args.page_views, args.days)
        if args.online:
            client = redis.Redis.from_url(args.online)
            if args.flush:
                client.flushdb()
            elif client.dbsize():
                raise SystemExit(
                    f"--online {args.online}: the database is not empty (pass --flush to empty it)"
                )
            url = args.online
        else:
            with FeatureStore(work / "definitions") as store:
                url = store.online().url  # starts the project's embedded server
            embedded = redis.Redis.from_url(url)
        client = redis.Redis.from_url(url)
        run = fsc(work, args.online, "run", "-f", "json")
        if run.returncode:
            raise SystemExit(f"fsc run failed: {run.stderr}")
        label = f"{args.users:,} users, {args.page_views:,} page views"
        results: dict = {
            "setup": {
                "label": label,
                "users": args.users,
                "page_views": args.page_views,
                "days": args.days,
                "warehouse_rows": counts,
                "setup_seconds": round(time.perf_counter() - t0, 2),
                "first_run_seconds": json.loads(run.stdout)["seconds"],
                "redis": client.info("server")["redis_version"],
                "online": "embedded (unix socket, appendfsync everysec)"
                if embedded
                else args.online,
                "cpus": os.cpu_count(),
                "loadavg_at_start": os.getloadavg(),
            }
        }
        print(f"project {work}: {counts}, first fsc run {results['setup']['first_run_seconds']}s")
        results["raw"] = {
            "xadd_xread": raw_xread_round_trip(url, args.calls),
            "hset": raw_hset(url, args.calls),
        }
        print(f"raw: {results['raw']}")
        results["push"] = pushes(work, url, args.users, args.pushes)
        print(f"push: {results['push']}")
        results["freshness"] = freshness(
            work,
            args.online,
            url,
            args.users,
            args.rate,
            args.seconds,
            args.warmup,
            args.probe_every,
        )
        print(f"freshness: {json.dumps(results['freshness'])}")
        results["throughput"] = []
        for n, tag in ((1, "a"), (2, "b")):
            results["throughput"].append(
                throughput(work, args.online, url, args.users, args.backlog, n, tag)
            )
            print(f"throughput: {results['throughput'][-1]}")
        results["checks"] = {"warehouse": warehouse_counts(work)}
        verify = fsc(work, args.online, "verify", "--sample", "300")
        results["checks"]["verify_exit"] = verify.returncode
        results["checks"]["verify_tail"] = (verify.stdout + verify.stderr)[-400:]
        results["loadavg_at_end"] = os.getloadavg()
    finally:
        for w in WorkerProcess.started_all:
            w.kill()
        if embedded is not None:
            try:
                embedded.shutdown(nosave=True)
            except redis.RedisError:
                pass  # the connection closes as the server stops
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
