"""Float sums over adversarial magnitudes, under every strategy and on every backend (#10).

A window's sum read as a difference of prefix sums subtracts two partial sums of the entity's
whole history: after one 1e12 the prefixes carry about 1e-4 of rounding error, more than a
window of 1e-6 amounts holds. These tests feed such histories (magnitudes from 1e-6 to 1e12 in
one entity's history, thousands of events per entity, +1e12 -1e12 +0.5, many tiny amounts after
a huge one that later leaves the window, negative zeros, windows whose exact sum is 0) to
`sum`, `avg` and `count`, windowed and not, with and without `created`, and compare each cell
with tests/reference.py (`math.fsum`: the correctly rounded sum; checked against `Fraction`
below) under every strategy that applies: on DuckDB the range join, the prefix sums (no late
rows) and the planner's choice, the running sums for unwindowed aggregations; on Postgres and
Spark the planner's choice through the product's `compute` path.

The tolerance. The product compares floats to 1e-9 relative (`math.isclose(rel_tol=1e-9,
abs_tol=1e-12)` in tests/test_property.py and fsdsl/verify.py), relative to the value. That
rule asks too much where the window's own terms cancel (no summation in double precision gets
+1e12 + 1e-6 - 1e12 to 1e-9 of 1e-6) and too little where the values are tiny (an absolute
1e-12 hides every error in a window of 1e-6 amounts). So these tests use the numerical
analyst's rule, the one a backward-stable sum of the window's own terms meets:

    |computed - exact| <= 1e-9 * sum(|x| for x in the window's terms)      for `sum`
    |computed - exact| <= 1e-9 * sum(|x| for x in the window's terms) / n  for `avg`

with `exact` the correctly rounded value (the reference), no absolute slack (a window of only
zeros must give 0), counts and integer sums exact. Where the window's terms have one sign the
rule is the product's relative 1e-9 (sum |x| = |sum x|). What it excludes is an error scaled by
the rest of the history: a window sum may not inherit the rounding of the events before it.
The sign of a zero sum is not part of the contract (the reference's `fsum` gives +0.0 for a sum
of negative zeros): a zero compares equal to a zero.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import random
from fractions import Fraction

import pytest
from conftest import warehouse_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import delta, evaluate, training_set, visible_rows
from test_strategies import forced
from warehouses import training_on

from fsdsl import ir
from fsdsl.check import load_text
from fsdsl.compile.pit import PREFIX, RANGE_JOIN

TOLERANCE = 1e-9
EXAMPLES = int(os.environ.get("FSDSL_PROPERTY_EXAMPLES", "200")) // 10

FEATURES = """
  s_1h = sum(amount) over 1h
  s_1d = sum(amount) over 1d
  a_1d = avg(amount) over 1d
  n_1d = count(amount) over 1d
  s_2d = sum(amount) over 2d
  a_2d = avg(amount) over 2d
  s_all = sum(amount)
  a_all = avg(amount)
  q_1d = sum(qty) over 1d
  aq_1d = avg(qty) over 1d
  q_all = sum(qty)
"""


def view(created: bool) -> str:
    """One view of sums and averages over 1h, 1d, 2d and the whole history; a `where` that
    drops some huge rows (a filtered row must not reach any prefix either)."""
    return f"""
