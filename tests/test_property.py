"""Property test: the compiled training query equals the brute-force reference on every cell.

Hypothesis writes random feature views (every aggregation, windows, filters, TTLs, derived
features) and random histories (nulls, ties, rows exactly at T, T - W and T - TTL, late rows,
unseen entities) and compares DuckDB with tests/reference.py. The runner is a parameter so the
same test runs on every backend.
"""

from __future__ import annotations

import datetime as dt
import math
import os

import pytest
from conftest import warehouse_url
from duck import training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import training_set
from warehouses import BACKENDS, training_on

from fsdsl import ir
from fsdsl.check import load_text

EXAMPLES = int(os.environ.get("FSDSL_PROPERTY_EXAMPLES", "200"))
BASE = dt.datetime(2024, 1, 1)
WINDOWS = {
    "1h": dt.timedelta(hours=1),
    "1d": dt.timedelta(days=1),
    "2d": dt.timedelta(days=2),
    "90s": dt.timedelta(seconds=90),
}
USERS = ["a", "b", "c"]

COLUMNS = {"amount": "float", "qty": "int", "status": "string", "flag": "bool"}
# Literals are data on every warehouse: `%`, both quotes, a backslash and `:name` appear in the
# values and in the literals that test them (as `.feat` text, `a\\b` is the value `a\b`);
# `%` the operator takes negative dividends and divisors and a zero divisor.
STATUSES = [None, "ok", "OK", "bad", "done", "100%", "it's", "a\\b", ":as_of %(x)s %s"]
NUMERIC = [
    "amount",
    "qty",
    "amount * 2 + qty",
    "case when flag then amount else 0.5 end",
    "qty % (2 - qty)",
    r"case when status = 'a\\b' or status = 'it''s' then -qty % 3 else qty % -2 end",
]
ANY = [
    "amount",
    "qty",
    "status",
    "flag",
    "lower(status)",
    "date_trunc('hour', ts)",
    "(qty - 4) % 3",
    "concat(status, '%', \"'\", ':as_of')",
]
WHERE = [
    None,
    "status != 'bad'",
    "amount > 0 or status is null",
    "qty between 1 and 3",
    "status != '100%'",
    r"status not in ('it\'s', 'a\\b', '%s') or qty % 2 = 1",
    "status in (':as_of %(x)s %s', 'ok', \"100%\")",
]


@st.composite
def aggregation(draw):
    func = draw(
        st.sampled_from(
            [
                "count*",
                "count",
                "count_distinct",
                "sum",
                "avg",
                "min",
                "max",
                "first",
                "last",
                "last_k",
            ]
        )
    )
    if func == "count*":
        return "count(*)"
    if func in ("sum", "avg"):
        arg = draw(st.sampled_from(NUMERIC))
    else:
        arg = draw(st.sampled_from(ANY))
    if func == "last_k":
        return f"last_k({arg}, {draw(st.integers(1, 3))})"
    return f"{func}({arg})"


@st.composite
def view_text(draw):
    created = draw(st.booleans())
    ttl = draw(st.sampled_from([None, "1d", "2d"]))
    where = draw(st.sampled_from(WHERE))
    n = draw(st.integers(1, 5))
    lines, plain, counts = [], [], []
    for i in range(n):
        agg = draw(aggregation())
        window = draw(st.sampled_from([None, "1h", "1d", "2d", "90s"]))
        lines.append(f"  f{i} = {agg}" + (f" over {window}" if window else ""))
        if agg.startswith("count"):
            counts.append(f"f{i}")
        if not agg.startswith(
            (
                "last_k",
                "min(status",
                "max(status",
                "first(status",
                "last(status",
                "min(flag",
                "max(flag",
                "first(flag",
                "last(flag",
                "min(lower",
                "max(lower",
                "first(lower",
                "last(lower",
                "min(date",
                "max(date",
                "first(date",
                "last(date",
                "min(concat",
                "max(concat",
                "first(concat",
                "last(concat",
            )
        ):
            plain.append(f"f{i}")
    if plain and draw(st.booleans()):
        a, b = draw(st.sampled_from(plain)), draw(st.sampled_from(plain))
        lines.append(f"  d0 = {a} / nullif({b}, 0) + coalesce({a}, -1)")
    if counts and draw(st.booleans()):  # `%` of features: counts are ints, small, often 2
        a, b = draw(st.sampled_from(counts)), draw(st.sampled_from(counts))
        lines.append(f"  d1 = ({a} - 3) % ({b} - 2)")
    return events_view(lines, where, ttl, created)


