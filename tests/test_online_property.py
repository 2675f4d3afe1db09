"""Property test: after every refresh, online values equal the brute-force reference.

Random views (the generator of test_property.py) over histories that grow between refreshes:
appended rows, late rows (old event time, new ingestion time), rows ingested after the refresh
time, stretches with no new data where windows and TTLs expire, occasional `--full` runs. After
each refresh every entity and some unknown keys are compared with tests/reference.py.
"""

from __future__ import annotations

import datetime as dt
import os
import random

import duckdb
import pytest
from conftest import warehouse_url
from duck import load_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import flush
from reference import view_values
from test_property import BASE, STATUSES, USERS, same, view_text
from warehouses import load_events

from fsdsl import FeatureStore
from fsdsl.backends import connect
from fsdsl.check import load_text

EXAMPLES = int(os.environ.get("FSDSL_ONLINE_EXAMPLES", "40"))
KEYS = [*USERS, "never-seen"]
# (user_id, qty): a string and an int key part; `qty` also drawn null and never seen
COMPOSITE_KEYS = [(u, q) for u in USERS for q in (0, 1, 2, 3, 5)] + [("a", None), ("zz", 1)]


def composite(text: str) -> str:
    """The same view over an entity keyed by two columns."""
    one = "entity user { key user_id: string }"
    assert one in text
    return text.replace(one, "entity user { key user_id: string, qty: int }")