entity user {{ key user_id: string }}
source events {{
  table "events"
  timestamp ts
  {"created created" if created else ""}
  columns {{ user_id: string  amount: float  qty: int  status: string  ts: timestamp
            created: timestamp }}
}}
features v {{
  entity user
  from events
  where status is null or status != 'bad'
{FEATURES}}}
"""


# Every strategy a windowed sum can take on DuckDB ({} is the planner's choice); an unwindowed
# sum has one (running sums). Prefix sums are exact only without late rows (forcing them with
# `created` is refused: tests/test_strategies.py).
STRATEGIES = [
    (False, {"window": PREFIX}),
    (False, {"window": RANGE_JOIN}),
    (False, {}),
    (True, {"window": RANGE_JOIN}),
    (True, {}),
]


def _strategy_id(case: tuple[bool, dict]) -> str:
    created, force = case
    return f"{'created' if created else 'no_created'}-{force.get('window', 'planned')}"


# ---- the comparison ---------------------------------------------------------------------------
def window_terms(v: ir.View, rows: list[dict], label: dict) -> dict[str, list]:
    """Per feature, the non-null inputs its aggregation reads for a label: what its sum adds."""
    key = tuple(label[k.name] for k in v.entity.keys)
    t = label["event_timestamp"]
    visible = [] if any(k is None for k in key) else visible_rows(v, rows, key, t)
    out = {}
    for f in v.features:
        agg = f.expr
        assert isinstance(agg, ir.Aggregate), f.name
        inside = visible
        if agg.window is not None:
            inside = [r for r in visible if r[v.source.timestamp] >= t - delta(agg.window)]
        values = [evaluate(agg.arg, r) for r in inside]
        out[f.name] = [x for x in values if x is not None]
    return out


def disagreement(agg: ir.Aggregate, got, want, terms: list) -> str | None:
    """Why `got` is not `want` under the module's rule (docstring), or None when it is."""
    if got is None or want is None:
        return None if got is want else "null on one side only"
    if agg.func == "count" or agg.type == ir.INT:
        return None if got == want else "not exact"
    scale = math.fsum(abs(x) for x in terms)
    if agg.func == "avg":
        scale /= len(terms)
    error = abs(float(got) - float(want))
    if error <= TOLERANCE * scale:
        return None
    return (
        f"error {error:.3g} > 1e-9 * {scale:.6g} (sum|x|{'/n' if agg.func == 'avg' else ''}, "
        f"{len(terms)} terms)"
    )


Expected = list[tuple[dict, dict[str, list]]]  # per label: the reference's row, the terms


def expected(text: str, rows: list[dict], labels: list[dict]) -> Expected:
    repo, diags = load_text(text)
    assert repo is not None, [d.message for d in diags]
    v = repo.views["v"]
    want = training_set(repo, [("v", f.name) for f in v.features], {"events": rows}, labels)
    return [(w, window_terms(v, rows, label)) for w, label in zip(want, labels, strict=True)]


def check_magnitudes(
    run, text: str, rows: list[dict], labels: list[dict], want: Expected | None = None
) -> None:
    """Every cell of the training set from `run` against the reference, under the rule above
    (`want`: the reference's answer, when already computed)."""
    repo, _ = load_text(text)
    v = repo.views["v"]
    features = [("v", f.name) for f in v.features]
    label_types = {"user_id": ir.STRING, "event_timestamp": ir.TIMESTAMP}
    got = run(repo, features, {"events": rows}, labels, label_types)
    want = expected(text, rows, labels) if want is None else want
    assert len(got) == len(want)
    failures = []
    for i, (g, (w, terms)) in enumerate(zip(got, want, strict=True)):
        for f in v.features:
            why = disagreement(f.expr, g[f.name], w[f.name], terms[f.name])
            if why is not None:
                failures.append(
                    f"label {i} {labels[i]} {f.name}: warehouse {g[f.name]!r} != "
                    f"reference {w[f.name]!r}: {why}"
                )
    assert not failures, f"{len(failures)} cells differ, first ones:\n" + "\n".join(failures[:8])


# ---- hand-picked histories ----------------------------------------------------------------------
T = dt.datetime(2024, 1, 10, 12)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)
LATE = [dt.timedelta(0), dt.timedelta(seconds=1), 30 * HOUR]  # created - ts, in turn


def _e(ts: dt.datetime, amount=None, qty=None, status=None, user="a") -> dict:
    return {"user_id": user, "amount": amount, "qty": qty, "status": status, "ts": ts}