def events_view(lines: list[str], where: str | None, ttl: str | None, created: bool) -> str:
    """A repository of one view `v` over the `events` source, with these feature lines."""
    return f"""
entity user {{ key user_id: string }}
source events {{
  table "events"
  timestamp ts
  {"created created" if created else ""}
  columns {{
    user_id: string
    amount: float
    qty: int
    status: string
    flag: bool
    ts: timestamp
    created: timestamp
  }}
}}
features v {{
  entity user
  from events
  {f"where {where}" if where else ""}
  {f"ttl {ttl}" if ttl else ""}
{chr(10).join(lines)}
}}
"""


moments = st.one_of(
    st.integers(0, 96).map(lambda h: BASE + dt.timedelta(hours=h)),
    st.integers(0, 96 * 60).map(lambda m: BASE + dt.timedelta(minutes=m)),
)


@st.composite
def history(draw):
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        ts = draw(moments)
        delay = draw(
            st.sampled_from(
                [
                    dt.timedelta(0),
                    dt.timedelta(seconds=30),
                    dt.timedelta(hours=30),
                    None,
                    -dt.timedelta(hours=1),
                ]
            )
        )
        rows.append(
            {
                "user_id": draw(st.sampled_from([*USERS, None])),
                "amount": draw(st.sampled_from([None, 0.5, 1.25, 3.0, -2.0, 10.1, 7.0])),
                "qty": draw(st.sampled_from([None, 0, 1, 2, 3, 5])),
                "status": draw(st.sampled_from(STATUSES)),
                "flag": draw(st.sampled_from([None, True, False])),
                "ts": draw(st.sampled_from([ts, None])) if draw(st.integers(0, 19)) == 0 else ts,
                "created": None if delay is None else ts + delay,
            }
        )
    return rows


@st.composite
def labels_for(draw, rows):
    """Label times at, just before/after, and a window or TTL away from the events."""
    times = [r["ts"] for r in rows if r["ts"] is not None] + [
        r["created"] for r in rows if r["created"] is not None
    ]
    out = []
    for _ in range(draw(st.integers(1, 12))):
        if times and draw(st.booleans()):
            base = draw(st.sampled_from(times))
            shift = draw(
                st.sampled_from(
                    [
                        dt.timedelta(0),
                        dt.timedelta(microseconds=1),
                        -dt.timedelta(microseconds=1),
                        *WINDOWS.values(),
                        dt.timedelta(days=3),
                    ]
                )
            )
            t = base + shift
        else:
            t = draw(moments)
        out.append(
            {"user_id": draw(st.sampled_from([*USERS, "unseen", None])), "event_timestamp": t}
        )
    return out


def same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def check(run, text, rows, labels):
    repo, diags = load_text(text)
    assert repo is not None, [d.message for d in diags]
    features = [("v", f.name) for f in repo.views["v"].features]
    label_types = {"user_id": ir.STRING, "event_timestamp": ir.TIMESTAMP}
    got = run(repo, features, {"events": rows}, labels, label_types)
    want = training_set(repo, features, {"events": rows}, labels)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for name, _ in [(f, None) for _, f in features]:
            assert same(g[name], w[name]), (
                f"label {i} {labels[i]} feature {name}: warehouse {g[name]!r} != "
                f"reference {w[name]!r}"
            )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_training_equals_reference(data):
    """DuckDB, in the test's own minimal harness (tests/duck.py)."""
    text = data.draw(view_text(), label="feat")
    rows = data.draw(history(), label="events")
    labels = data.draw(labels_for(rows), label="labels")
    check(training, text, rows, labels)


# The same property through the product's own path (`compute` on a Warehouse) per backend.
# Spark plans each query for a second or two: fewer examples keep it within minutes.
BACKEND_EXAMPLES = {
    "duckdb": EXAMPLES,
    "postgres": EXAMPLES,
    "spark": int(os.environ.get("FSDSL_SPARK_EXAMPLES", "40")),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_equals_reference(backend, warehouse_urls):
    url = warehouse_url(warehouse_urls, backend)

    @settings(
        max_examples=BACKEND_EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def prop(data):
        text = data.draw(view_text(), label="feat")
        rows = data.draw(history(), label="events")
        labels = data.draw(labels_for(rows), label="labels")
        check(training_on(url), text, rows, labels)

    prop()
