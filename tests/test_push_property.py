"""Property test: pushed events, interleaved with ticks and `fsc run`, serve the reference.

Random views (the generator of test_property.py: every aggregation, windows from 90 s to days,
TTL, `last_k`, `count_distinct`, `created`), then a random sequence of operations at a
simulated clock that moves by seconds to hours: pushes of small batches (on-time rows, rows
ingested late with an old timestamp, rows whose timestamp lies ahead of the clock, explicit
`created` times), offline pushes, ticks (an incremental run with no new rows: windows and TTLs
move with time alone) and runs (incremental or full). After every operation each entity and a
key never seen are read back with their served `_as_of` τ and compared with the brute-force
reference at τ over every row pushed so far (tests/reference.py).
"""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import pytest
from duck import load_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import flush
from reference import view_values
from test_online_property import KEYS
from test_property import BASE, STATUSES, USERS, same, view_text

from fsdsl import FeatureStore
from fsdsl.check import load_text

EXAMPLES = int(os.environ.get("FSDSL_PUSH_EXAMPLES", "30"))
US = dt.timedelta(microseconds=1)


def row(draw, at: dt.datetime, created: bool) -> dict:
    """One pushed row at clock `at`: on time, late by up to two days, or ahead of the clock."""
    shift = draw(st.sampled_from([0, 0, 0, -1, -30, -90, -3600, -86400 - 7, -2 * 86400, 45, 4000]))
    r = {
        "user_id": draw(st.sampled_from(USERS)),
        "amount": draw(st.sampled_from([None, 0.5, 1.25, 3.0, -2.0, 10.1, 7.0])),
        "qty": draw(st.sampled_from([None, 0, 1, 2, 3, 5])),
        "status": draw(st.sampled_from(STATUSES)),
        "flag": draw(st.sampled_from([None, True, False])),
        "ts": at + dt.timedelta(seconds=shift) - dt.timedelta(microseconds=draw(st.integers(1, 9))),
    }
    if created and draw(st.booleans()):
        # an explicit ingestion time: before the clock, never before the event
        r["created"] = max(r["ts"], at - dt.timedelta(seconds=draw(st.integers(1, 600))))
    return r


def compare(store: FeatureStore, view, rows: list[dict], what: str) -> None:
    names = [k.name for k in view.entity.keys]
    served = store.online_features("s", [{names[0]: k} for k in KEYS], with_as_of=True)
    for key, got in zip(KEYS, served, strict=True):
        tau = got["_as_of_views"]["v"]
        want = view_values(view, rows, (key,), tau)
        for name, value in want.items():
            assert same(got[name], value), (
                f"{what}: {key}.{name} online {got[name]!r} != reference {value!r} at {tau}"
            )


@pytest.mark.parametrize("server", ["embedded", "debian"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_pushes_ticks_and_runs_serve_the_reference(server, redis_urls, tmp_path, data):
    if server not in redis_urls:
        pytest.skip(f"no {server} Redis here (set FSDSL_REDIS_URL)")
    draw = data.draw
    text = draw(view_text(), label="feat") + "\nservice s { features v.* }\n"
    repo, diags = load_text(text)
    assert repo is not None, [d.message for d in diags]
    view = repo.views["v"]
    created = view.source.created is not None
    (tmp_path / "v.feat").write_text(text)
    db = tmp_path / "wh.duckdb"
    db.unlink(missing_ok=True)
    flush(redis_urls[server])
    con = duckdb.connect(str(db))
    load_source(con, repo.sources["events"], [])
    con.close()
    url = f"duckdb:///{db}"
    rows: list[dict] = []
    at = BASE
    with FeatureStore(tmp_path, warehouse=url, online=redis_urls[server]) as store:
        store.run(at)
        ops = draw(
            st.lists(
                st.sampled_from(["push", "push", "push", "offline", "tick", "run", "full"]),
                min_size=1,
                max_size=7,
            ),
            label="operations",
        )
        for step, op in enumerate(ops):
            at += dt.timedelta(seconds=draw(st.sampled_from([1, 20, 75, 600, 3700, 90000])))
            if op in ("push", "offline"):
                batch = [row(draw, at, created) for _ in range(draw(st.integers(1, 5)))]
                mode = "offline" if op == "offline" else "online_and_offline"
                store.push("events", batch, mode=mode, at=at)
                for r in batch:
                    if created and r.get("created") is None:
                        r["created"] = at - US  # what push fills in: accepted just before `at`
                rows += batch
                if op == "offline":
                    continue  # nothing served changed: the next operation applies them
            else:
                store.run(at, full=op == "full")
            compare(store, view, rows, f"step {step} ({op} at {at})")