def _spread(start: dt.datetime, end: dt.datetime, amounts: list, **kw) -> list[dict]:
    """`amounts` at evenly spaced, distinct microseconds of [start, end)."""
    step = (end - start) / len(amounts)
    return [_e(start + i * step, a, **kw) for i, a in enumerate(amounts)]


def _alternating(n: int) -> list[float]:
    return [(-1) ** i * 1e12 * (1 + i / (n + 7)) for i in range(n)]


HISTORIES = {
    # one 1e12, then 3000 amounts of 1e-6 .. 3e-3: the 1d window holds only the tiny ones at T,
    # the 1h window a few; the 2d window and the unwindowed sum hold the 1e12 too
    "tiny_after_huge": [_e(T - DAY - 2 * HOUR, 1e12, 10**12)]
    + _spread(T - 20 * HOUR, T, [1e-6 * (1 + i) for i in range(3000)], qty=1),
    # 2000 events of +-1e12 leave every window (their prefix ends near -5e11); in the windows:
    # 1e-3, -1e-3 + 1e-12, 3.3e-6, 0.37
    "cancelled_history": _spread(T - 3 * DAY, T - 2 * DAY - HOUR, _alternating(2000), qty=7)
    + [_e(T - HOUR / 2, 1e-3, 1), _e(T - HOUR / 3, -1e-3 + 1e-12, -1), _e(T - 5 * HOUR, 3.3e-6)]
    + [_e(T - 2 * HOUR, 0.37, 2)],
    # +1e12, -1e12, +0.5 inside the windows: the window's own terms cancel
    "cancellation_in_window": [
        _e(T - 50 * MINUTE, 1e12, 10**12),
        _e(T - 40 * MINUTE, -1e12, -(10**12)),
        _e(T - 30 * MINUTE, 0.5, 1),
    ],
    # pairs x, -x from 1e-6 to 1e12, one pair per hour: every window's exact sum is 0 on the hour
    "exact_zero": [
        _e(T - (k + 1) * HOUR + j * US, s * 10.0**e, s * 10**12)
        for k, e in enumerate(range(-6, 13))
        for j, s in enumerate((1, -1))
    ],
    # only zeros, some negative: sums 0, averages 0, counts exact
    "negative_zero": [_e(T - i * HOUR / 3, -0.0 if i % 2 else 0.0, 0) for i in range(1, 9)],
    # a magnitude ladder: 10^e for e in -6 .. 12, both signs, one every 20 minutes
    "ladder": [
        _e(T - i * HOUR / 3, (-1) ** i * 10.0**e, (-1) ** i * 10**e if e >= 0 else 0)
        for i, e in enumerate(range(-6, 13), start=1)
    ]
    + [_e(T - i * HOUR / 3 - DAY, (-1) ** i * 10.0 ** (12 - e)) for i, e in enumerate(range(19))],
    # huge rows the `where` drops, among tiny ones that it keeps
    "filtered_huge": _spread(T - 2 * DAY, T, [1e-6, 2e-6, -1e-6, 5e-7] * 500)
    + [_e(T - i * HOUR, 1e12, 10**12, "bad") for i in range(1, 30)],
    # the same 1e12 + 1e-6 mix for two entities, the other one shifted by half a window
    "two_entities": _spread(T - 2 * DAY, T, [1e12, 1e-6, 1e-6, 1e-6] * 400, user="a")
    + _spread(T - 2 * DAY - HOUR / 2, T, [1e-6, 1e-6, -1e12, 1e-6] * 400, user="b"),
}
LABEL_TIMES = [T + k * HOUR / 4 for k in range(-8, 5)] + [
    T - US,
    T + US,
    T + DAY - 2 * HOUR,
    T + DAY - HOUR,
    T + DAY,
    T + DAY + HOUR / 2,
    T + 2 * DAY - HOUR,
    T + 2 * DAY + US,
    T - DAY,
    T - 2 * DAY - HOUR / 2,
    T + 5 * DAY,
]


