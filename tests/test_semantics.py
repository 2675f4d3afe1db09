"""The compiled DuckDB training query on hand-checked cases of docs/semantics.md."""

from __future__ import annotations

import datetime as dt

import pytest
from duck import training
from reference import training_set

from fsdsl import ir
from fsdsl.check import load_repository

D = dt.datetime


def order(oid, user, amount, status, ts, created):
    return {
        "order_id": oid,
        "user_id": user,
        "amount": amount,
        "status": status,
        "event_timestamp": ts,
        "created_at": created,
    }


ORDERS = [
    order("o1", "u1", 10.0, "completed", D(2024, 1, 1, 10), D(2024, 1, 1, 10, 1)),
    order("o2", "u1", None, "completed", D(2024, 1, 5, 10), D(2024, 1, 5, 10, 1)),  # null input
    order("o3", "u1", 30.0, "cancelled", D(2024, 1, 6, 10), D(2024, 1, 6, 10, 1)),  # filtered
    order("o4", "u1", 40.0, "completed", D(2024, 1, 8, 10), D(2024, 1, 20)),  # late row
    order("o5", "u1", 50.0, "completed", D(2024, 1, 9, 10), D(2024, 1, 9, 10)),  # tie on time:
    order("o6", "u1", 5.0, "completed", D(2024, 1, 9, 10), D(2024, 1, 9, 10)),  # greater wins
]
LABELS = [
    {"user_id": "u1", "event_timestamp": D(2024, 1, 9, 10)},  # exactly at o5/o6: not visible
    {"user_id": "u1", "event_timestamp": D(2024, 1, 10)},
    {"user_id": "u1", "event_timestamp": D(2024, 1, 21)},  # empty 7d window; late o4 visible
    {"user_id": "u2", "event_timestamp": D(2024, 1, 10)},  # unseen entity
    {"user_id": None, "event_timestamp": D(2024, 1, 10)},  # no key
    {"user_id": "u1", "event_timestamp": D(2024, 6, 10)},  # TTL (60d) expired
]
NULLS = dict.fromkeys(
    [
        "orders_7d",
        "orders_30d",
        "spend_30d",
        "avg_amount_30d",
        "min_amount_7d",
        "max_amount_90d",
        "priced_30d",
        "last_amount",
        "first_amount_30d",
        "recent_amounts",
        "active_days_30d",
        "spend_per_order_30d",
    ]
)
EXPECTED = [
    dict(
        orders_7d=1,
        orders_30d=2,
        spend_30d=10.0,
        avg_amount_30d=10.0,
        min_amount_7d=None,
        max_amount_90d=10.0,
        priced_30d=1,
        last_amount=10.0,
        first_amount_30d=10.0,
        recent_amounts=[10.0],
        active_days_30d=2,
        spend_per_order_30d=5.0,
    ),
    dict(
        orders_7d=3,
        orders_30d=4,
        spend_30d=65.0,
        avg_amount_30d=65.0 / 3,
        min_amount_7d=5.0,
        max_amount_90d=50.0,
        priced_30d=3,
        last_amount=50.0,
        first_amount_30d=10.0,
        recent_amounts=[50.0, 5.0, 10.0],
        active_days_30d=3,
        spend_per_order_30d=16.25,
    ),
    dict(
        orders_7d=0,
        orders_30d=5,
        spend_30d=105.0,
        avg_amount_30d=26.25,
        min_amount_7d=None,
        max_amount_90d=50.0,
        priced_30d=4,
        last_amount=50.0,
        first_amount_30d=10.0,
        recent_amounts=[50.0, 5.0, 40.0],
        active_days_30d=4,
        spend_per_order_30d=21.0,
    ),
    NULLS,  # unseen, under a TTL: every feature null
    NULLS,
    NULLS,
]


@pytest.fixture(scope="module")
def repo(root):
    repo, diags = load_repository(root / "definitions")
    assert repo is not None, diags
    return repo


