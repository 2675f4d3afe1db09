"""The run lock of a view: held for the whole run (a query longer than the lock period
included), renewed and released only by its owner, and a run that lost it commits nothing."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import pytest
import redis
from redis_servers import flush

from fsdsl.backends import connect
from fsdsl.backends.duckdb import DuckDBWarehouse
from fsdsl.check import load_repository
from fsdsl.diagnostics import UsageError
from fsdsl.online.refresh import refresh_view
from fsdsl.online.store import OnlineStore

ROOT = Path(__file__).resolve().parents[1]
AT = dt.datetime(2024, 5, 1)
PERIOD = 1.0  # the lock period of these tests, in seconds
KEY = "fsdsl:lock:user_orders"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    from fsdsl.demo import generate

    root = tmp_path_factory.mktemp("locked")
    shutil.copytree(ROOT / "definitions", root / "definitions")
    (root / ".fsc").mkdir()
    generate(root / ".fsc" / "warehouse.duckdb", users=200, orders=3000, page_views=100, seed=4)
    return root


class SlowWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, whose refresh query takes `delay` seconds longer: a query
    longer than the lock period, for real (Redis is not mocked, time really passes)."""

    delay = 3.5 * PERIOD
    started = threading.Event()

    def execute_sql(self, sql, params=None):
        if params and "as_of" in params:  # the refresh query, not the empty row's
            self.started.set()
            time.sleep(self.delay)
        return super().execute_sql(sql, params)


def _warehouse(project: Path, slow: bool = False):
    wh = connect(f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}")
    if slow:
        wh.__class__ = SlowWarehouse
        wh.started = threading.Event()
    return wh


def _store(url: str) -> OnlineStore:
    online = OnlineStore(url)
    online.lock_seconds = PERIOD
    return online


def _background_run(project: Path, url: str):
    repo, _ = load_repository(project / "definitions")
    wh = _warehouse(project, slow=True)
    outcome: dict = {}

    def work():
        try:
            outcome["run"] = refresh_view(repo, repo.views["user_orders"], wh, _store(url), AT)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert wh.started.wait(30), outcome
    return repo, thread, outcome