def late(rows: list[dict]) -> list[dict]:
    """The rows with a `created` column: on time, a second late, or late by more than every
    window but the 2d one (a row that enters the windows after its event time)."""
    return [{**r, "created": r["ts"] + LATE[i % len(LATE)]} for i, r in enumerate(rows)]


def labels_at(times: list[dt.datetime], users=("a", "b", "unseen")) -> list[dict]:
    return [{"user_id": u, "event_timestamp": t} for t in times for u in users]


def case_rows(case: str, created: bool) -> list[dict]:
    return late(HISTORIES[case]) if created else HISTORIES[case]


@functools.cache
def case_expected(case: str, created: bool) -> Expected:
    """The reference's answer for a hand-picked history, once for every strategy."""
    return expected(view(created), case_rows(case, created), labels_at(LABEL_TIMES))


@pytest.mark.parametrize("case", sorted(HISTORIES))
def test_reference_sums_exactly(case):
    """The reference the tests trust: its float sums are the exact sums correctly rounded, its
    averages the correctly rounded sum divided by n (exact sums by `Fraction`)."""
    repo, _ = load_text(view(False))
    v = repo.views["v"]
    for row, by_feature in case_expected(case, False):
        label = {k: row[k] for k in ("user_id", "event_timestamp")}
        for f in v.features:
            terms = by_feature[f.name]
            if f.expr.func == "count":
                assert row[f.name] == len(terms)
                continue
            if not terms:
                assert row[f.name] is None
                continue
            exact = sum(map(Fraction, terms), Fraction(0))
            if f.expr.func == "sum":
                assert row[f.name] == (exact if f.type == ir.INT else float(exact)), (f, label)
            else:
                assert row[f.name] == float(exact) / len(terms), (f, label)


@pytest.mark.parametrize(("created", "force"), STRATEGIES, ids=map(_strategy_id, STRATEGIES))
@pytest.mark.parametrize("case", sorted(HISTORIES))
def test_adversarial_histories(case, created, force):
    rows, labels = case_rows(case, created), labels_at(LABEL_TIMES)
    check_magnitudes(forced(force), view(created), rows, labels, case_expected(case, created))


# ---- random adversarial histories ---------------------------------------------------------------
BASE = dt.datetime(2024, 1, 1)
HUGE = [1e12, -1e12, 1e12 + 0.5, -(1e12 - 0.25), 999_999_999_999.999, 3e11]
SMALL = [1e-6, -1e-6, 3.3e-6, 1e-3, -1e-3 + 1e-12, 0.1, 0.5, -0.5, 1.0, 123456.789, 0.0, -0.0]
QTY = [None, 0, 1, -1, 7, 10**12, -(10**12)]

magnitudes = st.one_of(
    st.sampled_from([*HUGE, *SMALL, None]),
    st.tuples(st.floats(1e-6, 1e12), st.booleans()).map(lambda p: -p[0] if p[1] else p[0]),
)