def new_rows(
    draw_int, draw_choice, since: dt.datetime, until: dt.datetime, created: bool, n: int
) -> list[dict]:
    """Rows that arrive between two refreshes (ingested in [since, until) or a little later)."""
    span = max(1, int((until - since).total_seconds() // 60))
    rows = []
    for _ in range(n):
        arrival = since + dt.timedelta(minutes=draw_int(0, span + 120))
        if created:
            # late rows: an event time long before it was ingested
            ts = arrival - dt.timedelta(minutes=draw_choice([0, 0, 1, 90, 60 * 30]))
        else:
            ts = arrival
        rows.append(
            {
                "user_id": draw_choice([*USERS, None]),
                "amount": draw_choice([None, 0.5, 1.25, 3.0, -2.0, 10.1, 7.0]),
                "qty": draw_choice([None, 0, 1, 2, 3, 5]),
                "status": draw_choice(STATUSES),
                "flag": draw_choice([None, True, False]),
                "ts": ts,
                "created": arrival if created else None,
            }
        )
    return rows


def refresh_and_compare(
    tmp, text, redis_url, schedule, draw_int, draw_choice, draw_bool, warehouse=None
):
    """`warehouse`: a URL of another backend; by default a DuckDB file in `tmp`."""
    repo, diags = load_text(text + "\nservice s { features v.* }\n")
    assert repo is not None, [d.message for d in diags]
    view = repo.views["v"]
    created = view.source.created is not None
    (tmp / "v.feat").write_text(text + "\nservice s { features v.* }\n")
    db = tmp / "wh.duckdb"
    db.unlink(missing_ok=True)
    flush(redis_url)
    rows: list[dict] = []
    previous = BASE
    for step, at in enumerate(schedule):
        rows += new_rows(draw_int, draw_choice, previous, at, created, draw_int(0, 8))
        if warehouse is None:
            con = duckdb.connect(str(db))
            load_source(con, repo.sources["events"], rows)
            con.close()
        else:
            with connect(warehouse, {}) as wh:
                load_events(wh, repo, {"events": rows})
        url = warehouse or f"duckdb:///{db}"
        names = [k.name for k in view.entity.keys]
        keys = [(k,) for k in KEYS] if len(names) == 1 else COMPOSITE_KEYS
        with FeatureStore(tmp, warehouse=url, online=redis_url) as store:
            store.run(at, full=step > 0 and draw_bool())
            got = store.online_features("s", [dict(zip(names, k, strict=True)) for k in keys])
        for key, served in zip(keys, got, strict=True):
            want = view_values(view, rows, key, at)
            for name, value in want.items():
                assert same(served[name], value), (
                    f"refresh {step} at {at}: {key}.{name} online {served[name]!r} != "
                    f"reference {value!r}"
                )
        previous = at


schedules = st.lists(st.integers(1, 60 * 60), min_size=1, max_size=5).map(
    lambda gaps: [BASE + dt.timedelta(minutes=sum(gaps[: i + 1])) for i in range(len(gaps))]
)


@pytest.mark.parametrize("server", ["embedded", "debian"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_online_equals_reference(server, redis_urls, tmp_path, data):
    if server not in redis_urls:
        pytest.skip(f"no {server} Redis here (set FSDSL_REDIS_URL)")
    text = data.draw(view_text(), label="feat")
    schedule = data.draw(schedules, label="refresh times")
    refresh_and_compare(
        tmp_path,
        text,
        redis_urls[server],
        schedule,
        lambda lo, hi: data.draw(st.integers(lo, hi)),
        lambda xs: data.draw(st.sampled_from(xs)),
        lambda: data.draw(st.integers(0, 4)) == 0,
    )


@settings(
    max_examples=max(10, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_online_equals_reference_with_a_composite_key(redis_urls, tmp_path, data):
    """Keys of two columns, one an int: state merge, key text and lookups per key pair."""
    text = composite(data.draw(view_text(), label="feat"))
    schedule = data.draw(schedules, label="refresh times")
    refresh_and_compare(
        tmp_path,
        text,
        redis_urls["embedded"],
        schedule,
        lambda lo, hi: data.draw(st.integers(lo, hi)),
        lambda xs: data.draw(st.sampled_from(xs)),
        lambda: data.draw(st.integers(0, 4)) == 0,
    )


ONLINE_BACKEND_EXAMPLES = {
    "postgres": EXAMPLES,
    "spark": int(os.environ.get("FSDSL_SPARK_ONLINE_EXAMPLES", "12")),
}


@pytest.mark.parametrize("backend", ["postgres", "spark"])
def test_online_equals_reference_on_other_warehouses(
    backend, warehouse_urls, redis_urls, tmp_path_factory
):
    """The same property with the refresh SQL running on Postgres and on Spark."""
    url = warehouse_url(warehouse_urls, backend)

    @settings(
        max_examples=ONLINE_BACKEND_EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.data())
    def prop(data):
        text = data.draw(view_text(), label="feat")
        schedule = data.draw(schedules, label="refresh times")
        refresh_and_compare(
            tmp_path_factory.mktemp("online"),
            text,
            redis_urls["embedded"],
            schedule,
            lambda lo, hi: data.draw(st.integers(lo, hi)),
            lambda xs: data.draw(st.sampled_from(xs)),
            lambda: data.draw(st.integers(0, 4)) == 0,
            warehouse=url,
        )

    prop()


def test_long_seeded_run(redis_urls, tmp_path):
    """Forty refreshes of a view with every aggregation, windows and a TTL, on one history."""
    rnd = random.Random(20241126)
    text = """
entity user { key user_id: string }
source events {
  table "events"
  timestamp ts
  created created
  columns { user_id: string  amount: float  qty: int  status: string  flag: bool
            ts: timestamp  created: timestamp }
}
features v {
  entity user
  from events
  where status != 'bad'
  ttl 2d
  n_1h = count(*) over 1h
  n_all = count(*)
  s_1d = sum(amount) over 1d
  a_2d = avg(qty) over 2d
  lo = min(amount) over 1d
  hi = max(qty)
  kinds = count_distinct(status) over 2d
  last_a = last(amount)
  first_q = first(qty) over 1d
  recent = last_k(amount, 3)
  recent_1d = last_k(status, 2) over 1d
  ratio = s_1d / nullif(n_1h, 0)
}
"""
    schedule = []
    t = BASE
    for _ in range(40):
        t += dt.timedelta(minutes=rnd.choice([5, 30, 90, 600, 60 * 30]))
        schedule.append(t)
    refresh_and_compare(
        tmp_path,
        text,
        redis_urls["embedded"],
        schedule,
        rnd.randint,
        rnd.choice,
        lambda: rnd.random() < 0.1,
    )


TIMESTAMP_LISTS = """
entity user { key user_id: string }
source events {
  table "events"
  timestamp ts
  columns { user_id: string  amount: float  qty: int  status: string  flag: bool
            ts: timestamp  created: timestamp }
}
features v {
  entity user
  from events
  hours = last_k(date_trunc('hour', ts), 2)
  latest = max(ts) over 1d
}
"""


@pytest.mark.parametrize("backend", ["duckdb", "postgres", "spark"])
def test_timestamps_and_lists_of_them_round_trip(backend, warehouse_urls, redis_urls, tmp_path):
    """Spark returns zone-aware timestamps (found by CI): served values stay naive UTC."""
    url = None if backend == "duckdb" else warehouse_url(warehouse_urls, backend)
    rnd = random.Random(7)
    schedule = [BASE + dt.timedelta(hours=h) for h in (5, 9, 40)]
    refresh_and_compare(
        tmp_path,
        TIMESTAMP_LISTS,
        redis_urls["embedded"],
        schedule,
        rnd.randint,
        rnd.choice,
        lambda: False,
        warehouse=url,
    )