def test_a_slow_query_keeps_the_lock_and_a_second_run_is_refused(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    repo, thread, outcome = _background_run(project, url)
    held = client.get(KEY)
    assert held is not None
    time.sleep(2.5 * PERIOD)  # well past the lock period, still inside the slow query
    assert client.get(KEY) == held, "the lock expired during the query"
    wh = _warehouse(project)
    with pytest.raises(UsageError) as refused:
        refresh_view(repo, repo.views["user_orders"], wh, _store(url), AT)
    assert refused.value.code == "E0506"
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["run"].entities_written > 0
    assert client.get(KEY) is None  # released by its owner at the end
    assert client.hget("fsdsl:state:user_orders", "as_of").decode() == AT.isoformat()


def test_a_run_that_lost_its_lock_commits_nothing(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    _repo, thread, outcome = _background_run(project, url)
    # the lock is lost (as if it expired and another run took it) while the query runs
    client.set(KEY, "elsewhere:1:another-run", px=int(30 * PERIOD * 1000))
    thread.join(60)
    error = outcome.get("error")
    assert isinstance(error, UsageError), outcome
    assert error.code == "E0515" and "lock" in str(error), error
    assert not client.exists("fsdsl:state:user_orders")  # nothing committed
    assert client.get(KEY) == b"elsewhere:1:another-run"  # the other run's lock is left alone


def test_only_the_owner_renews_or_releases_the_lock(redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    assert store.lock("v", "a", seconds=10)
    assert not store.lock("v", "b", seconds=10)
    held = client.get("fsdsl:lock:v")
    assert not store.unlock("v", "b")
    assert client.get("fsdsl:lock:v") == held  # not deleted by a non-owner
    assert not store.keep_lock("v", "b", seconds=100)
    assert client.pttl("fsdsl:lock:v") <= 10_000  # not extended by a non-owner
    assert store.keep_lock("v", "a", seconds=100)
    assert client.pttl("fsdsl:lock:v") > 10_000
    assert store.unlock("v", "a")
    assert client.get("fsdsl:lock:v") is None
    assert not store.keep_lock("v", "a", seconds=100)  # gone: renewing does not recreate it
    assert client.get("fsdsl:lock:v") is None


def test_a_push_takes_its_locks_together_or_in_order(redis_urls):
    """A push's views' locks: all free, taken in one step and released together; one held by
    another run, taken one by one in name order, waiting for it (never holding a lock past
    it meanwhile: two pushes never wait for each other in a cycle), and on giving up none of
    ours is left held, and the other run's lock is left alone."""
    from fsdsl.online.runlock import hold_all

    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    views = ["a", "b", "c"]
    with hold_all(store, views, "me") as locks:
        assert [lock.view for lock in locks] == views
        assert all(client.get(f"fsdsl:lock:{v}") for v in views)
        assert not store.lock("b", "other", seconds=10)
    assert not client.keys("fsdsl:lock:*")

    assert store.lock("b", "other", seconds=10)
    seen = []
    with pytest.raises(UsageError) as e:
        with hold_all(store, views, "me", wait=0.2):
            pass
    assert e.value.code == "E0506"
    assert client.keys("fsdsl:lock:*") == [b"fsdsl:lock:b"]  # a released, c never taken
    assert store.unlock("b", "other")

    assert store.lock("b", "other", seconds=10)
    threading.Timer(0.3, store.unlock, ("b", "other")).start()
    with hold_all(store, views, "me", wait=5, waiting=seen.append):
        assert seen and all(store.keep_lock(v, "me") for v in views)
    assert not client.keys("fsdsl:lock:*")


def test_pending_keys_are_recorded_for_all_views_or_none(redis_urls):
    """A push records its pending keys only while it holds every view's lock: one lost, none
    is recorded (LockLost), so no list holds keys of rows that will not be appended."""
    from fsdsl.online.store import LockLost

    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    store = OnlineStore(url)
    assert store.lock_all(["a", "b"], "me")
    store.add_pending_all({"a": b"1", "b": b"2"}, "me")
    assert client.lrange("fsdsl:pending:a", 0, -1) == [b"1"]
    assert client.lrange("fsdsl:pending:b", 0, -1) == [b"2"]
    client.set("fsdsl:lock:b", "someone else")
    with pytest.raises(LockLost) as e:
        store.add_pending_all({"a": b"3", "b": b"4"}, "me")
    assert e.value.view == "b"
    assert client.llen("fsdsl:pending:a") == 1 and client.llen("fsdsl:pending:b") == 1
    assert not store.lock_all(["a", "b"], "me")  # b is held: a is not taken either
    assert store.unlock_all(["a", "b"], "me") == 1  # a, ours; b, not ours, left alone
    assert client.get("fsdsl:lock:b") == b"someone else"


def _served(client: redis.Redis) -> dict:
    """Every stored value of the view, as readers see them."""
    return {
        key: client.get(key) if client.type(key) == b"string" else client.hgetall(key)
        for key in client.scan_iter(match="fsdsl:*")
        if not key.startswith((b"fsdsl:lock:", b"fsdsl:retired"))
    }


def test_an_incremental_run_that_lost_its_lock_leaves_the_served_values_alone(project, redis_urls):
    """The lock is taken by another run during the slow query, long before the renewal thread
    would notice (its period is far longer than the query): not one batch is written in place
    into the serving namespace, and the values served are still those of the previous run."""
    from fsdsl.verify import verify

    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    repo, _ = load_repository(project / "definitions")
    before_at = dt.datetime(2024, 4, 20)
    first = _warehouse(project)
    refresh_view(repo, repo.views["user_orders"], first, _store(url), before_at)
    first.close()
    served = _served(client)
    wh = _warehouse(project, slow=True)
    wh.delay = 1.5
    online = OnlineStore(url)
    online.lock_seconds = 30.0  # renewed every 10 s: not once during the query
    outcome: dict = {}

    def work():
        try:
            outcome["run"] = refresh_view(repo, repo.views["user_orders"], wh, online, AT)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert wh.started.wait(30), outcome
    client.set(KEY, "elsewhere:1:another-run", px=60_000)
    thread.join(60)
    error = outcome.get("error")
    assert isinstance(error, UsageError) and error.code == "E0515", outcome
    assert _served(client) == served
    assert client.hget("fsdsl:state:user_orders", "as_of").decode() == before_at.isoformat()
    assert "nothing was written" in str(error), error
    client.delete(KEY)
    checked = verify(repo, [repo.views["user_orders"]], wh, OnlineStore(url), 300, None)
    assert checked.ok and checked.compared > 0, checked.to_dict()


def test_a_full_run_that_lost_its_lock_leaves_no_namespace_behind(project, redis_urls):
    """The new namespace it was writing is never served: it is retired at once, so that the
    next run (or `drop_retired`) removes it rather than leaving it in Redis forever."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    _repo, thread, outcome = _background_run(project, url)
    client.set(KEY, "elsewhere:1:another-run", px=int(30 * PERIOD * 1000))
    thread.join(60)
    error = outcome.get("error")
    assert isinstance(error, UsageError) and error.code == "E0515", outcome
    retired = [ns.decode() for ns in client.hkeys("fsdsl:retired")]
    assert len(retired) == 1 and retired[0].startswith("user_orders:"), retired
    assert "never served" in str(error), error
    OnlineStore(url).drop_retired(wait=True)
    assert [k for k in client.scan_iter(match="fsdsl:*") if not k.startswith(b"fsdsl:lock")] == []