def bulk(pattern: str, n: int, seed: int) -> list[dict]:
    """A long history of `n` events over [BASE, BASE + 2d), `pattern`'s magnitudes; a quarter
    of the events at a minute already taken (ties), a few for entity b, a few filtered out."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if pattern == "alternating":
            amount = (-1) ** i * 1e12 * (1 + rng.random())
        elif pattern == "huge_then_tiny":
            amount = rng.choice(HUGE) if i < 3 else rng.choice([1e-6, 2e-6, 1e-5, 1e-3])
        elif pattern == "zero_pairs":
            amount = (-1) ** i * 10 ** rng.uniform(-6, 12) if i % 2 == 0 else -rows[-1]["amount"]
        else:
            amount = rng.choice([*HUGE, *SMALL, None])
            amount = None if amount is None else amount * (1 + rng.random())
        if pattern == "zero_pairs" and i % 2:
            ts = rows[-1]["ts"]  # a pair shares its timestamp: in or out of a window together
        elif rows and rng.random() < 0.25:
            ts = rows[rng.randrange(len(rows))]["ts"]
        else:
            ts = BASE + dt.timedelta(minutes=rng.randrange(2 * 24 * 60), microseconds=i)
        rows.append(
            {
                "user_id": "b" if rng.random() < 0.1 else "a",
                "amount": amount,
                "qty": rng.choice(QTY),
                "status": "bad" if rng.random() < 0.05 else None,
                "ts": ts,
            }
        )
    return rows


@st.composite
def adversarial_history(draw, created: bool):
    """A long generated history (the bulk) and a short drawn tail after it, in which labels see
    windows whose sum is small beside the history's prefix."""
    n = draw(st.sampled_from([0, 10, 300, 3000]), label="bulk size")
    pattern = draw(st.sampled_from(["alternating", "huge_then_tiny", "zero_pairs", "mix"]))
    rows = bulk(pattern, n, draw(st.integers(0, 2**16), label="seed"))
    for _ in range(draw(st.integers(0, 12))):
        at = BASE + 2 * DAY + draw(st.integers(0, 2 * 24 * 60)) * dt.timedelta(minutes=1)
        rows.append(
            {
                "user_id": draw(st.sampled_from(["a", "b"])),
                "amount": draw(magnitudes),
                "qty": draw(st.sampled_from(QTY)),
                "status": draw(st.sampled_from([None, None, "bad"])),
                "ts": at,
            }
        )
    if created:
        for r in rows:
            r["created"] = r["ts"] + draw(st.sampled_from(LATE), label="late")
    return rows


@st.composite
def label_times(draw, rows: list[dict]):
    times = [r["ts"] for r in rows] or [BASE]
    shifts = [dt.timedelta(0), US, -US, HOUR, DAY, DAY + US, 2 * DAY, 3 * DAY]
    out = [draw(st.sampled_from(times)) + draw(st.sampled_from(shifts)) for _ in range(6)]
    out += [BASE + 2 * DAY + draw(st.integers(0, 4 * 24)) * HOUR for _ in range(3)]
    return labels_at(out, ("a", "b"))


@pytest.mark.parametrize(("created", "force"), STRATEGIES, ids=map(_strategy_id, STRATEGIES))
def test_random_adversarial_histories(created, force):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def prop(data):
        rows = data.draw(adversarial_history(created), label="events")
        check_magnitudes(forced(force), view(created), rows, data.draw(label_times(rows)))

    prop()


# ---- Postgres and Spark: the planner's choice through `compute` --------------------------------
def _all_histories(created: bool) -> tuple[list[dict], list[dict], Expected]:
    """Every hand-picked history in one table, each under its own entities: rows, labels and
    the reference's answer."""
    rows, labels, want = [], [], []
    for case in sorted(HISTORIES):
        rows += [{**r, "user_id": f"{case}/{r['user_id']}"} for r in case_rows(case, created)]
        for label in labels_at(LABEL_TIMES):
            labels.append({**label, "user_id": f"{case}/{label['user_id']}"})
        want += case_expected(case, created)
    return rows, labels, want


@pytest.mark.parametrize("created", [False, True], ids=["no_created", "created"])
@pytest.mark.parametrize("backend", ["postgres", "spark"])
def test_adversarial_histories_on_backend(backend, created, warehouse_urls):
    """One table of every hand-picked history, one query per backend and view."""
    url = warehouse_url(warehouse_urls, backend)
    rows, labels, want = _all_histories(created)
    check_magnitudes(training_on(url), view(created), rows, labels, want)


@pytest.mark.parametrize("created", [False, True], ids=["no_created", "created"])
def test_random_adversarial_histories_on_postgres(created, warehouse_urls):
    url = warehouse_url(warehouse_urls, "postgres")

    @settings(
        max_examples=max(EXAMPLES // 4, 3),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def prop(data):
        rows = data.draw(adversarial_history(created), label="events")
        check_magnitudes(training_on(url), view(created), rows, data.draw(label_times(rows)))

    prop()
