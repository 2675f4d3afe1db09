"""`fsc stream` (issue #11): the worker against a real Redis and a real DuckDB file.

Workers run as real processes (`python -m fsdsl.cli stream ... --format json`) wherever the test
needs a process — a signal, a kill -9, two workers, a Redis restart — and in-process
(`Worker(...).run(until_idle=True)`) where it does not. Each test ends on the same exactness
checks: every streamed event is in the warehouse exactly once (counted by its `view_id`), no
entry is left pending, and `fsc verify` finds the online values equal to the training query.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import redis
from projects import example_project
from redis_servers import Server
from test_property import same
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.online.stream import CLAIM_IDLE_MS, DEAD_PREFIX, GROUP, Worker

SOURCE = "page_views"
KEY = f"fsc:stream:{SOURCE}"
STREAMED = {"user_browsing", "user_category_browsing"}
ALL_VIEWS = STREAMED | {"user_orders", "device_owner"}
USERS = 200
CATEGORIES = ["electronics", "books", "home", "garden", "toys"]
runner = CliRunner(env={"COLUMNS": "120"})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class Env:
    root: Path
    server: Server

    @property
    def defs(self) -> str:
        return str(self.root / "definitions")

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self) -> Path:
        return self.root / ".fsc" / "warehouse.duckdb"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.server.sock))

    def store(self) -> FeatureStore:
        return FeatureStore(self.defs, online=self.url)


@pytest.fixture
def env(tmp_path) -> Env:
    """A small example project whose history ends now (so that windows and TTLs hold live
    entities), refreshed once, with a private Redis (appendonly, fsync always) of its own."""
    start = utc_now().replace(microsecond=0) - dt.timedelta(days=2)
    example_project(
        tmp_path, users=USERS, orders=500, page_views=3000, labels=10, seed=11, start=start, days=2
    )
    server = Server(tmp_path / "redis").start()
    e = Env(tmp_path, server)
    try:
        with e.store() as store:
            store.run()
        yield e
    finally:
        for worker in WorkerProcess.started:  # a failed test's workers: never left running
            if worker.proc.poll() is None:
                worker.kill()
        WorkerProcess.started.clear()
        server.kill()


# ---- events --------------------------------------------------------------------------------
def event(i: int, now: dt.datetime, rng: random.Random) -> dict[str, str]:
    """One page view as a stream entry: texts, as JSON lines would carry them. Most are recent
    (within the hour windows), some arrive a day late, a few lack optional columns."""
    late = rng.random() < 0.05
    age = (
        dt.timedelta(hours=rng.uniform(20, 30))
        if late
        else dt.timedelta(seconds=rng.uniform(0, 5400))
    )
    fields = {
        "view_id": f"s{i:07d}",
        "visitor_id": f"u{rng.randrange(USERS):06d}",
        "product_id": f"p{rng.randrange(300):05d}",
        "category": rng.choice(CATEGORIES),
        "dwell_seconds": f"{rng.uniform(0, 30):.1f}",
        "is_mobile": rng.choice(["true", "false"]),
        "viewed_at": (now - age).isoformat(),
    }
    if rng.random() < 0.03:
        del fields["dwell_seconds"]  # a column left out is null
    return fields


def xadd_events(client: redis.Redis, first: int, n: int, seed: int = 0) -> list[str]:
    """XADD `n` events with ids `s<first>`..., in pipelined chunks; returns their view ids."""
    rng, now = random.Random(seed), utc_now()
    ids = []
    pipe = client.pipeline(transaction=False)
    for i in range(first, first + n):
        fields = event(i, now, rng)
        ids.append(fields["view_id"])
        pipe.xadd(KEY, fields)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    return ids


# ---- workers as processes ------------------------------------------------------------------
class WorkerProcess:
    """`fsc stream --format json` in a process of its own, its reports collected as they come."""

    started: list[WorkerProcess] = []

    def __init__(self, e: Env, *args: str, consumer: str | None = None):
        environ = dict(os.environ)
        if consumer is not None:
            environ["FSC_STREAM_CONSUMER"] = consumer
        cmd = [sys.executable, "-m", "fsdsl.cli", "stream", e.defs, "--source", SOURCE]
        cmd += ["--online", e.url, "--format", "json", "--report-every", "0.3", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
        )
        WorkerProcess.started.append(self)
        self.reports: list[dict] = []
        self.stderr: list[str] = []
        self._new: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            report = json.loads(line)
            self.reports.append(report)
            self._new.put(report)

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    @property
    def last(self) -> dict:
        return self.reports[-1] if self.reports else {}

    def wait_for(self, ok, timeout: float, what: str) -> dict:
        """The first report (from now on, or already seen) that satisfies `ok`."""
        for r in self.reports:
            if ok(r):
                return r
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = self._new.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"worker exited: {self.output()}"
                continue
            if ok(r):
                return r
        raise AssertionError(f"no report {what} within {timeout}s: {self.output()}")

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        time.sleep(0.05)  # the reader thread takes the last lines
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()  # reaped: a dead pid's lock is taken over at once, a zombie's is not

    def output(self) -> str:
        return f"reports {self.reports[-3:]}, stderr {''.join(self.stderr)[-2000:]}"


# ---- end-state checks ----------------------------------------------------------------------
def warehouse_counts(e: Env) -> dict[str, int]:
    """How many times each streamed event (view id `s...`) is in the warehouse."""
    con = duckdb.connect(str(e.db), read_only=True)
    try:
        rows = con.execute(
            "SELECT view_id, count(*) FROM web.page_views WHERE view_id LIKE 's%' GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def pending(client: redis.Redis, group: str = GROUP) -> int:
    return client.xpending(KEY, group)["pending"]


def unread(client: redis.Redis, group: str = GROUP) -> int:
    """Entries the group has not been given yet (Redis 6 has no `lag` in XINFO GROUPS)."""
    (info,) = [g for g in client.xinfo_groups(KEY) if g["name"].decode() == group]
    last = info["last-delivered-id"].decode()
    return len(client.xrange(KEY, min=f"({last}", max="+"))


def assert_exact(e: Env, ids: list[str], group: str = GROUP) -> None:
    """Every event once in the warehouse, nothing pending, online == training."""
    counts = warehouse_counts(e)
    missing = [i for i in ids if i not in counts]
    doubled = {i: n for i, n in counts.items() if n != 1}
    assert not missing and not doubled, (
        f"{len(missing)} events missing (e.g. {missing[:3]}), {len(doubled)} counted more than "
        f"once (e.g. {list(doubled.items())[:3]})"
    )
    assert len(counts) == len(ids)
    client = e.client()
    assert pending(client, group) == 0
    assert unread(client, group) == 0
    r = runner.invoke(app, ["verify", e.defs, "--online", e.url, "--sample", "500", "-f", "json"])
    assert_verified(r, ALL_VIEWS, sampled=20)


# ---- 1. dead letters -----------------------------------------------------------------------
def test_bad_entries_go_to_dead_letters_and_good_ones_are_applied(env):
    client = env.client()
    now = utc_now()
    good = {
        "view_id": "s-good-1",
        "visitor_id": "u000007",
        "product_id": "p1",
        "category": "books",
        "dwell_seconds": "4.5",
        "is_mobile": "true",
        "viewed_at": (now - dt.timedelta(seconds=5)).isoformat(),
    }
    bad = {
        "missing key": {k: v for k, v in good.items() if k != "visitor_id"}
        | {"view_id": "s-bad-1"},
        "timestamp": good | {"view_id": "s-bad-2", "viewed_at": "yesterday at noon"},
        "type": good | {"view_id": "s-bad-3", "dwell_seconds": "long"},
        "unknown column": good | {"view_id": "s-bad-4", "colour": "red"},
    }
    good2 = good | {"view_id": "s-good-2", "visitor_id": "u000008", "category": "toys"}
    # the bad ones share the batch with the good ones, before and after them
    order = [bad["missing key"], good, bad["timestamp"], bad["type"], good2, bad["unknown column"]]
    entry_ids = [client.xadd(KEY, f).decode() for f in order]
    before = signal.getsignal(signal.SIGTERM)
    with env.store() as store:
        report = Worker(store, [SOURCE]).run(until_idle=True)
        assert signal.getsignal(signal.SIGTERM) is before, "the worker left its signal handler"
        served = store.online_features(
            "recommender",
            [
                {"user_id": "u000007", "category": "books"},
                {"user_id": "u000008", "category": "toys"},
            ],
        )
    assert (report.events, report.dead, report.batches) == (2, 4, 1)
    assert served[0]["last_view_at"] == dt.datetime.fromisoformat(good["viewed_at"])
    assert served[1]["last_category"] == "toys"
    assert set(warehouse_counts(env)) == {"s-good-1", "s-good-2"}
    dead = client.xrange(f"{DEAD_PREFIX}{SOURCE}")
    assert len(dead) == 4
    letters = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in dead]
    reasons = [d.pop("_reason") for d in letters]
    assert "visitor_id" in reasons[0] and "missing" in reasons[0]
    assert "viewed_at" in reasons[1] and "timestamp" in reasons[1]
    assert "dwell_seconds" in reasons[2] and "not a float" in reasons[2]
    assert "unknown column `colour`" in reasons[3]
    assert [d.pop("_id") for d in letters] == [entry_ids[i] for i in (0, 2, 3, 5)]
    assert {d.pop("_stream") for d in letters} == {KEY}
    assert letters == [bad["missing key"], bad["timestamp"], bad["type"], bad["unknown column"]]
    assert pending(client) == 0


def test_a_retried_batch_dead_letters_its_bad_entries_once(env):
    """The warehouse is busy (another process writes the DuckDB file longer than the worker's
    `lock_timeout`): the batch is retried with back-off, and its bad entry is kept once."""
    client = env.client()
    now = utc_now().isoformat()
    fields = {"view_id": "s1", "visitor_id": "u000001", "category": "books", "viewed_at": now}
    client.xadd(KEY, fields)
    client.xadd(KEY, fields | {"view_id": "s2", "viewed_at": "not a time"})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(env.db), "2.0"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    waits: list[str] = []
    url = f"duckdb:///{env.db}?lock_timeout=0.2"
    with FeatureStore(env.defs, warehouse=url, online=env.url) as store:
        worker = Worker(store, [SOURCE], on_report=lambda r: waits.append(r.waiting))
        report = worker.run(until_idle=True)
    assert holder.wait(30) == 0
    assert any(w and "waiting for the warehouse" in w for w in waits), waits
    assert (report.events, report.dead) == (1, 1)
    assert client.xlen(f"{DEAD_PREFIX}{SOURCE}") == 1
    assert set(warehouse_counts(env)) == {"s1"}
    assert pending(client) == 0


# Opens the DuckDB file for writing and holds it for a while (another writer: a push, `fsc run`
# of another tool), saying when it has it.
HOLD_FILE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


# ---- 2. SIGTERM ----------------------------------------------------------------------------
def test_sigterm_finishes_and_acknowledges_the_batch_then_exits_0(env):
    client = env.client()
    ids = xadd_events(client, 0, 40_000)
    worker = WorkerProcess(env, "--batch", "4000")
    worker.wait_for(lambda r: r["events"] > 0, 60, "with events")
    assert worker.terminate() == 0, worker.output()
    final = worker.last
    assert 0 < final["events"] < len(ids), final  # stopped mid-stream, after a whole batch
    assert pending(client) == 0
    applied = warehouse_counts(env)
    assert len(applied) == final["events"] and set(applied.values()) == {1}
    # what it did not read is still there for the next worker
    assert unread(client) == len(ids) - final["events"]


# ---- 3. two workers ------------------------------------------------------------------------
def test_two_workers_share_the_work_and_count_every_event_once(env):
    client = env.client()
    ids = xadd_events(client, 0, 30_000)
    workers = [WorkerProcess(env, "--batch", "1000") for _ in range(2)]
    try:
        for w in workers:
            w.wait_for(lambda r: r["lag"].get(SOURCE) == 0 and r["events"] > 0, 120, "caught up")
    finally:
        rcs = [w.terminate() for w in workers]
    assert rcs == [0, 0], [w.output() for w in workers]
    shares = [w.last["events"] for w in workers]
    assert all(n > 0 for n in shares), shares
    assert sum(shares) >= len(ids)
    assert_exact(env, ids)


# ---- 4. kill -9 ----------------------------------------------------------------------------
def test_kill_9_at_random_points_loses_and_doubles_nothing(env):
    """20 SIGKILLs at random points of a 200k-event run, each followed by a restart under the
    same consumer name (FSC_STREAM_CONSUMER), which resumes its own pending entries at once
    rather than after CLAIM_IDLE_MS."""
    client = env.client()
    started = time.monotonic()
    ids = xadd_events(client, 0, 200_000, seed=4)
    rng = random.Random(20)
    applied_before_kill, left_pending = [], []
    for k in range(20):
        worker = WorkerProcess(env, "--batch", "10000", consumer="w1")
        if k % 2:  # anywhere in its life: start-up (about 1 s), reading, a batch
            time.sleep(rng.uniform(0.3, 2.0))
        else:  # once it has applied a batch, wherever it is then (on a loaded machine too)
            worker.wait_for(
                lambda r: r["batches"] > 0 or r["lag"].get(SOURCE) == 0, 60, "after a batch"
            )
            time.sleep(rng.uniform(0, 0.8))
        assert worker.proc.poll() is None, worker.output()
        worker.kill()
        applied_before_kill.append(worker.last.get("events", 0))
        left_pending.append(pending(client))
    # the kills hit workers at work: some had applied batches, some held one unacknowledged
    assert sum(applied_before_kill) > 0 and max(left_pending) > 0, (
        applied_before_kill,
        left_pending,
    )
    # and, whatever the last kill hit, a batch read under that name and never acknowledged
    ids += xadd_events(client, len(ids), 1000, seed=5)
    client.xreadgroup(GROUP, "w1", {KEY: ">"}, count=1000)
    assert pending(client) >= 1000
    restarted = time.monotonic()
    worker = WorkerProcess(env, "--batch", "10000", consumer="w1")
    worker.wait_for(lambda r: r["lag"].get(SOURCE) == 0, 120, "with the stream drained")
    drained = time.monotonic() - restarted
    assert worker.terminate() == 0, worker.output()
    assert_exact(env, ids)
    assert drained < CLAIM_IDLE_MS / 1000, f"the last worker took {drained:.1f}s to drain"
    elapsed = time.monotonic() - started
    assert elapsed < 180, f"took {elapsed:.0f}s"  # about 60 s here; more is a wait gone wrong


# ---- 5. Redis restart ----------------------------------------------------------------------
def test_a_redis_restart_mid_stream_is_waited_for_and_loses_nothing(env):
    client = env.client()
    ids = xadd_events(client, 0, 20_000)
    worker = WorkerProcess(env, "--batch", "1000")
    worker.wait_for(lambda r: r["events"] > 0, 60, "with events")
    env.server.stop()
    worker.wait_for(lambda r: r["waiting"], 30, "saying what it waits for")
    time.sleep(1.5)  # a few retries, with back-off
    env.server.start()
    client = env.client()
    more = xadd_events(client, len(ids), 5000, seed=2)
    worker.wait_for(
        lambda r: (
            r["lag"].get(SOURCE) == 0 and r["events"] >= len(ids) + len(more) and not r["waiting"]
        ),
        90,
        "with every event applied",
    )
    assert worker.terminate() == 0, worker.output()
    waits = {r["waiting"] for r in worker.reports if r["waiting"]}
    assert any("waiting for" in w and "retrying in" in w for w in waits), waits
    assert_exact(env, ids + more)


# ---- 6. side by side -----------------------------------------------------------------------
def test_training_sets_and_runs_work_while_the_worker_streams(env):
    client = env.client()
    ids = xadd_events(client, 0, 10_000)
    worker = WorkerProcess(env, "--batch", "500", "--tick", "0.2")
    worker.wait_for(lambda r: r["events"] > 0, 60, "with events")
    now = utc_now()
    labels = pa.table(
        {
            "user_id": [f"u{i:06d}" for i in range(USERS)],
            "category": [CATEGORIES[i % len(CATEGORIES)] for i in range(USERS)],
            "event_timestamp": pa.array([now] * USERS, pa.timestamp("us")),
        }
    )
    try:
        for round_ in range(3):
            more = xadd_events(client, len(ids), 2000, seed=10 + round_)
            ids += more
            with FeatureStore(env.defs, online=env.url) as store:
                train = store.training_set(labels, service="recommender")
            assert train.num_rows == USERS
            r = runner.invoke(app, ["run", env.defs, "--online", env.url, "-f", "json"])
            assert r.exit_code == 0, r.output
        assert worker.proc.poll() is None, worker.output()
        worker.wait_for(
            lambda r: r["lag"].get(SOURCE) == 0 and r["events"] >= len(ids), 90, "caught up"
        )
    finally:
        assert worker.terminate() == 0, worker.output()
    assert_exact(env, ids)


# ---- 7. batch and stream agree -------------------------------------------------------------
def served_values(e: Env) -> list[dict]:
    keys = [{"user_id": f"u{u:06d}", "category": c} for u in range(USERS) for c in CATEGORIES]
    with e.store() as store:
        return store.online_features("recommender", keys)


def test_runs_after_streaming_leave_every_value_unchanged(env):
    client = env.client()
    ids = xadd_events(client, 0, 5000)
    with env.store() as store:
        report = Worker(store, [SOURCE], batch=700).run(until_idle=True)
        assert report.events == len(ids)
        states = {v: store.online().state(v)["as_of"] for v in STREAMED}
    (tau,) = set(states.values())
    before = served_values(env)
    for full in ([], ["--full"]):
        r = runner.invoke(
            app,
            ["run", env.defs, "--online", env.url, "--at", tau, "-f", "json"]
            + ["-v", "user_browsing", "-v", "user_category_browsing", *full],
        )
        assert r.exit_code == 0, r.output
        modes = {v["mode"] for v in json.loads(r.output)["views"]}
        assert modes == {"full" if full else "incremental"}
        after = served_values(env)
        # floats as verify compares them: a sum kept incrementally and one recomputed in full
        # add in another order (the last bit may differ)
        changed = [
            (b, a)
            for b, a in zip(before, after, strict=True)
            if a.keys() != b.keys() or not all(same(a[k], b[k]) for k in a)
        ]
        assert not changed, f"{len(changed)} entities changed by `fsc run {full}`: {changed[:2]}"
    assert_exact(env, ids)


def test_the_command_line_reads_batches_as_large_as_the_library():
    """`fsc stream --batch` defaults to the worker's own BATCH (catch-up speed depends on it)."""
    import inspect

    from fsdsl import cli
    from fsdsl.online.stream import BATCH

    assert inspect.signature(cli.stream).parameters["batch"].default == BATCH
