"""`store.push` and `fsc push` on the example project, against real Redis and DuckDB: bad rows
are refused whole, every input shape is taken, modes do what they say, a replayed batch is
appended once, and what serves equals the training query at the served time (`verify`)."""

from __future__ import annotations

import datetime as dt
import json
import traceback

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.ingest import BadRows

runner = CliRunner(env={"COLUMNS": "120"})
AT = dt.datetime(2024, 5, 1)


@pytest.fixture()
def project(tmp_path, redis_urls):
    root = example_project(tmp_path, users=200, orders=3000, page_views=3000, labels=10, seed=3)
    url = redis_urls["embedded"]
    flush(url)
    with FeatureStore(root / "definitions", online=url) as store:
        store.run(AT)
    return root, url


def assert_verified(result) -> None:
    """`FeatureStore.verify`: no mismatch, and stored values compared (not only unseen keys)."""
    assert result.ok and result.mismatches == 0, result.to_dict()
    assert result.compared > 0 and not result.skipped, result.to_dict()


def count(root, table: str, where: str = "") -> int:
    con = duckdb.connect(str(root / ".fsc" / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0]
    finally:
        con.close()


def view(i: int, user: str, at: dt.datetime, **extra) -> dict:
    row = {
        "view_id": f"pv-test-{i}",
        "visitor_id": user,
        "product_id": f"p{i}",
        "category": "Shoes",
        "dwell_seconds": 2.5,
        "is_mobile": True,
        "viewed_at": at.isoformat(),
    }
    return {**row, **extra}


BAD = [
    ({"visitor_id": "u1"}, "the timestamp `viewed_at` is missing or null"),
    ({"viewed_at": "2024-05-01T00:00:00", "category": "x"}, "entity key `visitor_id`"),
    ({"visitor_id": "u1", "viewed_at": "2024-05-01T00:00:00", "colour": "red"}, "unknown column"),
    ({"visitor_id": "u1", "viewed_at": "2024-05-01T00:00:00", "dwell_seconds": "slow"}, "float"),
    ({"visitor_id": "u1", "viewed_at": "yesterday"}, "ISO 8601"),
    ({"visitor_id": 42, "viewed_at": "2024-05-01T00:00:00"}, "expected a string"),
    ({"visitor_id": "u1", "viewed_at": "2024-05-01T00:00:00", "is_mobile": "maybe"}, "bool"),
]


@pytest.mark.parametrize(("bad", "why"), BAD)
def test_a_bad_row_refuses_the_whole_batch(project, bad, why):
    root, url = project
    before = count(root, "web.page_views")
    with FeatureStore(root / "definitions", online=url) as store:
        state = store.online().state("user_browsing")
        good = view(1, "u_ok", AT + dt.timedelta(minutes=1))
        with pytest.raises(BadRows) as e:
            store.push("page_views", [good, bad], at=AT + dt.timedelta(minutes=2))
        assert e.value.code == "E0520" and why in str(e.value), str(e.value)
        assert "row 1" in str(e.value)
        assert store.online().state("user_browsing") == state  # nothing served changed
    assert count(root, "web.page_views") == before  # nothing written


def test_pushes_serve_the_training_values(project):
    """On time, late (an old timestamp, no `created`), ahead of the clock, without the second
    view's key part (`category` null: `user_browsing` counts it, the other view does not),
    and `created` filled with the time the push was accepted: after each push, every served
    value equals the training query at the served time."""
    root, url = project
    with FeatureStore(root / "definitions", online=url) as store:
        t = AT
        batches = [
            [view(1, "u_new", t + dt.timedelta(seconds=30))],
            [view(2, "u_new", t - dt.timedelta(days=3)), view(3, "u_new", t, category=None)],
            [view(4, "u_new2", t + dt.timedelta(hours=3))],  # ahead: counts once time passes
            [view(5, "u_new", t - dt.timedelta(minutes=20), category="hats")],
        ]
        for n, batch in enumerate(batches, 1):
            at = AT + dt.timedelta(minutes=n)
            result = store.push("page_views", batch, at=at)
            assert result.as_of == at.isoformat() and result.rows == len(batch)
            assert_verified(store.verify(sample=60))
        got = store.online_features("recommender", {"user_id": "u_new", "category": "shoes"})
        assert got["views_7d"] == 4  # the row without a category counts for the user
        store.run(AT + dt.timedelta(hours=4))  # the row ahead of the clock is visible now
        assert_verified(store.verify(sample=60))
        two = store.online_features("recommender", {"user_id": "u_new2", "category": "shoes"})
        assert two["views_1h"] == 1
        # orders declares `created`: a row without it is stamped with the push's acceptance
        at = AT + dt.timedelta(hours=5)
        store.push(
            "orders",
            [
                {
                    "user_id": "u_buyer",
                    "amount": 12.5,
                    "status": "completed",
                    "event_timestamp": AT.isoformat(),
                }
            ],
            at=at,
        )
        assert_verified(store.verify(sample=60))
        assert store.online_features("churn_model", {"user_id": "u_buyer"})["orders_30d"] == 1
    stamped = count(
        root,
        "orders",
        "WHERE user_id = 'u_buyer' AND created_at < TIMESTAMP "
        f"'{at.isoformat()}' AND created_at > TIMESTAMP '{AT.isoformat()}'",
    )
    assert stamped == 1


def test_every_input_shape(project):
    import pandas as pd

    root, url = project
    rows = [view(i, "u_shape", AT + dt.timedelta(seconds=i)) for i in range(3)]
    typed = [{**r, "viewed_at": dt.datetime.fromisoformat(r["viewed_at"])} for r in rows]
    with FeatureStore(root / "definitions", online=url) as store:
        store.push("page_views", rows[:1], at=AT + dt.timedelta(minutes=1))
        store.push("page_views", pa.Table.from_pylist(typed[1:2]), at=AT + dt.timedelta(minutes=2))
        store.push("page_views", pd.DataFrame(typed[2:]), at=AT + dt.timedelta(minutes=3))
        got = store.online_features("recommender", {"user_id": "u_shape", "category": "shoes"})
        assert got["views_1h"] == 3
        assert_verified(store.verify(sample=40))


def test_modes(project):
    root, url = project
    before = count(root, "web.page_views")
    key = {"user_id": "u_mode", "category": "shoes"}
    with FeatureStore(root / "definitions", online=url) as store:
        r = store.push(
            "page_views", [view(1, "u_mode", AT)], mode="online", at=AT + dt.timedelta(minutes=1)
        )
        assert r.as_of is not None
        assert store.online_features("recommender", key)["views_1h"] == 1
        assert count(root, "web.page_views") == before  # online only: the warehouse never has it

        r = store.push(
            "page_views", [view(2, "u_off", AT)], mode="offline", at=AT + dt.timedelta(minutes=2)
        )
        assert r.as_of is None
        assert count(root, "web.page_views") == before + 1
        off = {"user_id": "u_off", "category": "shoes"}
        assert store.online_features("recommender", off)["views_1h"] is None  # unseen yet
        store.run(AT + dt.timedelta(minutes=3))  # the next run applies it
        assert store.online_features("recommender", off)["views_1h"] == 1


def test_an_offline_push_of_late_rows_is_applied_by_the_next_run(project):
    """Rows with a timestamp before the state's time, appended offline: `fsc run` finds them in
    the pending list and recomputes their entities (an incremental run alone would skip them)."""
    root, url = project
    with FeatureStore(root / "definitions", online=url) as store:
        store.run(AT + dt.timedelta(hours=1))
        late = [view(i, "u_late", AT - dt.timedelta(hours=i)) for i in range(1, 4)]
        store.push("page_views", late, mode="offline")
        store.run(AT + dt.timedelta(hours=2))
        got = store.online_features("recommender", {"user_id": "u_late", "category": "shoes"})
        assert got["views_24h"] == 3
        assert_verified(store.verify(sample=60))


def test_a_replayed_batch_is_appended_once(project):
    root, url = project
    before = count(root, "web.page_views")
    rows = [view(i, "u_replay", AT + dt.timedelta(seconds=i)) for i in range(4)]
    ids = [f"1714521600000-{i}" for i in range(4)]
    with FeatureStore(root / "definitions", online=url) as store:
        store.push("page_views", rows, ids=ids, at=AT + dt.timedelta(minutes=1))
        store.push(
            "page_views",
            rows[2:] + [view(9, "u_replay", AT)],
            ids=ids[2:] + ["x-9"],
            at=AT + dt.timedelta(minutes=2),
        )
        got = store.online_features("recommender", {"user_id": "u_replay", "category": "shoes"})
        assert got["views_1h"] == 5
        assert_verified(store.verify(sample=40))
    assert count(root, "web.page_views") == before + 5


def test_fsc_push_from_files_and_stdin(project, tmp_path):
    root, url = project
    defs = str(root / "definitions")
    before = count(root, "web.page_views")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [view(i, "u_cli", now - dt.timedelta(seconds=i + 1)) for i in range(6)]
    lines = "".join(json.dumps(r) + "\n" for r in rows[:2])
    res = runner.invoke(
        app, ["push", defs, "page_views", "-", "--online", url, "-f", "json"], input=lines
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows"] == 2 and out["_as_of"] is not None
    pq.write_table(pa.Table.from_pylist(rows[2:4]), tmp_path / "rows.parquet")
    csv = tmp_path / "rows.csv"
    csv.write_text(
        ",".join(rows[4])
        + "\n"
        + "\n".join(
            ",".join(str(r[c]).lower() if isinstance(r[c], bool) else str(r[c]) for c in rows[4])
            for r in rows[4:]
        )
        + "\n"
    )
    for f in (tmp_path / "rows.parquet", csv):
        res = runner.invoke(app, ["push", defs, "page_views", str(f), "--online", url])
        assert res.exit_code == 0, res.output
        assert "pushed 2 row(s)" in res.output
    assert count(root, "web.page_views") == before + 6
    with FeatureStore(root / "definitions", online=url) as store:
        got = store.online_features("recommender", {"user_id": "u_cli", "category": "shoes"})
        assert got["views_1h"] == 6

    bad = json.dumps({"visitor_id": "u_cli", "viewed_at": "soon"}) + "\n"
    res = runner.invoke(app, ["push", defs, "page_views", "-", "--online", url], input=bad)
    assert res.exit_code == 2
    assert "E0520" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["push", defs, "nope", "-", "--online", url], input=lines)
    assert res.exit_code == 2 and "E0524" in res.output
    assert count(root, "web.page_views") == before + 6


def test_a_push_takes_few_round_trips(project, monkeypatch):
    """A stream batch is a push: each round trip to Redis costs it a few tenths of a
    millisecond, per view. A small push of `page_views` (two views) takes one to lock both
    views, one to record their pending keys, two to read what both runs start from (their
    states, then what those name), two per view to commit (the lock checked, then the
    MULTI/EXEC) and one to release both locks. Pinned so that a read added per view shows."""
    from redis.connection import AbstractConnection

    root, url = project
    sent: list[str] = []
    send = AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):
        sent.append(traceback.extract_stack(limit=4)[0].name)
        return send(self, *args, **kwargs)

    with FeatureStore(root / "definitions", online=url) as store:
        # the first push loads the scripts into Redis and keeps the aggregate states
        store.push("page_views", [view(1, "u1", AT)], at=AT + dt.timedelta(minutes=1))
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        store.push("page_views", [view(2, "u2", AT)], at=AT + dt.timedelta(minutes=2))
        monkeypatch.undo()
        assert_verified(store.verify(sample=60))
    views = 2
    assert len(sent) == 1 + 1 + 2 + 2 * views + 1, sent