LABEL_TYPES = {"user_id": ir.STRING, "event_timestamp": ir.TIMESTAMP}


def _check(got, want, where) -> None:
    """A null is a value of its own, not a number near anything: `approx(None)` is a TypeError
    on pytest 9 and, before that, let any tolerance logic decide what only `is None` should.
    Counts are exact integers; floats (and lists of them) compare within a relative 1e-12."""
    if want is None:
        assert got is None, (where, got)
    elif isinstance(want, int):
        assert type(got) is int and got == want, (where, got)
    elif isinstance(want, list):
        assert isinstance(got, list), (where, got)
        assert got == pytest.approx(want, rel=1e-12), (where, got)
    else:
        assert isinstance(got, float), (where, got)
        assert got == pytest.approx(want, rel=1e-12), (where, got)


def test_hand_checked_values(repo):
    features = list(repo.services["churn_model"].features)
    got = training(repo, features, {"orders": ORDERS, "page_views": []}, LABELS, LABEL_TYPES)
    for label, row, want in zip(LABELS, got, EXPECTED, strict=True):
        assert row["user_id"] == label["user_id"]
        assert row["event_timestamp"] == label["event_timestamp"]
        for name, value in want.items():
            _check(row[name], value, (label, name))


def test_reference_agrees_with_hand_checked_values(repo):
    features = list(repo.services["churn_model"].features)
    ref = training_set(repo, features, {"orders": ORDERS}, LABELS)
    for row, want in zip(ref, EXPECTED, strict=True):
        for name, value in want.items():
            _check(row[name], value, name)


WITHOUT_TTL = """
entity user { key user_id: string }
source orders {
  table "orders"
  timestamp event_timestamp
  columns { user_id: string  amount: float  event_timestamp: timestamp }
}
features f {
  entity user
  from orders
  n_7d = count(*) over 7d
  n_all = count(amount)
  total = sum(amount)
  kinds_1d = count_distinct(amount) over 1d
  last3 = last_k(amount, 3)
  mean_7d = avg(amount) over 7d
  ratio = total / n_7d
}
"""


def test_empty_values_without_ttl():
    """Unseen entities and empty windows: counts 0, lists empty, everything else null."""
    from fsdsl.check import load_text

    repo, diags = load_text(WITHOUT_TTL)
    assert repo is not None, diags
    events = [
        {"user_id": "a", "amount": 1.5, "event_timestamp": D(2024, 1, 1)},
        {"user_id": "a", "amount": None, "event_timestamp": D(2024, 1, 2)},
    ]
    labels = [
        {"user_id": "a", "event_timestamp": D(2024, 3, 1)},
        {"user_id": "zzz", "event_timestamp": D(2024, 3, 1)},
        {"user_id": "a", "event_timestamp": D(2024, 1, 1)},  # event exactly at T: unseen
        {"user_id": "a", "event_timestamp": D(2024, 1, 2, 0, 0, 0, 1)},
    ]
    feats = [("f", f.name) for f in repo.views["f"].features]
    got = training(repo, feats, {"orders": events}, labels, LABEL_TYPES)
    want = [
        dict(n_7d=0, n_all=1, total=1.5, kinds_1d=0, last3=[1.5], mean_7d=None, ratio=None),
        dict(n_7d=0, n_all=0, total=None, kinds_1d=0, last3=[], mean_7d=None, ratio=None),
        dict(n_7d=0, n_all=0, total=None, kinds_1d=0, last3=[], mean_7d=None, ratio=None),
        dict(n_7d=2, n_all=1, total=1.5, kinds_1d=0, last3=[1.5], mean_7d=1.5, ratio=0.75),
    ]
    for row, w in zip(got, want, strict=True):
        assert {k: row[k] for k in w} == w
    assert training_set(repo, feats, {"orders": events}, labels) == [
        {**lab, **w} for lab, w in zip(labels, want, strict=True)
    ]