def test_a_kept_state_is_not_used_once_a_run_replaced_it(tmp_path, redis_urls):
    """A pushing process keeps the aggregate state it wrote (no read back per push); a run in
    between rewrites that state (an event left its window), and the next push must start from
    the run's state, not from the copy it kept."""
    text = """
entity user { key user_id: string }
source events {
  table "events"
  timestamp ts
  columns {
    user_id: string
    ts: timestamp
  }
}
features v {
  entity user
  from events
  n = count(*) over 90s
}
service s { features v.* }
"""
    (tmp_path / "v.feat").write_text(text)
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE events (user_id VARCHAR, ts TIMESTAMP)")
    con.close()
    url = redis_urls["embedded"]
    flush(url)
    t = AT
    with FeatureStore(tmp_path, warehouse=f"duckdb:///{db}", online=url) as pusher:
        pusher.run(t)
        pusher.push(
            "events", [{"user_id": "a", "ts": t.isoformat()}], at=t + dt.timedelta(seconds=1)
        )
        with FeatureStore(tmp_path, warehouse=f"duckdb:///{db}", online=url) as runner_:
            runner_.run(t + dt.timedelta(seconds=100))  # a's event left the window
        pusher.push(
            "events",
            [{"user_id": "b", "ts": (t + dt.timedelta(seconds=105)).isoformat()}],
            at=t + dt.timedelta(seconds=110),
        )
        pusher.push(
            "events",
            [{"user_id": "a", "ts": (t + dt.timedelta(seconds=115)).isoformat()}],
            at=t + dt.timedelta(seconds=120),
        )
        got = pusher.online_features("s", [{"user_id": "a"}, {"user_id": "b"}])
    assert [g["n"] for g in got] == [1, 1]


def test_push_on_postgres(tmp_path, redis_urls, warehouse_urls):
    """The same path on Postgres: rows appended in one transaction with their ledger keys (a
    replay appends nothing), late rows recomputed, values equal to the reference at τ; and
    `mode="online"` leaves the table as it was (its transaction is rolled back)."""
    from conftest import warehouse_url
    from reference import view_values
    from test_property import BASE, same
    from warehouses import load_events

    from fsdsl.backends import connect
    from fsdsl.check import load_text

    url = warehouse_url(warehouse_urls, "postgres")
    text = """
entity user { key user_id: string }
source events {
  table "push_events"
  timestamp ts
  columns {
    user_id: string
    amount: float
    ts: timestamp
  }
}
features v {
  entity user
  from events
  ttl 2d
  n_1h = count(*) over 1h
  total = sum(amount)
  last_amount = last(amount)
  recent = last_k(amount, 2) over 1d
}
service s { features v.* }
"""
    (tmp_path / "v.feat").write_text(text)
    repo, _ = load_text(text)
    with connect(url, {}) as wh:
        load_events(wh, repo, {"events": []})
    online = redis_urls["embedded"]
    flush(online)
    rows: list[dict] = []
    with FeatureStore(tmp_path, warehouse=url, online=online) as store:
        store.run(BASE)
        t = BASE
        for n, (user, shift) in enumerate([("a", 0), ("a", -7200), ("b", -30), ("a", -90000)]):
            t += dt.timedelta(minutes=10)
            row = {"user_id": user, "amount": 1.5 * (n + 1), "ts": t + dt.timedelta(seconds=shift)}
            store.push("events", [row], ids=[f"e{n}"], at=t)
            store.push("events", [row], ids=[f"e{n}"], at=t + dt.timedelta(seconds=1))  # replay
            rows.append(row)
            tau = t + dt.timedelta(seconds=1)
            got = store.online_features("s", [{"user_id": "a"}, {"user_id": "b"}])
            for key, served in zip(("a", "b"), got, strict=True):
                for name, value in view_values(repo.views["v"], rows, (key,), tau).items():
                    assert same(served[name], value), (n, key, name, served[name], value)
        store.push(
            "events",
            [{"user_id": "c", "amount": 1.0, "ts": t}],
            mode="online",
            at=t + dt.timedelta(minutes=1),
        )
        assert store.online_features("s", {"user_id": "c"})["total"] == 1.0
    with connect(url, {}) as wh:
        assert wh.execute_sql('SELECT count(*) AS n FROM "push_events"')["n"][0].as_py() == 4


def test_a_stream_worker_takes_its_consumer_name(project):
    """`FeatureStore.stream(consumer=...)` (`fsc stream --consumer`): the name the group knows
    the worker by, the one a restarted worker resumes its unacknowledged entries under."""
    root, url = project
    with FeatureStore(root / "definitions", online=url) as store:
        client = store.online().client
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        fields = {k: str(v) for k, v in view(1, "u_named", now - dt.timedelta(seconds=1)).items()}
        client.xadd("fsc:stream:page_views", fields)
        report = store.stream(["page_views"], consumer="worker-7", until_idle=True)
        assert report.events == 1
        names = {c["name"] for c in client.xinfo_consumers("fsc:stream:page_views", "fsc")}
        assert names == {b"worker-7"} or names == {"worker-7"}
        got = store.online_features("recommender", {"user_id": "u_named", "category": "shoes"})
        assert got["views_1h"] == 1
